"""Rating: tariff plans in the database, usage records, bundles and re-rating.

Tariff plans (CGRateS's classic concepts, per *rating tenant*):

- `Destination` — a named set of number prefixes (`DestinationPrefix`).
- `Timing` — years, months, month days, week days and a start time (in force until
  midnight, or an optional end time).
- `Rate` — ordered `RateSlot`s of (connect fee, rate, rate unit, rate increment, group
  interval start). Durations are integer *base units*: nanoseconds for time, plain
  units (bytes, items) otherwise, exactly as in the engine.
- `DestinationRate` — a destination (or `*any`) priced by a rate, with rounding and a
  max cost. Rows sharing a code form one destination rate, as in CGRateS.
- `RatingPlan` with `RatingPlanBinding`s — destination rates under timings with weights.
- `RatingProfile` — (tenant, category, subject) → rating plan from an activation time,
  with fallback subjects.

Definition order decides CGRateS's ties (first defined wins), so every plan row is
ordered by its time-ordered id (creation order; the importer creates rows in file order).
Each tenant's `plan_version` is bumped in the transaction of every change: the loader
(`plans.py`) caches one compiled `TariffPlan` per tenant and version.

Usage: `UsageRecord` holds every input record that is not a duplicate, *rated* or
*rejected* (with a reason, kept and reprocessable); `RatedUsage` and `RejectedUsage` are
the two views of it. A `UsageBatch` is one import with counts that add up.
"""

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.kernel.ids import uuid7
from tarifa.kernel.models import Archivable, BusinessRecord

from .engine import format_duration

ANY = "*any"
code_validator = RegexValidator(r"^[^\s,;*][^\s,;]*$", _("No spaces, commas or semicolons; must not start with '*'."))
tenant_validator = RegexValidator(r"^[A-Za-z0-9_.:@-]+$", _("Letters, digits and . _ - : @ only."))
prefix_validator = RegexValidator(r"^[^\s,;]+$", _("A prefix has no spaces, commas or semicolons."))


def plain(value) -> str:
    """A Decimal without exponent or trailing zeros: 0.100000 -> "0.1"."""
    if value is None:
        return ""
    text = format(value.normalize(), "f")
    return text


def live_unique(fields, name):
    return models.UniqueConstraint(fields=fields, condition=Q(archived_at__isnull=True), name=name)


class RatingTenant(BusinessRecord, Archivable):
    """A CGRateS tenant: the namespace of one set of tariff plans."""

    code = models.CharField(_("code"), max_length=64, unique=True, validators=[tenant_validator],
                            help_text=_("As in CGRateS, e.g. cgrates.org."))
    name = models.CharField(_("name"), max_length=100, blank=True)
    description = models.TextField(_("description"), blank=True)
    plan_version = models.PositiveBigIntegerField(_("plan version"), default=0, editable=False,
                                                  help_text=_("Bumped by every change of the tenant's tariff plan."))

    class Meta:
        verbose_name = _("rating tenant")
        verbose_name_plural = _("rating tenants")
        ordering = ["code"]
        permissions = [("import_plan", "Can import CGRateS tariff plans"),
                       ("export_plan", "Can export CGRateS tariff plans"),
                       ("calculate", "Can use the cost calculator")]

    def __str__(self):
        return self.code


class TenantScoped(BusinessRecord, Archivable):
    tenant = models.ForeignKey(RatingTenant, on_delete=models.PROTECT, related_name="+", verbose_name=_("tenant"))

    class Meta:
        abstract = True


