"""Money coming in (and going back out): payments from every channel, cash desks and cashier
shifts, payment gateways (terminal networks and card providers), bank statements, vouchers
(scratch cards), refunds and automatic payments.

Every payment is a ledger transfer (ARCHITECTURE.md rule 4) debiting the channel's system
account and crediting the customer's; the `Payment` row is the business record around it
(number, channel, who took it, where, the provider's transaction id). Writes go through
`services` only.

The accounting of each channel (the system account a payment debits):

| channel         | debit account                                      |
|-----------------|----------------------------------------------------|
| cash            | `cash:<desk code>` (`cash:main` without a desk)    |
| bank_transfer   | `bank`                                             |
| card            | `clearing:<gateway code>` (`clearing:card`)        |
| terminal        | `clearing:<gateway code>` (`clearing:terminal`)    |
| voucher         | `voucher_liability`                                |
| mobile, other   | `clearing:mobile`, `clearing:other`                |
"""

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.kernel.ids import uuid7
from tarifa.kernel.models import Archivable, BusinessRecord, local_branch_code
from tarifa.kernel.money import CURRENCY_CHOICES


def money_field(verbose_name, **kwargs):
    return models.DecimalField(verbose_name, max_digits=20, decimal_places=6, **kwargs)


code_validator = RegexValidator(r"^[A-Za-z0-9_.\-]{1,40}$",
                                _("Letters, digits, dot, dash and underscore only (at most 40)."))

USER = settings.AUTH_USER_MODEL


class Channel(models.TextChoices):
    CASH = "cash", _("Cash")
    BANK_TRANSFER = "bank_transfer", _("Bank transfer")
    CARD = "card", _("Card")
    TERMINAL = "terminal", _("Payment terminal")
    VOUCHER = "voucher", _("Voucher")
    MOBILE = "mobile", _("Mobile payment")
    OTHER = "other", _("Other")


