"""Subscriptions: a service under a tariff for a billing account, from activation to termination.

Status is `pending → active ⇄ suspended → terminated`. Suspension is a blocking state
(Kill Bill's overdue model): each cause (balance, dunning, customer request, operator)
is its own open `Suspension` row, and the subscription is active again only when no
cause is open. Identifiers are unique among live (not terminated) subscriptions by
partial unique indexes, so the database itself refuses a duplicate.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.kernel.ids import uuid7
from tarifa.kernel.models import BusinessRecord, WorkBatch
from tarifa.kernel.secrets import EncryptedTextField

IDENTIFIERS = ["login", "phone_number", "iccid", "imsi", "ip_address", "mac_address", "smart_card"]


class Subscription(BusinessRecord):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")
        TERMINATED = "terminated", _("Terminated")

    number = models.CharField(_("number"), max_length=32, unique=True, editable=False)
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT,
                                        related_name="subscriptions", verbose_name=_("billing account"))
    service = models.ForeignKey("catalog.Service", on_delete=models.PROTECT, related_name="subscriptions",
                                verbose_name=_("service"))
    tariff = models.ForeignKey("catalog.Tariff", on_delete=models.PROTECT, related_name="subscriptions",
                               verbose_name=_("tariff"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING,
                              db_index=True, editable=False)
    parameters = models.JSONField(_("parameters"), default=dict, blank=True)
    login = models.CharField(_("login"), max_length=100, blank=True)
    # The login's password for network access (RADIUS PAP/CHAP need it back, so it is encrypted, not
    # hashed); the API and the forms call it `password` and never show it.
    access_password = EncryptedTextField(_("access password"), blank=True, editable=False)
    phone_number = models.CharField(_("phone number"), max_length=32, blank=True)
    iccid = models.CharField(_("SIM ICCID"), max_length=22, blank=True)
    imsi = models.CharField(_("IMSI"), max_length=15, blank=True)
    ip_address = models.CharField(_("IP address"), max_length=45, blank=True)
    mac_address = models.CharField(_("MAC address"), max_length=17, blank=True)
    smart_card = models.CharField(_("smart card"), max_length=32, blank=True)
    activated_on = models.DateField(_("activated on"), null=True, blank=True, editable=False)
    terminated_on = models.DateField(_("terminated on"), null=True, blank=True, editable=False,
                                     help_text=_("The last day of service (charged)."))
    note = models.TextField(_("note"), blank=True)

    class Meta:
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        ordering = ["number"]
        permissions = [
            ("activate_subscription", "Can activate subscriptions"),
            ("suspend_subscription", "Can suspend and resume subscriptions"),
            ("terminate_subscription", "Can terminate subscriptions"),
            ("change_tariff", "Can change a subscription's tariff"),
            ("replace_sim", "Can replace SIM cards and change numbers"),
            ("charge_fees", "Can run fee charging"),
        ]
        constraints = [
            models.UniqueConstraint(fields=[name], condition=~Q(status="terminated") & ~Q(**{name: ""}),
                                    name=f"subscriptions_live_{name}_unique")
            for name in IDENTIFIERS
        ]
        indexes = [models.Index(fields=["billing_account", "status"], name="subscriptions_account_status")]

    def __str__(self):
        label = next((getattr(self, n) for n in IDENTIFIERS if getattr(self, n)), "")
        return f"{self.number} {label}".strip()

    @property
    def is_live(self) -> bool:
        return self.status != self.Status.TERMINATED


class IdentifierAssignment(models.Model):
    """Which subscription held an identifier (phone number, login, SIM …) when.

    Written by the services whenever an identifier is given, changed or freed, so a usage
    record is matched to the subscription that owned its subject *at the record's time*,
    not to today's owner. `valid_until` is excluded; NULL while the identifier is held.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="identifier_history")
    kind = models.CharField(_("kind"), max_length=16)
    value = models.CharField(_("value"), max_length=100)
    valid_from = models.DateTimeField(_("valid from"))
    valid_until = models.DateTimeField(_("valid until (excluded)"), null=True, blank=True)

    class Meta:
        ordering = ["value", "valid_from"]
        indexes = [models.Index(fields=["value", "valid_from"], name="subscriptions_ident_value")]
        constraints = [
            models.CheckConstraint(condition=Q(valid_until__isnull=True) | Q(valid_until__gte=models.F("valid_from")),
                                   name="subscriptions_ident_not_negative"),
        ]

    def __str__(self):
        return f"{self.kind} {self.value} {self.valid_from:%Y-%m-%d %H:%M}…{self.valid_until or ''}"


