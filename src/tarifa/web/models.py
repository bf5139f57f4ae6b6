from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.kernel.ids import uuid7


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


class BackgroundTask(models.Model):
    """Long work an operator started (a ledger check, a large CSV export), run by a worker.

    The page or API that starts it answers at once with the task's URL; the task's page
    shows its state and progress while it runs, then its result (a summary, a file to
    download) or its error. See tarifa.web.background."""

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    kind = models.CharField(_("kind"), max_length=64)
    label = models.CharField(_("task"), max_length=200)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.QUEUED)
    progress = models.PositiveSmallIntegerField(_("progress, %"), default=0)
    progress_text = models.CharField(_("step"), max_length=200, blank=True)
    result = models.JSONField(_("result"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    file = models.CharField(_("file"), max_length=300, blank=True)  # relative to MEDIA_ROOT
    file_name = models.CharField(_("file name"), max_length=200, blank=True)
    file_size = models.BigIntegerField(_("file size"), default=0)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+", verbose_name=_("requested by"))
    created_at = models.DateTimeField(_("started"), default=now, db_index=True)
    started_at = models.DateTimeField(_("running since"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("background task")
        verbose_name_plural = _("background tasks")
        # view: see every user's tasks (everyone sees the tasks they started).
        default_permissions = ("view",)
        indexes = [models.Index(fields=["requested_by", "-created_at"], name="web_task_user_created"),
                   models.Index(fields=["kind", "-created_at"], name="web_task_kind_created")]

    def __str__(self):
        return f"{self.label} ({self.get_state_display()})"

    @property
    def done(self) -> bool:
        return self.state in (self.State.SUCCEEDED, self.State.FAILED)
