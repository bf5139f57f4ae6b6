"""The CoA/DM log and reconciliation runs (imported by models.py).

- `CoaAttempt`: one transmission of a CoA-Request or Disconnect-Request to a NAS and what came of
  it (ACK, NAK with its Error-Cause, no answer, or an error), so the operator sees every retry.
  Attempts of one request share `request_id`.
- `ReconciliationRun`: one comparison of the open sessions with the subscriptions' states, with
  every difference found and what was done about it.
- `SessionCharge`: a finished session handed to rating as a usage record (at most once).
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.kernel.ids import uuid7


class CoaAttempt(models.Model):
    class Kind(models.TextChoices):
        DISCONNECT = "disconnect", _("Disconnect-Request")
        COA = "coa", _("CoA-Request")

    class Outcome(models.TextChoices):
        ACK = "ack", _("ACK")
        NAK = "nak", _("NAK")
        TIMEOUT = "timeout", _("No answer")
        ERROR = "error", _("Not sent")

    class Reason(models.TextChoices):
        SUSPENDED = "suspended", _("Subscription suspended")
        RESUMED = "resumed", _("Subscription resumed")
        TERMINATED = "terminated", _("Subscription terminated")
        TARIFF_CHANGED = "tariff_changed", _("Tariff changed")
        RECONCILIATION = "reconciliation", _("Reconciliation")
        OPERATOR = "operator", _("Operator")
        CAP = "cap", _("Volume cap reached")
        BALANCE = "balance", _("Prepaid balance exhausted")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    request_id = models.UUIDField(_("request"), db_index=True, editable=False)
    at = models.DateTimeField(_("at"), default=now)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    reason = models.CharField(_("reason"), max_length=16, choices=Reason.choices)
    nas = models.ForeignKey("aaa.Nas", on_delete=models.PROTECT, related_name="+", verbose_name=_("NAS"))
    session_id = models.UUIDField(_("session"), null=True, blank=True, db_index=True)
    acct_session_id = models.CharField(_("Acct-Session-Id"), max_length=64, blank=True)
    login = models.CharField(_("login"), max_length=100, blank=True, db_index=True)
    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.DO_NOTHING, null=True,
                                     blank=True, db_constraint=False, related_name="+",
                                     verbose_name=_("subscription"))
    attributes = models.JSONField(_("attributes sent"), default=dict, blank=True)
    granted = models.CharField(_("access it grants"), max_length=40, blank=True,
                               help_text=_("For a CoA: the speed it sets (mode:down/up kbit/s)."))
    attempt = models.PositiveSmallIntegerField(_("attempt"), default=1)
    outcome = models.CharField(_("outcome"), max_length=8, choices=Outcome.choices)
    error_cause = models.PositiveIntegerField(_("Error-Cause"), null=True, blank=True)
    detail = models.CharField(_("detail"), max_length=300, blank=True)
    elapsed_ms = models.PositiveIntegerField(_("answer time (ms)"), default=0)
    actor = models.CharField(_("actor"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("CoA/DM attempt")
        verbose_name_plural = _("CoA/DM log")
        ordering = ["-at"]
        indexes = [models.Index(fields=["nas", "-at"], name="aaa_coa_nas_at")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.login} #{self.attempt} {self.get_outcome_display()}"

    @property
    def error_cause_text(self) -> str:
        from .coa import ERROR_CAUSES

        return f"{self.error_cause} {ERROR_CAUSES.get(self.error_cause, '')}".strip() if self.error_cause else ""


class ReconciliationRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    started_at = models.DateTimeField(_("started"), default=now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    trigger = models.CharField(_("started by"), max_length=150, blank=True)
    checked = models.PositiveIntegerField(_("sessions checked"), default=0)
    differences = models.PositiveIntegerField(_("differences"), default=0)
    disconnected = models.PositiveIntegerField(_("disconnected"), default=0)
    changed = models.PositiveIntegerField(_("speed changed"), default=0)
    failed = models.PositiveIntegerField(_("not done"), default=0)
    findings = models.JSONField(_("findings"), default=list, blank=True)

    class Meta:
        verbose_name = _("reconciliation run")
        verbose_name_plural = _("reconciliation runs")
        ordering = ["-started_at"]

    def __str__(self):
        return f"{self.started_at:%Y-%m-%d %H:%M:%S} ({self.differences})"


class SessionCharge(models.Model):
    """A finished session given to rating (source "radius", record id = the session's id)."""

    session_id = models.UUIDField(primary_key=True)
    stopped_at = models.DateTimeField()
    batch_id = models.UUIDField(null=True, blank=True)
    at = models.DateTimeField(default=now)

    class Meta:
        verbose_name = _("session charge")