class TariffPeriod(models.Model):
    """Which tariff a subscription is charged under, from `valid_from` until `valid_until` (excluded)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="tariff_periods")
    tariff = models.ForeignKey("catalog.Tariff", on_delete=models.PROTECT, related_name="+")
    valid_from = models.DateField(_("valid from"))
    valid_until = models.DateField(_("valid until (excluded)"), null=True, blank=True)
    parameters = models.JSONField(_("parameters given"), default=dict, blank=True,
                                  help_text=_("Open parameters given for a scheduled change; applied when it starts."))
    created_at = models.DateTimeField(default=now, editable=False)

    class Meta:
        ordering = ["subscription", "valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "valid_from"], name="subscriptions_period_unique"),
            models.CheckConstraint(condition=Q(valid_until__isnull=True) | Q(valid_until__gt=models.F("valid_from")),
                                   name="subscriptions_period_not_empty"),
        ]

    def __str__(self):
        return f"{self.tariff} {self.valid_from}…{self.valid_until or ''}"


class Suspension(models.Model):
    """One open or closed cause of suspension (a blocking state).

    Days are not charged (unless the tariff says so) when a suspension covers the whole
    day: it started before the day and had not ended by its end.
    """

    class Cause(models.TextChoices):
        BALANCE = "balance", _("Balance below threshold")
        DUNNING = "dunning", _("Dunning")
        CUSTOMER_REQUEST = "customer_request", _("Customer request")
        OPERATOR = "operator", _("Operator")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="suspensions",
                                     verbose_name=_("subscription"))
    cause = models.CharField(_("cause"), max_length=20, choices=Cause.choices)
    started_at = models.DateTimeField(_("started"), default=now)
    started_on = models.DateField(_("started on"))
    planned_end = models.DateField(_("planned end"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    ended_on = models.DateField(_("ended on"), null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    actor = models.CharField(_("actor"), max_length=150, blank=True)
    ended_by = models.CharField(_("ended by"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("suspension")
        verbose_name_plural = _("suspensions")
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "cause"], condition=Q(ended_at__isnull=True),
                                    name="subscriptions_one_open_cause"),
        ]
        indexes = [models.Index(fields=["subscription", "started_on"], name="subscriptions_susp_sub_day")]

    def __str__(self):
        return f"{self.get_cause_display()} {self.started_on}…{self.ended_on or ''}"

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


class StatusChange(models.Model):
    """The life cycle as it happened: every transition with its actor and reason."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="status_changes")
    from_status = models.CharField(_("from"), max_length=16, blank=True)
    to_status = models.CharField(_("to"), max_length=16)
    cause = models.CharField(_("cause"), max_length=20, blank=True)
    at = models.DateTimeField(_("at"), default=now)
    actor = models.CharField(_("actor"), max_length=150, blank=True)
    reason = models.TextField(_("reason"), blank=True)

    class Meta:
        verbose_name = _("status change")
        verbose_name_plural = _("status changes")
        ordering = ["subscription", "at"]

    def __str__(self):
        return f"{self.from_status or '—'} → {self.to_status}"


class SubscriptionItem(BusinessRecord):
    """A TV channel or package a subscription has picked, charged per item from `added_on`."""

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="items",
                                     verbose_name=_("subscription"))
    channel = models.ForeignKey("catalog.Channel", on_delete=models.PROTECT, null=True, blank=True,
                                related_name="+", verbose_name=_("channel"))
    package = models.ForeignKey("catalog.ChannelPackage", on_delete=models.PROTECT, null=True, blank=True,
                                related_name="+", verbose_name=_("package"))
    added_on = models.DateField(_("added on"))
    removed_on = models.DateField(_("removed on"), null=True, blank=True,
                                  help_text=_("The first day no longer charged."))

    class Meta:
        verbose_name = _("TV channel pick")
        verbose_name_plural = _("TV channel picks")
        ordering = ["subscription", "added_on"]
        constraints = [
            models.CheckConstraint(condition=Q(channel__isnull=True) ^ Q(package__isnull=True),
                                   name="subscriptions_item_one_target"),
        ]

    def __str__(self):
        return str(self.channel or self.package)

    @property
    def code(self) -> str:
        return f"channel-{self.channel.code}" if self.channel_id else f"package-{self.package.code}"