class PaymentGateway(BusinessRecord, Archivable):
    """A payment network we take money from: a terminal/kiosk network or an online card provider.

    Each has its own credentials (terminals: HTTP Basic user + a generated password kept
    only as an HMAC with the installation's pepper; card providers: the HMAC secret that
    signs their webhooks), an optional IP allow-list, limits per payment, and its own
    clearing ledger account `clearing:<code>`.
    """

    class Kind(models.TextChoices):
        TERMINAL = "terminal", _("Terminal / kiosk network")
        CARD = "card", _("Online card provider")

    code = models.CharField(_("code"), max_length=40, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    adapter = models.CharField(_("adapter"), max_length=40, blank=True,
                               help_text=_("Card providers: the adapter that speaks its protocol (reference)."))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    is_active = models.BooleanField(_("active"), default=True)
    username = models.CharField(_("username"), max_length=100, blank=True)
    password_hash = models.CharField(_("password hash"), max_length=128, blank=True, editable=False)
    hmac_secret = models.CharField(_("HMAC secret"), max_length=128, blank=True, editable=False)
    allowed_ips = ArrayField(models.CharField(max_length=64), blank=True, default=list,
                             verbose_name=_("allowed IP addresses"),
                             help_text=_("Addresses or networks (CIDR) the gateway calls from; empty: any."))
    min_amount = money_field(_("minimum amount"), default=Decimal("0.01"), validators=[MinValueValidator(0)])
    max_amount = money_field(_("maximum amount"), default=Decimal("100000"), validators=[MinValueValidator(0)])
    api_url = models.URLField(_("provider URL"), blank=True,
                              help_text=_("Card providers: base URL of the hosted checkout and API."))
    clearing_account = models.ForeignKey("ledger.LedgerAccount", on_delete=models.PROTECT, related_name="+",
                                         editable=False, verbose_name=_("clearing account"))

    class Meta:
        verbose_name = _("payment gateway")
        verbose_name_plural = _("payment gateways")
        ordering = ["code"]
        permissions = [("rotate_credentials", _("Can issue new gateway credentials"))]

    def __str__(self):
        return f"{self.code} — {self.name}"


class CashDesk(BusinessRecord, Archivable):
    """A cash desk (till). Its cash is the ledger account `cash:<code>`; cashiers assigned to it
    may open shifts there and see its journal."""

    code = models.CharField(_("code"), max_length=40, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=200)
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    location = models.CharField(_("location"), max_length=200, blank=True)
    cashiers = models.ManyToManyField(USER, blank=True, related_name="cash_desks", verbose_name=_("cashiers"))
    ledger_account = models.ForeignKey("ledger.LedgerAccount", on_delete=models.PROTECT, related_name="+",
                                       editable=False, verbose_name=_("cash account"))

    class Meta:
        verbose_name = _("cash desk")
        verbose_name_plural = _("cash desks")
        ordering = ["code"]
        permissions = [("view_all_desks", _("Can see the journal of every cash desk"))]

    def __str__(self):
        return f"{self.code} — {self.name}"


class CashierShift(BusinessRecord):
    """A cashier's working shift at a desk: opened with a float, closed with the cash counted.

    The float is change money from the safe, outside the ledger; the desk's ledger account
    holds the takings. At close, expected cash = float + what the desk's account gained
    during the shift; discrepancy = counted − expected, booked against `cash_discrepancy`.
    At most one open shift per cashier and per desk (partial unique indexes).
    """

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        CLOSED = "closed", _("Closed")

    number = models.CharField(_("number"), max_length=32, unique=True, editable=False)
    desk = models.ForeignKey(CashDesk, on_delete=models.PROTECT, related_name="shifts", verbose_name=_("cash desk"))
    cashier = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="cashier_shifts",
                                verbose_name=_("cashier"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.OPEN)
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    opened_at = models.DateTimeField(_("opened"), default=now)
    opening_float = money_field(_("opening float"), default=Decimal(0))
    book_at_open = money_field(_("desk cash on the books at opening"), default=Decimal(0), editable=False)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    expected_cash = money_field(_("expected cash"), null=True, blank=True)
    counted_cash = money_field(_("counted cash"), null=True, blank=True)
    discrepancy = money_field(_("discrepancy"), null=True, blank=True,
                              help_text=_("Counted − expected: negative is a shortage."))
    discrepancy_transfer = models.ForeignKey("ledger.Transfer", on_delete=models.PROTECT, null=True, blank=True,
                                             related_name="+", verbose_name=_("discrepancy transfer"))
    closing_note = models.TextField(_("closing note"), blank=True)

    class Meta:
        verbose_name = _("cashier shift")
        verbose_name_plural = _("cashier shifts")
        ordering = ["-opened_at"]
        permissions = [("operate_cash_desk", _("Can work a cash desk (open and close shifts, take cash)"))]
        constraints = [
            models.UniqueConstraint(fields=["cashier"], condition=Q(status="open"), name="payments_one_open_shift_cashier"),
            models.UniqueConstraint(fields=["desk"], condition=Q(status="open"), name="payments_one_open_shift_desk"),
        ]

    def __str__(self):
        return self.number


class Payment(BusinessRecord):
    """Money received for a billing account from one channel, applied to the ledger once.

    `transfer` is the ledger transfer that applied it; a reversal books the mirror
    transfer (`reversal_transfer`) and marks it reversed. Unique by `idempotency_key`
    and by (gateway, provider transaction id): the database refuses a second copy.
    """

    class Status(models.TextChoices):
        APPLIED = "applied", _("Applied")
        REVERSED = "reversed", _("Reversed")

    number = models.CharField(_("number"), max_length=32, unique=True, editable=False)
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT, related_name="payments",
                                        verbose_name=_("billing account"))
    amount = money_field(_("amount"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices, db_index=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.APPLIED)
    transfer = models.OneToOneField("ledger.Transfer", on_delete=models.PROTECT, related_name="+",
                                    verbose_name=_("ledger transfer"))
    debit_account = models.ForeignKey("ledger.LedgerAccount", on_delete=models.PROTECT, related_name="+",
                                      verbose_name=_("received into"))
    external_reference = models.CharField(_("external reference"), max_length=200, blank=True)
    payer = models.CharField(_("payer"), max_length=200, blank=True)
    gateway = models.ForeignKey(PaymentGateway, on_delete=models.PROTECT, null=True, blank=True,
                                related_name="payments", verbose_name=_("gateway"))
    provider_txn_id = models.CharField(_("provider transaction id"), max_length=100, null=True, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=250, unique=True)
    received_at = models.DateTimeField(_("received"), default=now)
    desk = models.ForeignKey(CashDesk, on_delete=models.PROTECT, null=True, blank=True, related_name="payments",
                             verbose_name=_("cash desk"))
    shift = models.ForeignKey(CashierShift, on_delete=models.PROTECT, null=True, blank=True,
                              related_name="payments", verbose_name=_("shift"))
    cashier = models.ForeignKey(USER, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                verbose_name=_("cashier"))
    memo = models.TextField(_("memo"), blank=True)
    refunded_amount = money_field(_("refunded"), default=Decimal(0), editable=False)
    reversal_transfer = models.OneToOneField("ledger.Transfer", on_delete=models.PROTECT, null=True, blank=True,
                                             related_name="+", verbose_name=_("reversal transfer"))
    reversed_at = models.DateTimeField(_("reversed"), null=True, blank=True)
    reversal_reason = models.TextField(_("reversal reason"), blank=True)
    actor = models.CharField(_("accepted by"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-created_at", "-id"]
        default_permissions = ("view", "add")
        permissions = [("reverse", _("Can reverse payments")), ("refund", _("Can refund payments"))]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "provider_txn_id"],
                                    condition=Q(gateway__isnull=False, provider_txn_id__isnull=False),
                                    name="payments_payment_gateway_txn"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payments_payment_amount_positive"),
            models.CheckConstraint(condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=models.F("amount")),
                                   name="payments_payment_refund_within_amount"),
        ]
        indexes = [
            models.Index(fields=["billing_account", "created_at"], name="payments_payment_account_at"),
            models.Index(fields=["desk", "created_at"], name="payments_payment_desk_at"),
        ]

    def __str__(self):
        return self.number

    @property
    def refundable(self) -> Decimal:
        return self.amount - self.refunded_amount if self.status == self.Status.APPLIED else Decimal(0)


