"""The reports app writes nothing but its own: delivery schedules and the daily aggregates."""

from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.kernel.models import Archivable, BusinessRecord


class ReportSchedule(BusinessRecord, Archivable):
    """A report sent by e-mail on a schedule: the report with its parameters (the period is the
    last closed day, week or month at the time of sending), the recipients and the file format."""

    class Frequency(models.TextChoices):
        DAILY = "daily", _("Daily (yesterday)")
        WEEKLY = "weekly", _("Weekly, on Mondays (last week)")
        MONTHLY = "monthly", _("Monthly, on the 1st (last month)")

    class Format(models.TextChoices):
        XLSX = "xlsx", _("Excel (XLSX)")
        CSV = "csv", _("CSV")

    name = models.CharField(_("name"), max_length=200)
    report = models.CharField(_("report"), max_length=64)
    parameters = models.JSONField(_("parameters"), default=dict, blank=True,
                                  help_text=_("The report's filters besides the period."))
    recipients = models.TextField(_("recipients"), help_text=_("E-mail addresses, one a line or comma separated."))
    frequency = models.CharField(_("frequency"), max_length=8, choices=Frequency.choices, default=Frequency.DAILY)
    format = models.CharField(_("format"), max_length=4, choices=Format.choices, default=Format.XLSX)
    last_sent_on = models.DateField(_("last sent on"), null=True, blank=True, editable=False)
    last_error = models.TextField(_("last error"), blank=True, editable=False)

    class Meta:
        verbose_name = _("report schedule")
        verbose_name_plural = _("report schedules")
        ordering = ["name"]
        permissions = [
            ("view_reports", "Can see the list of reports"),
            ("view_finance_reports", "Can open financial reports"),
            ("view_cash_reports", "Can open cash desk and payment reports"),
            ("view_subscriber_reports", "Can open subscriber reports"),
            ("view_usage_reports", "Can open usage reports"),
            ("view_operations_reports", "Can open operations reports"),
            ("send_report", "Can send a scheduled report now"),
        ]

    def __str__(self):
        return self.name


class DailyFigure(models.Model):
    """One day's figure of one measure for one dimension value and currency, rolled up from the
    ledger, payments and subscriptions by the nightly job (`tarifa reports rollup`). Reports
    for closed days read these instead of scanning the transfers."""

    id = models.BigAutoField(primary_key=True)
    day = models.DateField(_("day"))
    measure = models.CharField(_("measure"), max_length=32,
                               validators=[RegexValidator(r"^[a-z_]+$")])
    dimension = models.CharField(_("dimension"), max_length=100, blank=True)
    branch = models.CharField(_("branch"), max_length=16, blank=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    amount = models.DecimalField(_("amount"), max_digits=24, decimal_places=6, default=0)
    count = models.BigIntegerField(_("count"), default=0)

    class Meta:
        verbose_name = _("daily figure")
        verbose_name_plural = _("daily figures")
        constraints = [models.UniqueConstraint(fields=["measure", "day", "dimension", "branch", "currency"],
                                               name="reports_dailyfigure_one")]
        default_permissions = ()


class RolledUpDay(models.Model):
    """A day whose figures are in DailyFigure (rolled up after it closed)."""

    day = models.DateField(_("day"), primary_key=True)
    rolled_up_at = models.DateTimeField(_("rolled up"), default=now)

    class Meta:
        default_permissions = ()