class PromisedPayment(BusinessRecord):
    """Temporary credit a customer took: counts towards the balance until it expires."""

    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT,
                                        related_name="promised_payments", verbose_name=_("billing account"))
    amount = models.DecimalField(_("amount"), max_digits=20, decimal_places=6)
    granted_at = models.DateTimeField(_("granted"), default=now)
    expires_at = models.DateTimeField(_("expires"))
    expired_at = models.DateTimeField(_("expired (processed)"), null=True, blank=True)
    actor = models.CharField(_("actor"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("promised payment")
        verbose_name_plural = _("promised payments")
        ordering = ["-granted_at"]
        indexes = [models.Index(fields=["billing_account", "expires_at"], name="subscriptions_promise_acct")]

    def __str__(self):
        return f"{self.billing_account} {self.amount.normalize():f} until {self.expires_at:%Y-%m-%d %H:%M}"


class ChargeRun(models.Model):
    """One run of the daily fee charging (`tarifa billing charge --as-of DAY`)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    as_of = models.DateField(_("as of"), db_index=True)
    first_day = models.DateField(_("first day charged"))
    started_at = models.DateTimeField(_("started"), default=now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    staged = models.PositiveIntegerField(_("charges computed"), default=0)
    inserted = models.PositiveIntegerField(_("charges posted"), default=0)
    refused = models.PositiveIntegerField(_("charges refused"), default=0,
                                          help_text=_("Prepaid charges that did not fit the account's limit."))
    suspended = models.PositiveIntegerField(_("subscriptions suspended"), default=0)
    resumed = models.PositiveIntegerField(_("subscriptions resumed"), default=0)
    actor = models.CharField(_("actor"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("charge run")
        verbose_name_plural = _("charge runs")
        ordering = ["-started_at"]

    def __str__(self):
        return f"{self.first_day}…{self.as_of}"


class ChargeBatch(WorkBatch):
    """One batch of billing accounts of a daily charge handed to the workers (ids in [low, high]).
    Its row lock is the worker's lease; done in the same transaction as the batch's charges."""

    run = models.ForeignKey(ChargeRun, on_delete=models.CASCADE, related_name="batches", verbose_name=_("charge run"))

    class Meta(WorkBatch.Meta):
        verbose_name = _("charge batch")
        verbose_name_plural = _("charge batches")
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="subscriptions_chargebatch_run_seq")]
        indexes = [models.Index(fields=["run"], condition=models.Q(done=False),
                                name="subs_chargebatch_pending")]


class ReversedFee(models.Model):
    """How many times the charge of one recurring fee for one period was reversed.

    A recurring charge's idempotency key is `fee:<subscription>:<fee>:<period>`; once it
    has been reversed (fees charged past a termination or a suspension), charging that
    period again — the subscription resumed within days already charged ahead — uses the
    key `…:<period>:<times + 1>`, so the ledger's keys still post each charge once.
    """

    key = models.CharField(_("fee key"), max_length=200, primary_key=True)
    times = models.PositiveIntegerField(_("times reversed"), default=0)

    class Meta:
        verbose_name = _("reversed fee")
        verbose_name_plural = _("reversed fees")

    def __str__(self):
        return f"{self.key} ×{self.times}"


class BalanceWarning(models.Model):
    """A low-balance warning sent for an account (at most one between two credits)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT, related_name="+")
    warned_at = models.DateTimeField(default=now)
    balance = models.DecimalField(max_digits=20, decimal_places=6)

    class Meta:
        indexes = [models.Index(fields=["billing_account", "warned_at"], name="subscriptions_warning_acct")]
from .device_models import DeviceAgreement  # noqa: E402,F401  (devices sold or rented to a subscription)