class Refund(BusinessRecord):
    """Money given back for a payment: to the original channel or in cash at a desk.

    Never more than the payment's amount minus what was refunded before (checked under
    the payment's row lock, and by a database check on `Payment.refunded_amount`).
    """

    class Destination(models.TextChoices):
        ORIGINAL = "original", _("Original channel")
        CASH = "cash", _("Cash at a desk")

    number = models.CharField(_("number"), max_length=32, unique=True, editable=False)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds", verbose_name=_("payment"))
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT, related_name="refunds",
                                        verbose_name=_("billing account"))
    amount = money_field(_("amount"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    destination = models.CharField(_("paid back to"), max_length=16, choices=Destination.choices)
    reason = models.TextField(_("reason"))
    transfer = models.OneToOneField("ledger.Transfer", on_delete=models.PROTECT, related_name="+",
                                    verbose_name=_("ledger transfer"))
    desk = models.ForeignKey(CashDesk, on_delete=models.PROTECT, null=True, blank=True, related_name="refunds",
                             verbose_name=_("cash desk"))
    shift = models.ForeignKey(CashierShift, on_delete=models.PROTECT, null=True, blank=True, related_name="refunds",
                              verbose_name=_("shift"))
    idempotency_key = models.CharField(_("idempotency key"), max_length=250, unique=True)
    actor = models.CharField(_("refunded by"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ["-created_at", "-id"]
        default_permissions = ("view",)
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="payments_refund_amount_positive")]

    def __str__(self):
        return self.number


class CashHandover(BusinessRecord):
    """Cash handed from a desk to another desk (cashier to cashier) or to the bank: who, when, how much.

    Booked as a ledger transfer from `cash:<from desk>` to `cash:<to desk>` or `bank`.
    """

    class Destination(models.TextChoices):
        DESK = "desk", _("Another cash desk")
        BANK = "bank", _("Bank")

    number = models.CharField(_("number"), max_length=32, unique=True, editable=False)
    from_desk = models.ForeignKey(CashDesk, on_delete=models.PROTECT, related_name="handovers_out",
                                  verbose_name=_("from desk"))
    destination = models.CharField(_("to"), max_length=16, choices=Destination.choices)
    to_desk = models.ForeignKey(CashDesk, on_delete=models.PROTECT, null=True, blank=True,
                                related_name="handovers_in", verbose_name=_("to desk"))
    amount = money_field(_("amount"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    handed_by = models.ForeignKey(USER, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                  verbose_name=_("handed over by"))
    handed_by_label = models.CharField(_("handed over by"), max_length=150, blank=True)
    received_by = models.ForeignKey(USER, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                    verbose_name=_("received by"))
    bank_reference = models.CharField(_("bank deposit reference"), max_length=100, blank=True)
    handed_at = models.DateTimeField(_("handed over"), default=now)
    shift = models.ForeignKey(CashierShift, on_delete=models.PROTECT, null=True, blank=True,
                              related_name="handovers", verbose_name=_("shift"))
    transfer = models.OneToOneField("ledger.Transfer", on_delete=models.PROTECT, related_name="+",
                                    verbose_name=_("ledger transfer"))
    note = models.TextField(_("note"), blank=True)

    class Meta:
        verbose_name = _("cash hand-over")
        verbose_name_plural = _("cash hand-overs")
        ordering = ["-handed_at"]
        default_permissions = ("view", "add")
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="payments_handover_amount_positive")]

    def __str__(self):
        return self.number


class TerminalTransaction(models.Model):
    """One transaction of a terminal network's check/pay protocol, unique by (gateway, txn_id).

    `check` creates it (state `checked`); `pay` books the payment once and keeps the answer,
    so a repeated `pay` returns the first result.
    """

    class State(models.TextChoices):
        CHECKED = "checked", _("Checked")
        PAID = "paid", _("Paid")
        REFUSED = "refused", _("Refused")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    branch = models.CharField(_("branch"), max_length=16, default=local_branch_code, editable=False)
    gateway = models.ForeignKey(PaymentGateway, on_delete=models.PROTECT, related_name="terminal_transactions",
                                verbose_name=_("gateway"))
    txn_id = models.CharField(_("provider transaction id"), max_length=100)
    state = models.CharField(_("state"), max_length=16, choices=State.choices)
    account_ref = models.CharField(_("account as given"), max_length=100)
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT, null=True, blank=True,
                                        related_name="+", verbose_name=_("billing account"))
    amount = money_field(_("amount"), null=True, blank=True)
    txn_date = models.DateTimeField(_("provider time"), null=True, blank=True)
    result = models.PositiveSmallIntegerField(_("result code"), default=0)
    comment = models.CharField(_("comment"), max_length=200, blank=True)
    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                   verbose_name=_("payment"))
    checked_at = models.DateTimeField(_("checked"), default=now)
    paid_at = models.DateTimeField(_("paid"), null=True, blank=True)

    class Meta:
        verbose_name = _("terminal transaction")
        verbose_name_plural = _("terminal transactions")
        ordering = ["-checked_at"]
        default_permissions = ("view",)
        constraints = [models.UniqueConstraint(fields=["gateway", "txn_id"], name="payments_terminal_txn_unique")]

    def __str__(self):
        return f"{self.gateway_id and self.gateway.code}:{self.txn_id}"


