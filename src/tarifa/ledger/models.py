"""The double-entry ledger (ARCHITECTURE.md rule 4) and the customers' billing accounts.

TigerBeetle's model in PostgreSQL:

- `LedgerAccount` keeps running totals: posted and pending, debits and credits.
- `Transfer` is immutable: it debits one account and credits another of the same
  currency. A PostgreSQL trigger refuses UPDATE and DELETE on its table; corrections
  are new transfers that reverse (`reverses`) the wrong one, at most once.
- `Hold` is a pending (two-phase) transfer: its amount sits in the accounts'
  pending totals until it is posted (possibly for less), voided or expired — once.
- `BillingAccount` is what the operator and the customer see: number, currency,
  prepaid/postpaid, credit limit, status. Its money lives in its `LedgerAccount`
  (code `customer:<number>`); locking that row is the account's one lock (rule 7).

Writes go through `services.py` only.
"""

from decimal import Decimal

from django.contrib.postgres.indexes import BrinIndex
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.kernel.ids import uuid7
from tarifa.kernel.models import Archivable, BusinessRecord, local_branch_code
from tarifa.kernel.money import CURRENCY_CHOICES, format_amount


def money_field(verbose_name, **kwargs):
    return models.DecimalField(verbose_name, max_digits=20, decimal_places=6, **kwargs)


account_code = RegexValidator(r"^[a-z_]+(:[A-Za-z0-9_.\-]+)?$",
                              _("A code is a lower-case prefix, optionally ':' and a name, e.g. cash:DESK1."))


class LedgerAccount(models.Model):
    """An account of the ledger: a customer's money, or a system account (cash, revenue, …).

    `balance` is credits − debits (posted): for a customer account, the money the
    customer has with us (negative: owes). `available` also subtracts pending debits
    (holds), which is what spending limits are checked against.
    """

    class Kind(models.TextChoices):
        CUSTOMER = "customer", _("Customer")
        SYSTEM = "system", _("System")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    branch = models.CharField(_("branch"), max_length=16, default=local_branch_code, editable=False)
    code = models.CharField(_("code"), max_length=100, validators=[account_code])
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    name = models.CharField(_("name"), max_length=200, blank=True)
    debits_posted = money_field(_("debits posted"), default=Decimal(0), editable=False)
    credits_posted = money_field(_("credits posted"), default=Decimal(0), editable=False)
    debits_pending = money_field(_("debits pending"), default=Decimal(0), editable=False)
    credits_pending = money_field(_("credits pending"), default=Decimal(0), editable=False)
    created_at = models.DateTimeField(_("created"), default=now, editable=False)

    class Meta:
        verbose_name = _("ledger account")
        verbose_name_plural = _("ledger accounts")
        ordering = ["code", "currency"]
        default_permissions = ("view", "add")
        constraints = [
            models.UniqueConstraint(fields=["code", "currency"], name="ledger_account_code_currency"),
            # The target of the transfers' composite foreign keys (id, currency): the
            # database itself refuses a transfer whose currency is not its accounts'.
            models.UniqueConstraint(fields=["id", "currency"], name="ledger_account_id_currency"),
            models.CheckConstraint(condition=Q(debits_posted__gte=0) & Q(credits_posted__gte=0)
                                   & Q(debits_pending__gte=0) & Q(credits_pending__gte=0),
                                   name="ledger_account_totals_not_negative"),
        ]

    def __str__(self):
        return f"{self.code} {self.currency}"

    @property
    def balance(self) -> Decimal:
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> Decimal:
        return self.credits_posted - self.debits_posted - self.debits_pending


class TransferQuerySet(models.QuerySet):
    def by_key(self, key):
        """The transfer (at most one) that claimed idempotency key `key` (or the keys of a
        list): found through TransferKey's primary key, then the transfer's."""
        keys = [key] if isinstance(key, str) else list(key)
        return self.filter(pk__in=TransferKey.objects.filter(idempotency_key__in=keys).values("transfer_id"))


