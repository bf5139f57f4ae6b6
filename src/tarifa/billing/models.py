"""Invoicing and collections: bill cycles, invoices and credit notes, bill runs, documents, dunning.

- `BillCycle` — when accounts are invoiced: the day of the month a period starts, the
  invoice date (period end + offset), payment terms, rounding rule and number series.
  Accounts join a cycle through `BillCycleAssignment` (the ledger owns `BillingAccount`).
- `Invoice` — one per (account, period) (a database constraint), or a credit note that
  references an invoice. Draft → issued → partially paid / paid / overdue. Once issued,
  a PostgreSQL trigger refuses any change but its payment state and a DELETE; its
  lines and their sources can no longer be added, changed or removed.
- `InvoiceLine` — fee, usage summary, one-time fee, adjustment or discount, with its
  taxes; `InvoicedSource` ties each charged ledger transfer, rated usage record or
  pending item to exactly one line (its id is the primary key: nothing is billed twice).
- `BillRun` — one run over a cycle and period; resumable; failures are kept.
- `DocumentTemplate` — the operator's HTML templates for invoices, statements and
  receipts, per language (the shipped file templates are the fallback).
- `DunningPolicy` / `DunningStep` — the collections ladder as data; `DunningAction`
  is every step taken (and cleared) on an account.

Writes go through `services.py` (and the bulk path in `bulk.py`) only.
"""

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.kernel.ids import uuid7
from tarifa.kernel.models import Archivable, BusinessRecord, WorkBatch, local_branch_code
from tarifa.kernel.money import CURRENCY_CHOICES

code_validator = RegexValidator(r"^[A-Za-z0-9_.-]+$", _("Letters, digits, dot, dash and underscore only."))
series_validator = RegexValidator(r"^[A-Z]{1,4}$", _("One to four capital letters, e.g. I or CN."))
period_validator = RegexValidator(r"^\d{4}-(0[1-9]|1[0-2])$", _("A period is YYYY-MM."))


def money_field(label, **kwargs):
    kwargs.setdefault("default", Decimal(0))
    return models.DecimalField(label, max_digits=20, decimal_places=6, **kwargs)


class Rounding(models.TextChoices):
    PER_LINE = "line", _("Per line (each line's amount and taxes rounded)")
    PER_INVOICE = "invoice", _("Per invoice (each tax total and the total rounded once)")


class BillCycle(BusinessRecord, Archivable):
    """When accounts are invoiced.

    Period `YYYY-MM` of a cycle with day D runs from D of that month to the day before
    D of the next month; it is closed the day after its end. The invoice is dated
    `invoice_date_offset_days` after the period end and due `payment_terms_days` later.
    """

    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    day_of_month = models.PositiveSmallIntegerField(_("first day of the period"), default=1,
                                                    validators=[MinValueValidator(1), MaxValueValidator(28)])
    invoice_date_offset_days = models.PositiveSmallIntegerField(_("invoice date, days after period end"),
                                                                default=1, validators=[MaxValueValidator(60)])
    payment_terms_days = models.PositiveSmallIntegerField(_("payment terms, days"), default=14,
                                                          validators=[MaxValueValidator(365)])
    rounding = models.CharField(_("rounding"), max_length=8, choices=Rounding.choices, default=Rounding.PER_LINE)
    series = models.CharField(_("invoice number series"), max_length=4, default="I", validators=[series_validator])
    auto_issue = models.BooleanField(_("issue on the bill run"), default=True,
                                     help_text=_("Otherwise the run leaves drafts for review."))
    description = models.TextField(_("description"), blank=True)

    class Meta:
        verbose_name = _("bill cycle")
        verbose_name_plural = _("bill cycles")
        ordering = ["day_of_month", "code"]
        permissions = [("run_bill_run", "Can start bill runs"), ("assign_cycle", "Can assign accounts to cycles")]

    def __str__(self):
        return f"{self.code} — {self.name}"