class CardCheckout(BusinessRecord):
    """An online card payment in progress: created here, paid on the provider's hosted page,
    confirmed by the provider's signed webhook, which applies the payment (once)."""

    class State(models.TextChoices):
        CREATED = "created", _("Waiting for the customer")
        APPLIED = "applied", _("Paid and applied")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("Expired (no answer from the provider)")

    gateway = models.ForeignKey(PaymentGateway, on_delete=models.PROTECT, related_name="checkouts",
                                verbose_name=_("gateway"))
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT, related_name="+",
                                        verbose_name=_("billing account"))
    amount = money_field(_("amount"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.CREATED)
    redirect_url = models.URLField(_("checkout URL"), max_length=2000, blank=True)
    return_url = models.URLField(_("return URL"), max_length=2000, blank=True)
    save_card = models.BooleanField(_("save the card for automatic payments"), default=False)
    provider_txn_id = models.CharField(_("provider transaction id"), max_length=100, blank=True)
    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                   verbose_name=_("payment"))
    failure_reason = models.CharField(_("failure reason"), max_length=200, blank=True)
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=250, unique=True)

    class Meta:
        verbose_name = _("card checkout")
        verbose_name_plural = _("card checkouts")
        ordering = ["-created_at"]
        default_permissions = ("view", "add")

    def __str__(self):
        return f"{self.gateway.code} {self.amount:.2f} {self.currency} ({self.state})"

    @property
    def is_test(self) -> bool:
        return self.gateway.adapter == "test"


