"""Operator scripts (Lua, run in a sandbox process): the script, its numbered versions, its runs.

A script runs its current version. Saving new source makes a new version; versions are never
changed, and restoring an old one makes a new version with its source. Every run (a ticket's
handler, a scheduled run, a dry run from the Test page) is kept in the run log with its outcome,
the calls it made, its log lines and what it returned.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.kernel.ids import uuid7
from tarifa.kernel.models import BusinessRecord


class Script(BusinessRecord):
    class Kind(models.TextChoices):
        HANDLER = "handler", _("Handler (run by tickets)")
        SCHEDULED = "scheduled", _("Scheduled (maintenance, statistics)")

    code = models.SlugField(_("code"), max_length=64, unique=True,
                            help_text=_("How tickets and the API name the script, e.g. check_balance."))
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.HANDLER)
    schedule = models.CharField(_("schedule"), max_length=100, blank=True,
                                help_text=_("For scheduled scripts: a cron expression (minute hour day month "
                                            "weekday), e.g. 0 3 * * * for 03:00 every day."))
    run_as = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                               related_name="+", verbose_name=_("run as"),
                               help_text=_("Scheduled scripts act as this user (their permissions); "
                                           "empty: as the system."))
    active = models.BooleanField(_("active"), default=True)
    current_version = models.ForeignKey("ScriptVersion", on_delete=models.PROTECT, null=True, blank=True,
                                        related_name="+", editable=False, verbose_name=_("current version"))
    last_scheduled_at = models.DateTimeField(_("last scheduled run"), null=True, blank=True, editable=False,
                                             help_text=_("The schedule's time of the last scheduled run."))

    class Meta:
        verbose_name = _("script")
        verbose_name_plural = _("scripts")
        ordering = ["code"]
        permissions = [("test_script", "Can test scripts (dry run)")]

    def __str__(self):
        return f"{self.name} ({self.code})"

    @property
    def source(self) -> str:
        return self.current_version.source if self.current_version_id else ""


class ScriptVersion(models.Model):
    """One saved source of a script: numbered 1, 2, … per script; never changed."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    script = models.ForeignKey(Script, on_delete=models.PROTECT, related_name="versions", verbose_name=_("script"))
    number = models.PositiveIntegerField(_("version"))
    source = models.TextField(_("source"))
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("saved"), default=now, editable=False)
    created_by = models.CharField(_("saved by"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("script version")
        verbose_name_plural = _("script versions")
        ordering = ["script__code", "-number"]
        constraints = [models.UniqueConstraint(fields=["script", "number"], name="scripts_version_unique")]

    def __str__(self):
        return f"{self.script.code} v{self.number}"


class ScriptRun(BusinessRecord):
    class Outcome(models.TextChoices):
        OK = "ok", _("OK")
        FAILED = "failed", _("Failed")
        KILLED = "killed", _("Killed (limit)")

    script = models.ForeignKey(Script, on_delete=models.PROTECT, related_name="runs", verbose_name=_("script"))
    version = models.ForeignKey(ScriptVersion, on_delete=models.PROTECT, related_name="runs",
                                verbose_name=_("version"))
    purpose = models.CharField(_("purpose"), max_length=200, blank=True)
    actor = models.CharField(_("actor"), max_length=150)
    dry_run = models.BooleanField(_("dry run"), default=False)
    started_at = models.DateTimeField(_("started"))
    finished_at = models.DateTimeField(_("finished"))
    duration_ms = models.PositiveIntegerField(_("duration"), default=0, help_text=_("In milliseconds."))
    cpu_ms = models.PositiveIntegerField(_("CPU time"), null=True, blank=True, help_text=_("In milliseconds."))
    outcome = models.CharField(_("outcome"), max_length=8, choices=Outcome.choices)
    error = models.TextField(_("error"), blank=True)
    calls = models.JSONField(_("calls made"), default=list, blank=True)
    log = models.JSONField(_("log lines"), default=list, blank=True)
    value = models.JSONField(_("returned value"), null=True, blank=True)
    context = models.JSONField(_("context"), default=dict, blank=True)
    rolled_back = models.BooleanField(_("effects rolled back"), default=False,
                                      help_text=_("A dry run, a failed run, or a caller that rolled back."))

    class Meta:
        verbose_name = _("script run")
        verbose_name_plural = _("script runs")
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["script", "-started_at"], name="scripts_run_script_started")]

    def __str__(self):
        return f"{self.script.code} v{self.version.number} at {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def duration_text(self) -> str:
        return milliseconds(self.duration_ms)


def milliseconds(ms) -> str:
    """340 → "340 ms", 1530 → "1.53 s"."""
    if ms is None:
        return ""
    return f"{ms:g} ms" if ms < 1000 else f"{ms / 1000:.2f} s"