class Transfer(models.Model):
    """One money movement: debit one account, credit another, same currency. Never changed.

    `idempotency_key` is the caller's name for the movement: posting it again returns
    this transfer; posting different content under it is refused.
    """

    class Kind(models.TextChoices):
        PAYMENT = "payment", _("Payment")
        CHARGE = "charge", _("Charge")
        TAX = "tax", _("Tax")
        REFUND = "refund", _("Refund")
        REVERSAL = "reversal", _("Reversal")
        ADJUSTMENT = "adjustment", _("Adjustment")
        VOUCHER = "voucher", _("Voucher")
        TRANSFER = "transfer", _("Transfer between accounts")
        HOLD_POST = "hold_post", _("Posted hold")
        SETTLEMENT = "settlement", _("Settlement")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    branch = models.CharField(_("branch"), max_length=16, default=local_branch_code, editable=False)
    # No foreign key constraints: a statement-level trigger (migration 0004) checks every
    # inserted row's accounts (in its currency), reversed transfer and hold in one
    # set-based query — row-by-row foreign key checks would cost a bulk insert a third
    # of its time. Accounts, transfers and holds are never deleted (triggers refuse it).
    # Indexed by the (account, created_at) indexes below.
    debit_account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="debits",
                                      db_constraint=False, db_index=False, verbose_name=_("debit account"))
    credit_account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="credits",
                                       db_constraint=False, db_index=False, verbose_name=_("credit account"))
    amount = money_field(_("amount"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    tags = models.JSONField(_("tags"), default=dict, blank=True)
    reference_type = models.CharField(_("reference type"), max_length=100, blank=True)
    reference_id = models.CharField(_("reference id"), max_length=64, blank=True)
    # Unique through TransferKey (the table is partitioned by month; PostgreSQL enforces
    # uniqueness across partitions only for keys that contain the partition key, the id).
    # Find a transfer by its key with `Transfer.objects.by_key(key)`, not a filter on this column.
    idempotency_key = models.CharField(_("idempotency key"), max_length=200)
    # At most once each: TransferKey's partial unique indexes, which ordinary transfers do not enter.
    reverses = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, db_index=False,
                                 db_constraint=False, related_name="reversals", verbose_name=_("reverses"))
    pending = models.ForeignKey("Hold", on_delete=models.PROTECT, null=True, blank=True, db_index=False,
                                db_constraint=False, related_name="postings", verbose_name=_("posts hold"))
    memo = models.TextField(_("memo"), blank=True)
    actor = models.CharField(_("actor"), max_length=150, blank=True)
    created_at = models.DateTimeField(_("created"), default=now)

    objects = TransferQuerySet.as_manager()

    class Meta:
        verbose_name = _("transfer")
        verbose_name_plural = _("transfers")
        # UUIDv7 ids sort by creation: the primary key serves "newest first" without a time index.
        ordering = ["-id"]
        permissions = [("reverse_transfer", _("Can reverse transfers"))]
        default_permissions = ("view",)
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_transfer_amount_positive"),
            models.CheckConstraint(condition=~Q(debit_account=models.F("credit_account")),
                                   name="ledger_transfer_distinct_accounts"),
        ]
        # Few indexes, on purpose: each costs every bulk insert (issue 18). Who needs each:
        # - primary key: "newest first" lists and pages, the preview's id range, reversals;
        # - idempotency key: unique in TransferKey (its primary key), not here;
        # - reference: a subscription's fees (its screen, termination's refund of fees paid
        #   ahead), the billing check's invoice bookings;
        # - (debit|credit account, created_at): statements, account screens, billing sources,
        #   the transfer filter by account;
        # - BRIN on created_at: date ranges (reports, the transfer filter by date).
        # No index on tags (a GIN index was dropped in 0007): no query of the application
        # reads tags through an index (billing, reports and the charge read `tags->>…` on
        # rows found by account or date); the operator's `tag=` filter of the transfer list
        # and API scans the rows its other filters and the newest-first order leave.
        indexes = [
            models.Index(fields=["reference_type", "reference_id"], name="ledger_transfer_reference"),
            models.Index(fields=["debit_account", "created_at"], name="ledger_transfer_debit_at"),
            models.Index(fields=["credit_account", "created_at"], name="ledger_transfer_credit_at"),
            BrinIndex(fields=["created_at"], name="ledger_transfer_created_brin"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {format_amount(self.amount, self.currency)}"

    def content(self) -> dict:
        """What an idempotent retry must repeat exactly (everything but id, actor and time)."""
        return {
            "debit_account": str(self.debit_account_id), "credit_account": str(self.credit_account_id),
            "amount": self.amount, "currency": self.currency, "kind": self.kind, "tags": self.tags or {},
            "reference_type": self.reference_type, "reference_id": self.reference_id,
            "reverses": str(self.reverses_id) if self.reverses_id else None,
            "pending": str(self.pending_id) if self.pending_id else None, "memo": self.memo,
        }


class TransferKey(models.Model):
    """The claim of an idempotency key — and of the transfer a reversal reverses, the hold a
    posting posts — by one transfer, across all months of the partitioned transfer table.

    Written in the same statement as the transfer (services.INSERT_TRANSFER_SQL and
    BULK_INSERT_SQL claim with `ON CONFLICT` on its primary key); the transfer table's insert
    check refuses a transfer without its row. Append-only, like the transfers (migration 0008).
    """

    idempotency_key = models.CharField(_("idempotency key"), max_length=200, primary_key=True)
    transfer = models.ForeignKey(Transfer, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
                                 related_name="+", verbose_name=_("transfer"))
    reverses_id = models.UUIDField(_("reverses"), null=True, blank=True)
    pending_id = models.UUIDField(_("posts hold"), null=True, blank=True)

    class Meta:
        db_table = "ledger_transfer_key"
        verbose_name = _("transfer key")
        verbose_name_plural = _("transfer keys")
        default_permissions = ()
        constraints = [
            models.UniqueConstraint(fields=["reverses_id"], condition=Q(reverses_id__isnull=False),
                                    name="ledger_transfer_reversed_once"),
            models.UniqueConstraint(fields=["pending_id"], condition=Q(pending_id__isnull=False),
                                    name="ledger_transfer_hold_posted_once"),
        ]

    def __str__(self):
        return self.idempotency_key


class Hold(models.Model):
    """A pending transfer: reserved now, then posted (in full or less), voided or expired — once.

    `resolved_at` is set exactly when the state leaves `pending`, in the same
    conditional UPDATE; a posted hold has exactly one posting transfer (`posting`).
    """

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        POSTED = "posted", _("Posted")
        VOIDED = "voided", _("Voided")
        EXPIRED = "expired", _("Expired")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    branch = models.CharField(_("branch"), max_length=16, default=local_branch_code, editable=False)
    debit_account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="debit_holds",
                                      db_constraint=False, verbose_name=_("debit account"))
    credit_account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="credit_holds",
                                       db_constraint=False, verbose_name=_("credit account"))
    amount = money_field(_("amount"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    kind = models.CharField(_("kind of the posting"), max_length=16, choices=Transfer.Kind.choices,
                            default=Transfer.Kind.HOLD_POST)
    tags = models.JSONField(_("tags"), default=dict, blank=True)
    reference_type = models.CharField(_("reference type"), max_length=100, blank=True)
    reference_id = models.CharField(_("reference id"), max_length=64, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    memo = models.TextField(_("memo"), blank=True)
    actor = models.CharField(_("actor"), max_length=150, blank=True)
    created_at = models.DateTimeField(_("created"), default=now, editable=False)
    expires_at = models.DateTimeField(_("expires"), db_index=True)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.PENDING)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    resolved_by = models.CharField(_("resolved by"), max_length=150, blank=True)
    resolution_note = models.TextField(_("resolution note"), blank=True)

    class Meta:
        verbose_name = _("hold")
        verbose_name_plural = _("holds")
        ordering = ["-id"]
        default_permissions = ("view", "add")
        permissions = [("post_hold", _("Can post holds")), ("void_hold", _("Can void holds"))]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_hold_amount_positive"),
            models.CheckConstraint(condition=~Q(debit_account=models.F("credit_account")),
                                   name="ledger_hold_distinct_accounts"),
            models.CheckConstraint(condition=Q(state="pending", resolved_at__isnull=True)
                                   | (~Q(state="pending") & Q(resolved_at__isnull=False)),
                                   name="ledger_hold_resolved_once"),
        ]
        indexes = [models.Index(fields=["expires_at"], condition=Q(state="pending"), name="ledger_hold_pending_exp")]

    def __str__(self):
        return f"Hold {self.amount.normalize():f} {self.currency} ({self.state})"

    def content(self) -> dict:
        return {
            "debit_account": str(self.debit_account_id), "credit_account": str(self.credit_account_id),
            "amount": self.amount, "currency": self.currency, "kind": self.kind, "tags": self.tags or {},
            "reference_type": self.reference_type, "reference_id": self.reference_id, "memo": self.memo,
        }


class BillingAccount(BusinessRecord, Archivable):
    """A customer's account as the operator knows it: number, currency, mode, credit limit."""

    class PaymentMode(models.TextChoices):
        PREPAID = "prepaid", _("Prepaid")
        POSTPAID = "postpaid", _("Postpaid")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        CLOSED = "closed", _("Closed")

    number = models.CharField(_("number"), max_length=32, unique=True, editable=False)
    customer = models.ForeignKey("crm.Customer", on_delete=models.PROTECT, related_name="billing_accounts",
                                 verbose_name=_("customer"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    payment_mode = models.CharField(_("payment mode"), max_length=16, choices=PaymentMode.choices,
                                    default=PaymentMode.PREPAID)
    credit_limit = money_field(_("credit limit"), default=Decimal(0), validators=[MinValueValidator(Decimal(0))])
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE,
                              editable=False, db_index=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True, editable=False)
    ledger_account = models.OneToOneField(LedgerAccount, on_delete=models.PROTECT, related_name="billing_account",
                                          editable=False, verbose_name=_("ledger account"))

    class Meta:
        verbose_name = _("billing account")
        verbose_name_plural = _("billing accounts")
        ordering = ["number"]
        permissions = [
            ("adjust", _("Can adjust account balances")),
            ("transfer_funds", _("Can transfer funds between a customer's accounts")),
            ("switch_payment_mode", _("Can switch accounts between prepaid and postpaid")),
            ("close_account", _("Can close billing accounts")),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(credit_limit__gte=0), name="ledger_billing_credit_limit_not_negative"),
        ]

    def __str__(self):
        return self.number

    @property
    def balance(self) -> Decimal:
        return self.ledger_account.balance

    @property
    def available(self) -> Decimal:
        return self.ledger_account.available

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class PaymentModeChange(models.Model):
    """History of an account's payment mode: the first row is the mode it was opened with."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    billing_account = models.ForeignKey(BillingAccount, on_delete=models.PROTECT, related_name="mode_changes",
                                        verbose_name=_("billing account"))
    from_mode = models.CharField(_("from"), max_length=16, choices=BillingAccount.PaymentMode.choices, blank=True)
    to_mode = models.CharField(_("to"), max_length=16, choices=BillingAccount.PaymentMode.choices)
    effective_date = models.DateField(_("effective from"))
    actor = models.CharField(_("actor"), max_length=150, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    effects = models.JSONField(_("settled at the switch"), default=dict, blank=True,
                               help_text=_("What was settled in flight: e.g. open online charging sessions."))
    created_at = models.DateTimeField(_("created"), default=now, editable=False)

    class Meta:
        verbose_name = _("payment mode change")
        verbose_name_plural = _("payment mode changes")
        ordering = ["billing_account", "effective_date", "created_at"]

    def __str__(self):
        return f"{self.from_mode or '—'} → {self.to_mode} from {self.effective_date}"