class StoredPaymentMethod(BusinessRecord, Archivable):
    """A card the provider keeps for us, known by the provider's token (never the card number)."""

    gateway = models.ForeignKey(PaymentGateway, on_delete=models.PROTECT, related_name="payment_methods",
                                verbose_name=_("gateway"))
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT,
                                        related_name="payment_methods", verbose_name=_("billing account"))
    token = models.CharField(_("provider token"), max_length=200, editable=False)
    label = models.CharField(_("card"), max_length=100, blank=True, help_text=_("e.g. VISA •••• 4242"))

    class Meta:
        verbose_name = _("stored payment method")
        verbose_name_plural = _("stored payment methods")
        ordering = ["-created_at"]
        default_permissions = ("view", "delete")
        constraints = [models.UniqueConstraint(fields=["gateway", "token"], name="payments_method_token_unique")]

    def __str__(self):
        return self.label or f"{self.gateway.code} card"


class AutoPayAgreement(BusinessRecord, Archivable):
    """The customer's standing order: when the balance falls below `threshold`, top it up by
    `amount` from a stored card, at most once a day (AutoPayRun is unique per agreement and day)."""

    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT,
                                        related_name="autopay_agreements", verbose_name=_("billing account"))
    payment_method = models.ForeignKey(StoredPaymentMethod, on_delete=models.PROTECT, related_name="agreements",
                                       verbose_name=_("payment method"))
    threshold = money_field(_("top up when the balance falls below"))
    amount = money_field(_("top-up amount"))
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("automatic payment agreement")
        verbose_name_plural = _("automatic payment agreements")
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="payments_autopay_amount_positive")]

    def __str__(self):
        return f"{self.billing_account} < {self.threshold:.2f} → +{self.amount:.2f}"


class AutoPayRun(models.Model):
    """One day's attempt of an agreement: claimed first (unique per day), then charged, then booked."""

    class State(models.TextChoices):
        PENDING = "pending", _("Charging")
        SUCCEEDED = "succeeded", _("Paid")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    agreement = models.ForeignKey(AutoPayAgreement, on_delete=models.PROTECT, related_name="runs",
                                  verbose_name=_("agreement"))
    day = models.DateField(_("day"))
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.PENDING)
    balance_before = money_field(_("balance before"))
    amount = money_field(_("amount"))
    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                   verbose_name=_("payment"))
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created"), default=now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("automatic payment run")
        verbose_name_plural = _("automatic payment runs")
        ordering = ["-day", "-created_at"]
        default_permissions = ("view",)
        constraints = [models.UniqueConstraint(fields=["agreement", "day"], name="payments_autopay_once_a_day")]

    def __str__(self):
        return f"{self.agreement.billing_account.number} {self.day:%Y-%m-%d} {self.get_state_display()}"


class BankStatement(BusinessRecord):
    """An imported bank statement file. read = booked + unmatched + duplicates + rejected at import;
    unmatched lines are later assigned (booked) or ignored by an operator."""

    number = models.CharField(_("number"), max_length=32, unique=True, editable=False)
    filename = models.CharField(_("file"), max_length=255)
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    imported_by = models.CharField(_("imported by"), max_length=150, blank=True)
    lines_read = models.PositiveIntegerField(_("lines read"), default=0)
    lines_booked = models.PositiveIntegerField(_("booked"), default=0)
    lines_unmatched = models.PositiveIntegerField(_("unmatched"), default=0)
    lines_duplicate = models.PositiveIntegerField(_("duplicates"), default=0)
    lines_rejected = models.PositiveIntegerField(_("rejected"), default=0)

    class Meta:
        verbose_name = _("bank statement")
        verbose_name_plural = _("bank statements")
        ordering = ["-created_at"]
        default_permissions = ("view", "add")

    def __str__(self):
        return f"{self.number} {self.filename}"