class Destination(TenantScoped):
    """A named set of number prefixes (CGRateS Destinations.csv)."""

    code = models.CharField(_("code"), max_length=64, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("destination")
        verbose_name_plural = _("destinations")
        ordering = ["tenant", "code"]
        constraints = [live_unique(["tenant", "code"], "rating_destination_code")]

    def __str__(self):
        return self.code


class DestinationPrefix(BusinessRecord):
    """One number prefix of a destination; the longest matching prefix wins."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="prefixes",
                                    verbose_name=_("destination"))
    prefix = models.CharField(_("prefix"), max_length=32, validators=[prefix_validator])

    class Meta:
        verbose_name = _("destination prefix")
        verbose_name_plural = _("destination prefixes")
        ordering = ["destination", "prefix"]
        constraints = [models.UniqueConstraint(fields=["destination", "prefix"], name="rating_prefix_unique")]
        indexes = [models.Index(fields=["prefix"], name="rating_prefix_prefix")]

    def __str__(self):
        return f"{self.prefix} → {self.destination_id and self.destination.code}"


def int_array(label):
    return ArrayField(models.PositiveSmallIntegerField(), blank=True, default=list, verbose_name=label)


class Timing(TenantScoped):
    """When a rate applies. Empty lists mean "any"; week days 1 = Monday … 7 = Sunday."""

    code = models.CharField(_("code"), max_length=64, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100, blank=True)
    years = ArrayField(models.PositiveIntegerField(), blank=True, default=list, verbose_name=_("years"))
    months = int_array(_("months"))
    month_days = int_array(_("month days"))
    week_days = int_array(_("week days"))
    start_time = models.TimeField(_("start time"), default="00:00:00",
                                  help_text=_("In force from this time of day until midnight (or the end time)."))
    end_time = models.TimeField(_("end time"), null=True, blank=True)

    class Meta:
        verbose_name = _("timing")
        verbose_name_plural = _("timings")
        ordering = ["tenant", "code"]
        constraints = [live_unique(["tenant", "code"], "rating_timing_code")]

    def __str__(self):
        return self.code


class Rate(TenantScoped):
    """Ordered price slots; the first slot's connect fee is charged once per call."""

    code = models.CharField(_("code"), max_length=64, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("rate")
        verbose_name_plural = _("rates")
        ordering = ["tenant", "code"]
        constraints = [live_unique(["tenant", "code"], "rating_rate_code")]

    def __str__(self):
        return self.code


def price_field(label, **kwargs):
    return models.DecimalField(label, max_digits=30, decimal_places=12, **kwargs)


class RateSlot(BusinessRecord):
    """`rate` per `rate_unit` of usage, counted in whole `rate_increment`s, from `group_interval_start`.

    Durations are base units (ns for time, units otherwise); 0 unit/increment means 1s.
    """

    rate = models.ForeignKey(Rate, on_delete=models.CASCADE, related_name="slots", verbose_name=_("rate"))
    connect_fee = price_field(_("connect fee"), default=0)
    price = price_field(_("rate"))
    rate_unit = models.BigIntegerField(_("rate unit"), validators=[MinValueValidator(0)])
    rate_increment = models.BigIntegerField(_("rate increment"), validators=[MinValueValidator(0)])
    group_interval_start = models.BigIntegerField(_("group interval start"), default=0,
                                                  validators=[MinValueValidator(0)])

    class Meta:
        verbose_name = _("rate slot")
        verbose_name_plural = _("rate slots")
        ordering = ["rate", "id"]

    def __str__(self):
        return (f"{self.rate_id and self.rate.code}: {plain(self.price)}/{format_duration(self.rate_unit)}"
                f" by {format_duration(self.rate_increment)} from {format_duration(self.group_interval_start)}")


class DestinationRate(TenantScoped):
    """A destination (empty: `*any`) priced by a rate. Rows sharing a code form one destination rate."""

    class Rounding(models.TextChoices):
        UP = "*up", "*up"
        MIDDLE = "*middle", "*middle"
        DOWN = "*down", "*down"
        NONE = "", _("none")

    class MaxCostStrategy(models.TextChoices):
        NONE = "", _("none")
        FREE = "*free", _("*free (cap the cost)")
        DISCONNECT = "*disconnect", _("*disconnect (limit the session)")

    code = models.CharField(_("code"), max_length=64, validators=[code_validator])
    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                    verbose_name=_("destination"), help_text=_("Empty: *any destination."))
    rate = models.ForeignKey(Rate, on_delete=models.PROTECT, related_name="+", verbose_name=_("rate"))
    rounding_method = models.CharField(_("rounding method"), max_length=8, choices=Rounding.choices,
                                       default=Rounding.MIDDLE, blank=True)
    rounding_decimals = models.PositiveSmallIntegerField(_("rounding decimals"), default=4,
                                                         validators=[MaxValueValidator(18)])
    max_cost = price_field(_("max cost"), default=0, validators=[MinValueValidator(0)])
    max_cost_strategy = models.CharField(_("max cost strategy"), max_length=12, choices=MaxCostStrategy.choices,
                                         default="", blank=True)

    class Meta:
        verbose_name = _("destination rate")
        verbose_name_plural = _("destination rates")
        ordering = ["tenant", "code", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code", "destination"], nulls_distinct=False,
                                               condition=Q(archived_at__isnull=True),
                                               name="rating_destination_rate_unique")]

    def __str__(self):
        return f"{self.code} ({self.destination.code if self.destination_id else ANY})"


