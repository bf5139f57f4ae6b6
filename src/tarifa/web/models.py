from django.db import models
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now


class IdempotentRequest(models.Model):
    """The first answer to an API request sent with an `Idempotency-Key` (rule 5).

    Written in the transaction of the request's own writes and only when they commit
    with a 2xx answer, so a stored row always means "this was done, and this was the
    answer". See tarifa.web.idempotency.
    """

    scope = models.CharField(_("scope"), max_length=150)  # whose key: "user:<id>", "gateway:<code>", …
    key = models.CharField(_("idempotency key"), max_length=200)
    method = models.CharField(_("method"), max_length=10)
    path = models.CharField(_("path"), max_length=500)
    body_hash = models.CharField(_("body hash"), max_length=64)
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True)
    response_body = models.JSONField(_("response body"), null=True)
    created_at = models.DateTimeField(_("created"), default=now, db_index=True)
    completed_at = models.DateTimeField(_("completed"), null=True)

    class Meta:
        verbose_name = _("idempotent request")
        verbose_name_plural = _("idempotent requests")
        default_permissions = ()
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="web_idempotent_request_scope_key")]

    def __str__(self):
        return f"{self.method} {self.path} [{self.key}]"