class BankStatementLine(BusinessRecord):
    """One line of a statement and where it ended (rule 6): booked, unmatched (waiting for an
    operator), ignored, duplicate (its bank transaction id was seen before) or rejected (unreadable)."""

    class State(models.TextChoices):
        BOOKED = "booked", _("Matched and booked")
        UNMATCHED = "unmatched", _("Unmatched")
        IGNORED = "ignored", _("Ignored")
        DUPLICATE = "duplicate", _("Duplicate")
        REJECTED = "rejected", _("Rejected")

    statement = models.ForeignKey(BankStatement, on_delete=models.PROTECT, related_name="lines",
                                  verbose_name=_("statement"))
    line_no = models.PositiveIntegerField(_("line"))
    state = models.CharField(_("state"), max_length=16, choices=State.choices, db_index=True)
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    value_date = models.DateField(_("date"), null=True, blank=True)
    amount = money_field(_("amount"), null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    reference = models.CharField(_("reference"), max_length=500, blank=True)
    payer = models.CharField(_("payer"), max_length=200, blank=True)
    bank_txn_id = models.CharField(_("bank transaction id"), max_length=100, blank=True)
    raw = models.JSONField(_("line as read"), default=dict)
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT, null=True, blank=True,
                                        related_name="+", verbose_name=_("billing account"))
    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                   verbose_name=_("payment"))
    duplicate_of = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                     verbose_name=_("duplicate of"))
    matched_by = models.CharField(_("matched by"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("bank statement line")
        verbose_name_plural = _("bank statement lines")
        ordering = ["statement", "line_no"]
        default_permissions = ("view",)
        permissions = [("resolve_statement_line", _("Can assign or ignore unmatched statement lines"))]
        constraints = [
            # A bank transaction is taken once: every other line with its id is a duplicate.
            models.UniqueConstraint(fields=["bank_txn_id"], condition=Q(state__in=["booked", "unmatched", "ignored"]),
                                    name="payments_statement_line_txn_once"),
        ]

    def __str__(self):
        return f"{self.statement.number}:{self.line_no}"


class VoucherBatch(BusinessRecord):
    """A batch of scratch cards: `count` codes of `nominal` each, valid until `expires_on`.

    Generated (codes shown once, kept only as HMACs), then sold (activated): the sale books
    the batch's value into `voucher_liability`; redeeming a card moves its nominal from
    there to the customer.
    """

    class State(models.TextChoices):
        GENERATED = "generated", _("Generated (not on sale)")
        ACTIVE = "active", _("Sold / active")
        VOID = "void", _("Void")

    number = models.CharField(_("number"), max_length=32, unique=True, editable=False)
    count = models.PositiveIntegerField(_("cards"))
    nominal = money_field(_("nominal"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    expires_on = models.DateField(_("valid until"))
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.GENERATED)
    sold_to = models.CharField(_("sold to"), max_length=200, blank=True)
    sale_transfer = models.OneToOneField("ledger.Transfer", on_delete=models.PROTECT, null=True, blank=True,
                                         related_name="+", verbose_name=_("sale transfer"))
    activated_at = models.DateTimeField(_("activated"), null=True, blank=True)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        verbose_name = _("voucher batch")
        verbose_name_plural = _("voucher batches")
        ordering = ["-created_at"]
        default_permissions = ("view", "add")
        permissions = [("sell_voucherbatch", _("Can sell (activate) voucher batches"))]
        constraints = [models.CheckConstraint(condition=Q(nominal__gt=0) & Q(count__gt=0),
                                              name="payments_voucher_batch_positive")]

    def __str__(self):
        return self.number


class Voucher(models.Model):
    """One scratch card. Only `code_hash` (HMAC-SHA256 with the installation's pepper) is kept;
    `serial` is printed on the card for support."""

    class State(models.TextChoices):
        ISSUED = "issued", _("Issued")
        REDEEMED = "redeemed", _("Redeemed")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    batch = models.ForeignKey(VoucherBatch, on_delete=models.PROTECT, related_name="vouchers",
                              verbose_name=_("batch"))
    serial = models.CharField(_("serial"), max_length=32, unique=True)
    code_hash = models.CharField(max_length=64, unique=True, editable=False)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.ISSUED)
    redeemed_at = models.DateTimeField(_("redeemed"), null=True, blank=True)
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT, null=True, blank=True,
                                        related_name="+", verbose_name=_("redeemed to"))
    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                   verbose_name=_("payment"))

    class Meta:
        verbose_name = _("voucher")
        verbose_name_plural = _("vouchers")
        ordering = ["serial"]
        default_permissions = ("view",)
        permissions = [("redeem_voucher", _("Can redeem vouchers to an account"))]

    def __str__(self):
        return self.serial


class VoucherAttempt(models.Model):
    """A redemption attempt, kept for throttling and the security log (failures survive the refusal)."""

    at = models.DateTimeField(default=now, db_index=True)
    billing_account_id = models.UUIDField(null=True, blank=True, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    serial = models.CharField(max_length=32, blank=True)
    outcome = models.CharField(max_length=32)

    class Meta:
        default_permissions = ()
        indexes = [models.Index(fields=["ip", "at"], name="payments_voucher_attempt_ip")]