class RatingPlan(TenantScoped):
    code = models.CharField(_("code"), max_length=64, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("rating plan")
        verbose_name_plural = _("rating plans")
        ordering = ["tenant", "code"]
        constraints = [live_unique(["tenant", "code"], "rating_plan_code")]

    def __str__(self):
        return self.code


class RatingPlanBinding(BusinessRecord):
    """A destination rate in force during a timing (empty: `*any`) with a weight; highest weight wins."""

    rating_plan = models.ForeignKey(RatingPlan, on_delete=models.CASCADE, related_name="bindings",
                                    verbose_name=_("rating plan"))
    destination_rate_code = models.CharField(_("destination rate"), max_length=64, validators=[code_validator])
    timing = models.ForeignKey(Timing, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                               verbose_name=_("timing"), help_text=_("Empty: *any (always)."))
    weight = models.DecimalField(_("weight"), max_digits=20, decimal_places=6, default=10)

    class Meta:
        verbose_name = _("rating plan binding")
        verbose_name_plural = _("rating plan bindings")
        ordering = ["rating_plan", "id"]

    def __str__(self):
        return (f"{self.rating_plan_id and self.rating_plan.code}: {self.destination_rate_code} @ "
                f"{self.timing.code if self.timing_id else ANY} w{plain(self.weight)}")


class RatingProfile(TenantScoped):
    """(tenant, category, subject) is priced by `rating_plan` from `activation_time` on."""

    category = models.CharField(_("category"), max_length=64, validators=[prefix_validator])
    subject = models.CharField(_("subject"), max_length=100, validators=[prefix_validator],
                               help_text=_("*any matches subjects without a profile of their own."))
    activation_time = models.DateTimeField(_("activation time"))
    rating_plan = models.ForeignKey(RatingPlan, on_delete=models.PROTECT, related_name="+",
                                    verbose_name=_("rating plan"))
    fallback_subjects = ArrayField(models.CharField(max_length=100), blank=True, default=list,
                                   verbose_name=_("fallback subjects"))

    class Meta:
        verbose_name = _("rating profile")
        verbose_name_plural = _("rating profiles")
        ordering = ["tenant", "category", "subject", "activation_time"]

    def __str__(self):
        return f"{self.tenant_id and self.tenant.code}:{self.category}:{self.subject} from {self.activation_time:%Y-%m-%d}"


# --- usage types, tariffs' rating, bundles ----------------------------------------------------------

class UsageType(BusinessRecord, Archivable):
    """What a usage record measures. Time is in seconds (stored as ns), data in bytes, others in items."""

    class Measure(models.TextChoices):
        TIME = "time", _("Time (seconds)")
        BYTES = "bytes", _("Data (bytes)")
        COUNT = "count", _("Count (items)")

    code = models.CharField(_("code"), max_length=32, unique=True,
                            validators=[RegexValidator(r"^[a-z][a-z0-9_]*$", _("Lower-case letters, digits, _."))])
    name = models.CharField(_("name"), max_length=100)
    measure = models.CharField(_("measure"), max_length=8, choices=Measure.choices, default=Measure.COUNT)
    split_by_time = models.BooleanField(_("split by time of day"), default=False,
                                        help_text=_("Priced like voice: split at midnight and timing changes."))

    class Meta:
        verbose_name = _("usage type")
        verbose_name_plural = _("usage types")
        ordering = ["code"]

    def __str__(self):
        return self.code


class TariffRating(BusinessRecord, Archivable):
    """How a catalog tariff's usage is rated: which tenant, categories, subject and plan."""

    tariff = models.ForeignKey("catalog.Tariff", on_delete=models.PROTECT, related_name="+", verbose_name=_("tariff"))
    tenant = models.ForeignKey(RatingTenant, on_delete=models.PROTECT, related_name="+", verbose_name=_("tenant"))
    categories = models.JSONField(_("categories"), default=dict, blank=True,
                                  help_text=_('Usage type → rating category, e.g. {"voice": "call"}; '
                                              "a type not listed uses its own code."))
    subject = models.CharField(_("rating subject"), max_length=100, blank=True,
                               help_text=_("Empty: the record's subject (the number or login)."))
    rating_plan = models.ForeignKey(RatingPlan, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                    verbose_name=_("rating plan"),
                                    help_text=_("Price with this plan directly, skipping rating profiles."))
    rounding_decimals = models.PositiveSmallIntegerField(_("engine rounding decimals"), default=5,
                                                         validators=[MaxValueValidator(18)])

    class Meta:
        verbose_name = _("tariff rating")
        verbose_name_plural = _("tariff ratings")
        ordering = ["tariff"]
        constraints = [live_unique(["tariff"], "rating_tariff_rating_unique")]

    def __str__(self):
        return f"{self.tariff_id and self.tariff.code} → {self.tenant_id and self.tenant.code}"

    def category_for(self, usage_type: str) -> str:
        return (self.categories or {}).get(usage_type) or usage_type


class Bundle(BusinessRecord, Archivable):
    """Free units a tariff includes per period (300 minutes, 10 GB, 100 SMS), optionally per destination group."""

    class Period(models.TextChoices):
        MONTH = "month", _("Month")
        WEEK = "week", _("Week")
        DAY = "day", _("Day")

    tariff = models.ForeignKey("catalog.Tariff", on_delete=models.PROTECT, related_name="+", verbose_name=_("tariff"))
    code = models.CharField(_("code"), max_length=32, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    usage_type = models.CharField(_("usage type"), max_length=32)
    allowance = models.BigIntegerField(_("allowance (base units)"), validators=[MinValueValidator(1)],
                                       help_text=_("ns for time, bytes for data, items otherwise."))
    period = models.CharField(_("period"), max_length=8, choices=Period.choices, default=Period.MONTH)
    destinations = ArrayField(models.CharField(max_length=64), blank=True, default=list,
                              verbose_name=_("destinations"),
                              help_text=_("Destination codes the units cover (empty: every destination)."))

    class Meta:
        verbose_name = _("bundle")
        verbose_name_plural = _("bundles")
        ordering = ["tariff", "code"]
        constraints = [live_unique(["tariff", "code"], "rating_bundle_code")]

    def __str__(self):
        return f"{self.tariff_id and self.tariff.code}/{self.code}"

    @property
    def allowance_text(self) -> str:
        from .units import format_usage

        return format_usage(self.allowance, self.usage_type)


class BundleCounter(models.Model):
    """Units of a bundle a subscription has used in one period."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.PROTECT, related_name="+",
                                     verbose_name=_("subscription"))
    bundle = models.ForeignKey(Bundle, on_delete=models.PROTECT, related_name="counters", verbose_name=_("bundle"))
    period_start = models.DateField(_("period start"))
    used = models.BigIntegerField(_("used (base units)"), default=0)
    updated_at = models.DateTimeField(_("updated"), default=now)

    class Meta:
        verbose_name = _("bundle counter")
        verbose_name_plural = _("bundle counters")
        ordering = ["-period_start", "subscription"]
        default_permissions = ("view",)
        constraints = [models.UniqueConstraint(fields=["subscription", "bundle", "period_start"],
                                               name="rating_bundle_counter_unique")]

    def __str__(self):
        return f"{self.bundle} {self.period_start}: {self.used}"


# --- mediation -------------------------------------------------------------------------------------

class UsageFormat(BusinessRecord, Archivable):
    """A declared mapping of a usage file: delimiter, header, columns, time format, units, filters.

    `spec` is JSON (see docs/rating.md); the built-in formats "csv" and "cgrates-cdr" are
    defined in code and cannot be shadowed.
    """

    code = models.CharField(_("code"), max_length=32, unique=True,
                            validators=[RegexValidator(r"^[a-z0-9][a-z0-9_.-]*$", _("Lower-case code."))])
    name = models.CharField(_("name"), max_length=100)
    spec = models.JSONField(_("specification"), default=dict)
    description = models.TextField(_("description"), blank=True)

    class Meta:
        verbose_name = _("usage format")
        verbose_name_plural = _("usage formats")
        ordering = ["code"]

    def __str__(self):
        return self.code


class UsageBatch(models.Model):
    """One import of usage (a file, an API batch, a reprocessing of rejected records)."""

    class Kind(models.TextChoices):
        FILE = "file", _("File")
        API = "api", _("API")
        REPROCESS = "reprocess", _("Reprocessing")

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices, default=Kind.FILE)
    format_code = models.CharField(_("format"), max_length=32, blank=True)
    file_name = models.CharField(_("file"), max_length=255, blank=True)
    file_size = models.BigIntegerField(_("bytes"), default=0)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.RUNNING)
    read = models.BigIntegerField(_("read"), default=0)
    rated = models.BigIntegerField(_("rated"), default=0)
    rejected = models.BigIntegerField(_("rejected"), default=0)
    duplicates = models.BigIntegerField(_("duplicates"), default=0)
    # Of the rated and rejected: records that replaced an earlier rejection of the same
    # (source, record id) — a corrected line imported again (the rejection is then superseded).
    reprocessed = models.BigIntegerField(_("reprocessed"), default=0)
    charged = models.DecimalField(_("charged to prepaid accounts"), max_digits=24, decimal_places=6, default=0)
    transfers = models.PositiveIntegerField(_("ledger transfers"), default=0)
    charged_online = models.BigIntegerField(_("matched to online sessions"), default=0,
                                            help_text=_("Records of calls already charged online (semi-online)."))
    reasons = models.JSONField(_("rejections by reason"), default=dict, blank=True)
    started_at = models.DateTimeField(_("started"), default=now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    actor = models.CharField(_("actor"), max_length=150, blank=True)
    error = models.TextField(_("error"), blank=True)
    timings = models.JSONField(_("timings, s"), default=dict, blank=True)

    class Meta:
        verbose_name = _("usage batch")
        verbose_name_plural = _("usage batches")
        ordering = ["-started_at"]
        default_permissions = ("view", "add")
        permissions = [("rerate_usage", "Can re-rate usage"), ("reprocess_usage", "Can correct and reprocess rejected usage")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.file_name or ''} {self.started_at:%Y-%m-%d %H:%M}".replace("  ", " ")

    def summary(self) -> dict:
        return {"batch": str(self.id), "status": self.status, "read": self.read, "rated": self.rated,
                "rejected": self.rejected, "duplicates": self.duplicates, "reprocessed": self.reprocessed,
                "charged": str(self.charged),
                "transfers": self.transfers, "reasons": self.reasons}


class UsageRecord(models.Model):
    """An input usage record that is not a duplicate: rated, or rejected with a reason.

    Unique by (source, record_id) in the database among the records not superseded: a record
    is never taken twice. A rejected record stays here with its reason and raw line until it
    is corrected and reprocessed; it is never dropped. A corrected line imported again with
    the same record id replaces a *rejected* record: the rejection stays, as it was, with
    status "superseded" and a link to the record that replaced it.

    Millions of rows arrive per import, set-based, so the table carries no foreign-key
    triggers (its references are resolved by joins with the tables they point to, in the
    same statement) and its batch and time indexes are BRIN (rows arrive in batch order
    and roughly in time order): only the primary key, the (source, record_id) key and
    the per-account index are B-trees.
    """

    class Status(models.TextChoices):
        RATED = "rated", _("Rated")
        REJECTED = "rejected", _("Rejected")
        SUPERSEDED = "superseded", _("Rejected, superseded by a corrected import")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    batch = models.ForeignKey(UsageBatch, on_delete=models.PROTECT, related_name="records", verbose_name=_("batch"),
                              db_constraint=False, db_index=False)
    line_no = models.BigIntegerField(_("line"), default=0)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    source = models.CharField(_("source"), max_length=64, blank=True)
    record_id = models.CharField(_("record id"), max_length=128)
    subject = models.CharField(_("subject"), max_length=100, blank=True)
    destination = models.CharField(_("destination"), max_length=64, blank=True)
    usage_type = models.CharField(_("type"), max_length=32, blank=True)
    start_time = models.DateTimeField(_("start"), null=True, blank=True)
    usage = models.BigIntegerField(_("usage (base units)"), null=True, blank=True)
    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="+", db_index=False, db_constraint=False,
                                     verbose_name=_("subscription"))
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT, null=True, blank=True,
                                        related_name="+", db_index=False, db_constraint=False,
                                        verbose_name=_("billing account"))
    tariff = models.ForeignKey("catalog.Tariff", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                               db_index=False, db_constraint=False, verbose_name=_("tariff"))
    rating_plan = models.CharField(_("rating plan"), max_length=64, blank=True)
    matched_destination = models.CharField(_("matched destination"), max_length=64, blank=True)
    free_units = models.BigIntegerField(_("free units used"), default=0)
    bundle = models.ForeignKey(Bundle, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                               db_index=False, db_constraint=False, verbose_name=_("bundle"))
    cost = models.DecimalField(_("cost"), max_digits=28, decimal_places=10, null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    payment_mode = models.CharField(_("payment mode"), max_length=8, blank=True)
    transfer = models.ForeignKey("ledger.Transfer", on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="+", db_constraint=False, db_index=False,
                                 verbose_name=_("ledger transfer"))
    rated_at = models.DateTimeField(_("rated"), null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=32, blank=True)
    message = models.TextField(_("message"), blank=True)
    raw = models.TextField(_("raw record"), blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=1)
    superseded_by = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                      db_constraint=False, db_index=False, verbose_name=_("superseded by"))
    # Semi-online billing: the online charging session that charged this call already (its id;
    # rating sits below charging, so no foreign key). Not charged again, not invoiced again.
    online_session = models.UUIDField(_("charged online by session"), null=True, blank=True)

    class Meta:
        verbose_name = _("usage record")
        verbose_name_plural = _("usage records")
        ordering = ["-start_time"]
        constraints = [models.UniqueConstraint(fields=["source", "record_id"], condition=~Q(status="superseded"),
                                               name="rating_usage_source_record_live")]
        indexes = [
            models.Index(fields=["billing_account", "start_time"], name="rating_usage_account_time"),
            BrinIndex(fields=["batch"], name="rating_usage_batch_brin"),
            BrinIndex(fields=["start_time"], name="rating_usage_time_brin"),
            models.Index(fields=["reason"], condition=Q(status="rejected"), name="rating_usage_rejected"),
        ]

    def __str__(self):
        return f"{self.source}/{self.record_id}"

    @property
    def usage_display(self) -> str:
        from .units import format_usage

        return format_usage(self.usage, self.usage_type)


class RatedManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(status=UsageRecord.Status.RATED)


class RejectedManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(status=UsageRecord.Status.REJECTED)


class RatedUsage(UsageRecord):
    """Rated usage: priced, posted to the prepaid account's ledger or kept for the postpaid invoice."""

    objects = RatedManager()

    class Meta:
        proxy = True
        verbose_name = _("rated usage")
        verbose_name_plural = _("rated usage")
        ordering = ["-start_time"]
        default_permissions = ("view",)


class RejectedUsage(UsageRecord):
    """The queue of rejected usage records, with their reasons; correct and reprocess them."""

    objects = RejectedManager()

    class Meta:
        proxy = True
        verbose_name = _("rejected usage")
        verbose_name_plural = _("rejected usage")
        ordering = ["-start_time"]
        default_permissions = ("view", "change")


class RerateRun(models.Model):
    """One re-rating: the records of a period priced again, only the differences booked."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    date_from = models.DateTimeField(_("from"))
    date_to = models.DateTimeField(_("to"))
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT, null=True, blank=True,
                                        related_name="+", verbose_name=_("billing account"))
    records = models.BigIntegerField(_("records priced"), default=0)
    changed = models.BigIntegerField(_("records changed"), default=0)
    unratable = models.BigIntegerField(_("no longer ratable (kept)"), default=0)
    old_total = models.DecimalField(_("old total"), max_digits=24, decimal_places=6, default=0)
    new_total = models.DecimalField(_("new total"), max_digits=24, decimal_places=6, default=0)
    difference = models.DecimalField(_("difference"), max_digits=24, decimal_places=6, default=0)
    transfers = models.PositiveIntegerField(_("ledger transfers"), default=0)
    started_at = models.DateTimeField(_("started"), default=now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    actor = models.CharField(_("actor"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("re-rating run")
        verbose_name_plural = _("re-rating runs")
        ordering = ["-started_at"]
        default_permissions = ("view",)

    def __str__(self):
        return f"{self.date_from:%Y-%m-%d}…{self.date_to:%Y-%m-%d} ({self.started_at:%Y-%m-%d %H:%M})"


class RerateLine(models.Model):
    """The trace of one re-priced record: old and new cost, and the transfer booking the difference."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    run = models.ForeignKey(RerateRun, on_delete=models.PROTECT, related_name="lines", verbose_name=_("run"))
    record = models.ForeignKey(UsageRecord, on_delete=models.PROTECT, related_name="rerates",
                               verbose_name=_("usage record"))
    old_cost = models.DecimalField(_("old cost"), max_digits=28, decimal_places=10, null=True)
    new_cost = models.DecimalField(_("new cost"), max_digits=28, decimal_places=10, null=True)
    old_free_units = models.BigIntegerField(_("old free units"), default=0)
    new_free_units = models.BigIntegerField(_("new free units"), default=0)
    old_rating_plan = models.CharField(_("old rating plan"), max_length=64, blank=True)
    new_rating_plan = models.CharField(_("new rating plan"), max_length=64, blank=True)
    transfer = models.ForeignKey("ledger.Transfer", on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="+", db_constraint=False, verbose_name=_("ledger transfer"))

    class Meta:
        verbose_name = _("re-rating line")
        verbose_name_plural = _("re-rating lines")
        ordering = ["run", "record"]
        default_permissions = ("view",)

    def __str__(self):
        return f"{self.record_id}: {plain(self.old_cost)} → {plain(self.new_cost)}"