class BillCycleAssignment(models.Model):
    """The cycle an account is invoiced in (one per account)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    billing_account = models.OneToOneField("ledger.BillingAccount", on_delete=models.PROTECT,
                                           related_name="bill_cycle_assignment", verbose_name=_("billing account"))
    cycle = models.ForeignKey(BillCycle, on_delete=models.PROTECT, related_name="assignments",
                              verbose_name=_("bill cycle"))
    assigned_at = models.DateTimeField(_("assigned"), default=now)
    actor = models.CharField(_("actor"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("bill cycle assignment")
        verbose_name_plural = _("bill cycle assignments")
        ordering = ["cycle", "billing_account"]
        indexes = [models.Index(fields=["cycle", "billing_account"], name="billing_assignment_cycle")]

    def __str__(self):
        return f"{self.billing_account_id and self.billing_account.number} → {self.cycle_id and self.cycle.code}"


class Invoice(BusinessRecord):
    class Kind(models.TextChoices):
        INVOICE = "invoice", _("Invoice")
        CREDIT_NOTE = "credit_note", _("Credit note")

    class State(models.TextChoices):
        DRAFT = "draft", _("Draft")
        ISSUED = "issued", _("Issued")
        PARTIALLY_PAID = "partially_paid", _("Partially paid")
        PAID = "paid", _("Paid")
        OVERDUE = "overdue", _("Overdue")

    class Purpose(models.TextChoices):
        REGULAR = "regular", _("Regular (the cycle's period)")
        INTERIM = "interim", _("Interim (what is due so far)")
        FINAL = "final", _("Final (the customer leaves)")

    number = models.CharField(_("number"), max_length=32, blank=True, editable=False)
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices, default=Kind.INVOICE)
    purpose = models.CharField(_("purpose"), max_length=8, choices=Purpose.choices, default=Purpose.REGULAR,
                               db_default=Purpose.REGULAR,
                               help_text=_("Interim and final invoices bill at once, outside the cycle's periods."))
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT, related_name="invoices",
                                        verbose_name=_("billing account"))
    customer = models.ForeignKey("crm.Customer", on_delete=models.PROTECT, related_name="invoices",
                                 verbose_name=_("customer"))
    cycle = models.ForeignKey(BillCycle, on_delete=models.PROTECT, null=True, blank=True, related_name="invoices",
                              verbose_name=_("bill cycle"))
    period = models.CharField(_("period"), max_length=7, blank=True, validators=[period_validator])
    period_start = models.DateField(_("period start"), null=True, blank=True)
    period_end = models.DateField(_("period end"), null=True, blank=True)
    invoice_date = models.DateField(_("invoice date"))
    due_date = models.DateField(_("due date"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.DRAFT, db_index=True)
    rounding = models.CharField(_("rounding"), max_length=8, choices=Rounding.choices, default=Rounding.PER_LINE)
    rounding_note = models.CharField(_("rounding rule"), max_length=200, blank=True)
    subtotal = money_field(_("net"))
    tax_total = money_field(_("tax"))
    total = money_field(_("total"))
    ledger_amount = money_field(_("exact ledger amount"),
                                help_text=_("What the lines' sources add up to in the ledger before rounding."))
    paid_amount = money_field(_("paid"))
    credited_amount = money_field(_("credited"))
    tax_summary = models.JSONField(_("tax summary"), default=list, blank=True)
    credited_invoice = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True,
                                         related_name="credit_notes", verbose_name=_("credits invoice"))
    reason = models.TextField(_("reason"), blank=True)
    bill_run = models.ForeignKey("BillRun", on_delete=models.PROTECT, null=True, blank=True, related_name="invoices",
                                 db_constraint=False, verbose_name=_("bill run"))
    language = models.CharField(_("language"), max_length=8, default="en")
    issued_at = models.DateTimeField(_("issued"), null=True, blank=True)

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ["-invoice_date", "-number"]
        permissions = [("issue_invoice", "Can issue invoices"), ("credit_invoice", "Can issue credit notes"),
                       ("allocate_payment", "Can allocate payments to invoices")]
        constraints = [
            # Idempotency of bill runs (rule 5): one invoice per account and period.
            models.UniqueConstraint(fields=["billing_account", "period"], condition=Q(kind="invoice") & ~Q(period=""),
                                    name="billing_invoice_account_period"),
            models.UniqueConstraint(fields=["number"], condition=~Q(number=""), name="billing_invoice_number"),
            models.CheckConstraint(condition=Q(state="draft") | ~Q(number=""), name="billing_invoice_issued_numbered"),
            models.CheckConstraint(condition=Q(kind="invoice") | Q(credited_invoice__isnull=False),
                                   name="billing_credit_note_references"),
        ]
        indexes = [
            models.Index(fields=["billing_account", "invoice_date"], name="billing_invoice_account_date"),
            models.Index(fields=["period", "cycle"], name="billing_invoice_period"),
            models.Index(fields=["due_date"], condition=Q(state__in=["issued", "partially_paid"]),
                         name="billing_invoice_open_due"),
        ]

    def __str__(self):
        return self.number or f"draft {self.billing_account_id and self.billing_account.number} {self.period}"

    @property
    def outstanding(self) -> Decimal:
        if self.kind != self.Kind.INVOICE:
            return Decimal(0)
        return max(self.total - self.paid_amount - self.credited_amount, Decimal(0))

    @property
    def creditable(self) -> Decimal:
        return self.total - self.credited_amount

    @property
    def is_draft(self) -> bool:
        return self.state == self.State.DRAFT


class InvoiceLine(models.Model):
    class Kind(models.TextChoices):
        RECURRING_FEE = "recurring_fee", _("Recurring fee")
        ONE_TIME_FEE = "one_time_fee", _("One-time fee")
        USAGE = "usage", _("Usage")
        ADJUSTMENT = "adjustment", _("Adjustment")
        DISCOUNT = "discount", _("Discount")
        CREDIT = "credit", _("Credit")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines", db_index=False,
                                verbose_name=_("invoice"))
    position = models.PositiveIntegerField(_("position"))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    key = models.CharField(_("grouping key"), max_length=200)
    description = models.CharField(_("description"), max_length=300)
    service = models.CharField(_("service"), max_length=32, blank=True)
    service_type = models.CharField(_("service type"), max_length=32, blank=True)
    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="+", db_constraint=False, db_index=False,
                                     verbose_name=_("subscription"))
    period_start = models.DateField(_("from"), null=True, blank=True)
    period_end = models.DateField(_("to"), null=True, blank=True)
    quantity = models.DecimalField(_("quantity"), max_digits=24, decimal_places=6, default=Decimal(1))
    unit = models.CharField(_("unit"), max_length=16, blank=True)
    free_units = models.DecimalField(_("free units used"), max_digits=24, decimal_places=6, default=Decimal(0))
    destination = models.CharField(_("destination group"), max_length=64, blank=True)
    amount = money_field(_("amount (exact)"), help_text=_("The sum of the line's sources, as in the ledger."))
    net = money_field(_("net"))
    tax = money_field(_("tax"))
    total = money_field(_("total"))
    taxes = models.JSONField(_("taxes"), default=list, blank=True)
    booked = models.BooleanField(_("booked at issue"), default=False,
                                 help_text=_("Its sources were not in the ledger; the invoice booked them."))

    class Meta:
        verbose_name = _("invoice line")
        verbose_name_plural = _("invoice lines")
        ordering = ["invoice", "position"]
        default_permissions = ("view",)
        constraints = [models.UniqueConstraint(fields=["invoice", "position"], name="billing_line_position"),
                       models.UniqueConstraint(fields=["invoice", "key"], name="billing_line_key")]

    def __str__(self):
        return self.description


class InvoicedSource(models.Model):
    """A charged transfer, rated usage record or pending item on exactly one invoice line."""

    class Type(models.TextChoices):
        TRANSFER = "transfer", _("Ledger transfer")
        USAGE = "usage", _("Rated usage")
        ITEM = "item", _("Pending item")

    source_id = models.UUIDField(_("source"), primary_key=True)
    source_type = models.CharField(_("source type"), max_length=8, choices=Type.choices)
    line = models.ForeignKey(InvoiceLine, on_delete=models.PROTECT, related_name="sources", db_index=False,
                             verbose_name=_("line"))
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="+", verbose_name=_("invoice"))
    amount = money_field(_("amount"))

    class Meta:
        verbose_name = _("invoiced source")
        verbose_name_plural = _("invoiced sources")
        default_permissions = ()


class PendingItem(BusinessRecord):
    """A one-time charge, adjustment or discount waiting for the account's next invoice.

    Positive amounts are charged to the customer, negative ones credited. It enters the
    ledger when the invoice that carries it is issued.
    """

    class Kind(models.TextChoices):
        ONE_TIME_FEE = "one_time_fee", _("One-time fee")
        ADJUSTMENT = "adjustment", _("Adjustment")
        DISCOUNT = "discount", _("Discount")

    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT,
                                        related_name="pending_items", verbose_name=_("billing account"))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    description = models.CharField(_("description"), max_length=200)
    amount = money_field(_("amount"), help_text=_("Positive: charged; negative: credited (discounts are negative)."))
    service_type = models.CharField(_("service type (for taxes)"), max_length=32, blank=True)
    day = models.DateField(_("day"))
    added_by = models.CharField(_("added by"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("pending item")
        verbose_name_plural = _("pending items")
        ordering = ["-day", "-created_at"]
        indexes = [models.Index(fields=["billing_account", "day"], name="billing_item_account_day")]

    def __str__(self):
        return f"{self.description} {self.amount.normalize():f}"


class Allocation(models.Model):
    """Part of a payment (a ledger transfer of kind payment) applied to an invoice."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="allocations",
                                verbose_name=_("invoice"))
    transfer = models.ForeignKey("ledger.Transfer", on_delete=models.PROTECT, related_name="+", db_constraint=False,
                                 verbose_name=_("payment transfer"))
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT, related_name="+",
                                        db_index=False, verbose_name=_("billing account"))
    amount = money_field(_("amount"))
    created_at = models.DateTimeField(_("allocated"), default=now)
    actor = models.CharField(_("actor"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("payment allocation")
        verbose_name_plural = _("payment allocations")
        ordering = ["-created_at"]
        default_permissions = ("view",)
        constraints = [models.UniqueConstraint(fields=["transfer", "invoice"], name="billing_allocation_unique"),
                       models.CheckConstraint(condition=Q(amount__gt=0), name="billing_allocation_positive")]
        indexes = [models.Index(fields=["billing_account", "transfer"], name="billing_allocation_account")]

    def __str__(self):
        return f"{self.amount.normalize():f} → {self.invoice_id}"


class BillRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        FINISHED = "finished", _("Finished")
        INTERRUPTED = "interrupted", _("Interrupted (resumed by the next run)")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    branch = models.CharField(max_length=16, default=local_branch_code, editable=False)
    cycle = models.ForeignKey(BillCycle, on_delete=models.PROTECT, related_name="runs", verbose_name=_("bill cycle"))
    period = models.CharField(_("period"), max_length=7, validators=[period_validator])
    dry_run = models.BooleanField(_("dry run"), default=False)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.QUEUED,
                              db_index=True)
    jobs = models.PositiveSmallIntegerField(_("processes"), default=1)
    accounts = models.PositiveIntegerField(_("accounts to invoice"), default=0)
    done = models.PositiveIntegerField(_("accounts done"), default=0)
    invoiced = models.PositiveIntegerField(_("invoiced"), default=0)
    skipped = models.PositiveIntegerField(_("skipped"), default=0)
    summary = models.JSONField(_("summary"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)
    started_at = models.DateTimeField(_("started"), default=now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    actor = models.CharField(_("actor"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("bill run")
        verbose_name_plural = _("bill runs")
        ordering = ["-started_at"]
        default_permissions = ("view", "add")

    def __str__(self):
        return f"{self.cycle_id and self.cycle.code} {self.period}{' (dry run)' if self.dry_run else ''}"

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.accounts) if self.accounts else (100 if self.finished_at else 0)


class BillRunBatch(WorkBatch):
    """One batch of a bill run handed to the workers: the accounts of one currency with ids in
    [low, high]. A worker holds the batch's row lock while it invoices it (the lease: a worker that
    dies releases it with its connection, and another takes the batch over); done in the same
    transaction as the batch's invoices."""

    run = models.ForeignKey(BillRun, on_delete=models.CASCADE, related_name="batches", verbose_name=_("bill run"))
    currency = models.CharField(_("currency"), max_length=3)
    accounts = models.PositiveIntegerField(_("accounts"), default=0)

    class Meta(WorkBatch.Meta):
        verbose_name = _("bill run batch")
        verbose_name_plural = _("bill run batches")
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="billing_billrunbatch_run_seq")]
        indexes = [models.Index(fields=["run"], condition=Q(done=False), name="billing_runbatch_pending")]


class BillRunFailure(models.Model):
    """An account a bill run could not invoice: reported and skipped, retried by the next run."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    run = models.ForeignKey(BillRun, on_delete=models.PROTECT, related_name="failures", verbose_name=_("bill run"))
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT, related_name="+",
                                        verbose_name=_("billing account"))
    code = models.CharField(_("reason"), max_length=64)
    message = models.TextField(_("message"), blank=True)
    at = models.DateTimeField(_("at"), default=now)

    class Meta:
        verbose_name = _("bill run failure")
        verbose_name_plural = _("bill run failures")
        ordering = ["run", "billing_account"]
        default_permissions = ("view",)

    def __str__(self):
        return f"{self.billing_account_id}: {self.code}"


class DocumentTemplate(BusinessRecord, Archivable):
    """The operator's HTML (Django template) for a document kind and language.

    Without one, the shipped file template `billing/documents/<kind>.html` is used.
    """

    class Kind(models.TextChoices):
        INVOICE = "invoice", _("Invoice")
        CREDIT_NOTE = "credit_note", _("Credit note")
        STATEMENT = "statement", _("Statement of account")
        RECEIPT = "receipt", _("Payment receipt")

    kind = models.CharField(_("document"), max_length=12, choices=Kind.choices)
    language = models.CharField(_("language"), max_length=8, default="en")
    body = models.TextField(_("HTML template"))
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("document template")
        verbose_name_plural = _("document templates")
        ordering = ["kind", "language"]
        constraints = [models.UniqueConstraint(fields=["kind", "language"], condition=Q(archived_at__isnull=True),
                                               name="billing_template_kind_language")]

    def __str__(self):
        return f"{self.get_kind_display()} ({self.language})"


class InvoiceDocument(models.Model):
    """An invoice's PDF as first rendered (lazily, on first download or e-mail); then kept as is."""

    invoice = models.OneToOneField(Invoice, on_delete=models.PROTECT, primary_key=True, related_name="document")
    pdf = models.BinaryField()
    template = models.CharField(max_length=100, blank=True)
    rendered_at = models.DateTimeField(default=now)

    class Meta:
        default_permissions = ()


class DunningPolicy(BusinessRecord, Archivable):
    """A collections ladder. Applies to accounts it is assigned to, else to customers of its kind."""

    class CustomerKind(models.TextChoices):
        ANY = "", _("Any (default policy)")
        INDIVIDUAL = "individual", _("Individuals")
        ORGANIZATION = "organization", _("Organizations")

    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    customer_kind = models.CharField(_("default for customer kind"), max_length=16, choices=CustomerKind.choices,
                                     blank=True, default="")
    is_default = models.BooleanField(_("default for its customer kind"), default=False)
    reevaluate_days = models.PositiveSmallIntegerField(_("re-evaluate every (days)"), default=1,
                                                       validators=[MinValueValidator(1)])

    class Meta:
        verbose_name = _("dunning policy")
        verbose_name_plural = _("dunning policies")
        ordering = ["code"]
        constraints = [models.UniqueConstraint(fields=["customer_kind"],
                                               condition=Q(is_default=True, archived_at__isnull=True),
                                               name="billing_dunning_one_default_per_kind")]

    def __str__(self):
        return self.name


class DunningStep(BusinessRecord):
    class Action(models.TextChoices):
        NOTIFY = "notify", _("Notify the customer")
        SUSPEND = "suspend", _("Suspend services (cause: dunning)")
        TERMINATE = "terminate", _("Terminate services")
        LATE_FEE = "late_fee", _("Apply a late fee")

    policy = models.ForeignKey(DunningPolicy, on_delete=models.PROTECT, related_name="steps",
                               verbose_name=_("policy"))
    position = models.PositiveSmallIntegerField(_("position"))
    name = models.CharField(_("name"), max_length=100)
    min_days_overdue = models.PositiveIntegerField(_("days overdue at least"), default=0)
    min_amount_overdue = money_field(_("amount overdue at least"))
    min_unpaid_invoices = models.PositiveSmallIntegerField(_("unpaid invoices at least"), default=1)
    action = models.CharField(_("action"), max_length=12, choices=Action.choices)
    template = models.CharField(_("message"), max_length=64, blank=True,
                                help_text=_("Notification template name (event dunning_<name>) for notify."))
    late_fee = money_field(_("late fee"))

    class Meta:
        verbose_name = _("dunning step")
        verbose_name_plural = _("dunning steps")
        ordering = ["policy", "position"]
        constraints = [models.UniqueConstraint(fields=["policy", "position"], name="billing_dunning_step_position")]

    def __str__(self):
        return f"{self.policy_id and self.policy.code} #{self.position} {self.name}"


class DunningAssignment(models.Model):
    """An account's own policy, overriding its customer kind's default."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    billing_account = models.OneToOneField("ledger.BillingAccount", on_delete=models.PROTECT,
                                           related_name="dunning_assignment", verbose_name=_("billing account"))
    policy = models.ForeignKey(DunningPolicy, on_delete=models.PROTECT, related_name="assignments",
                               verbose_name=_("policy"))
    assigned_at = models.DateTimeField(default=now)

    class Meta:
        verbose_name = _("dunning assignment")
        verbose_name_plural = _("dunning assignments")
        default_permissions = ("view", "add")

    def __str__(self):
        return f"{self.billing_account.number}: {self.policy}"


class DunningAction(models.Model):
    """A ladder step taken on an account; `cleared_at` once a payment satisfied it."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT,
                                        related_name="dunning_actions", verbose_name=_("billing account"))
    step = models.ForeignKey(DunningStep, on_delete=models.PROTECT, related_name="actions", verbose_name=_("step"))
    action = models.CharField(_("action"), max_length=12, choices=DunningStep.Action.choices)
    taken_at = models.DateTimeField(_("taken"), default=now)
    days_overdue = models.IntegerField(_("days overdue"), default=0)
    amount_overdue = money_field(_("amount overdue"))
    unpaid_invoices = models.PositiveIntegerField(_("unpaid invoices"), default=0)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    cleared_at = models.DateTimeField(_("cleared"), null=True, blank=True)
    actor = models.CharField(_("actor"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("dunning action")
        verbose_name_plural = _("dunning actions")
        ordering = ["-taken_at"]
        default_permissions = ("view",)
        constraints = [models.UniqueConstraint(fields=["billing_account", "step"], condition=Q(cleared_at__isnull=True),
                                               name="billing_dunning_step_once")]

    def __str__(self):
        return f"{self.get_action_display()} {self.taken_at:%Y-%m-%d}"
