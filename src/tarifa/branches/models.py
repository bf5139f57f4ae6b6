from django.db import models
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.models import BusinessRecord


class Branch(BusinessRecord):
    """A branch of the operator. Exactly one is this node (`is_local`); peers and the
    central node arrive with federation."""

    code = models.CharField(_("code"), max_length=16, unique=True,
                            help_text=_("Prefix of human-facing numbers, e.g. HQ-C0000001."))
    name = models.CharField(_("name"), max_length=200)
    is_local = models.BooleanField(_("this node"), default=False, editable=False)
    is_central = models.BooleanField(_("central node"), default=False)

    class Meta:
        verbose_name = _("branch")
        verbose_name_plural = _("branches")
        ordering = ["code"]
        constraints = [models.UniqueConstraint(fields=["is_local"], condition=models.Q(is_local=True),
                                               name="branches_one_local")]

    def __str__(self):
        return f"{self.code} — {self.name}"
