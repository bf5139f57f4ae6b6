"""Billing: the only write path for cycles, invoices, credit notes, allocations and templates.

Every function takes keyword arguments and an `actor`, runs in one transaction, writes an
audit record, and raises a typed `DomainError` with a stable code (nothing written).
Invoicing an account takes the account lock first (rule 7, `ledger.lock_accounts`).

Ledger postings an invoice makes when it is issued (all tagged `invoice`, referencing
it, keyed `invoice:<id>:…` so a retry books nothing twice):
- sources not yet in the ledger (postpaid rated usage, pending items): per line, the
  customer against `revenue:<service type>` (usage, one-time fees), `adjustments` or
  `discounts`;
- exclusive taxes: per tax, the customer against `taxes_payable:<code>`;
- inclusive taxes: per (tax, service type), `revenue:<type>` against `taxes_payable:<code>`
  (taken out of revenue; the customer is not touched);
- the rounding difference: the customer against `rounding`.
So the customer's side of the ledger moves by exactly the invoice total, which
`tarifa billing check` verifies. Credit notes credit the customer, against the taxes
they take back and `credit_notes`.

Events: `billing.invoice_issued`, `billing.credit_note_issued` (the notifications send
the PDF), `billing.invoice_paid`.
"""

import datetime as dt
from decimal import Decimal

from django.db import IntegrityError, connection, transaction

from tarifa.audit import services as recorded
from tarifa.catalog import selectors as catalog
from tarifa.catalog.models import ServiceType
from tarifa.kernel import events
from tarifa.kernel.clock import now, today
from tarifa.kernel.errors import Conflict, DomainError, NotFound, ValidationFailed
from tarifa.kernel import periods
from tarifa.kernel.money import CURRENCIES, parse_amount
from tarifa.kernel.numbering import check_configurable_series, next_number
from tarifa.ledger import services as ledger
from tarifa.ledger.models import BillingAccount, Transfer

from . import generation, sources
from .models import (Allocation, BillCycle, BillCycleAssignment, DocumentTemplate, Invoice, InvoicedSource,
                     InvoiceLine, PendingItem)

ZERO = Decimal(0)
CREDIT_NOTE_SERIES = "CN"


def _label(actor) -> str:
    return recorded.actor_label(actor)[:150]


def _require(actor, perm: str) -> None:
    if hasattr(actor, "has_perm") and not actor.has_perm(perm):
        raise DomainError(f"You need the permission {perm}.", code="permission_denied", status=403)


# --- periods --------------------------------------------------------------------------------------

def parse_period(period) -> str:
    """`YYYY-MM` in the supported years (tarifa.kernel.periods, the one period parser)."""
    return periods.parse_period(period)


def period_of(cycle: BillCycle, period: str) -> tuple[dt.date, dt.date]:
    return generation.period_bounds(parse_period(period), cycle.day_of_month)


def check_period_closed(cycle: BillCycle, period: str, *, as_of: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The period's bounds; `period_not_closed` while its last day has not passed."""
    start, end = period_of(cycle, period)
    day = as_of or today()
    if end >= day:
        raise DomainError(f"Period {period} of cycle {cycle.code} ends on {end}: it is not closed yet (today is"
                          f" {day}); bill it from {end + dt.timedelta(days=1)} on.", code="period_not_closed",
                          status=409, fields={"period": [f"Not closed before {end + dt.timedelta(days=1)}."]})
    return start, end


def current_period(cycle: BillCycle, day: dt.date) -> str:
    """The period of `cycle` that `day` falls in."""
    first = day if day.day >= cycle.day_of_month else (day.replace(day=1) - dt.timedelta(days=1))
    return f"{first:%Y-%m}"


def last_closed_period(cycle: BillCycle, day: dt.date) -> str:
    start, _end = generation.period_bounds(current_period(cycle, day), cycle.day_of_month)
    return current_period(cycle, start - dt.timedelta(days=1))


# --- bill cycles ----------------------------------------------------------------------------------

CYCLE_FIELDS = ("code", "name", "day_of_month", "invoice_date_offset_days", "payment_terms_days", "rounding",
                "series", "auto_issue", "description")


@transaction.atomic
def create_cycle(*, actor, **fields) -> BillCycle:
    """A bill cycle. Errors: validation_failed (day of month 1–28, series A–Z, unique code)."""
    if fields.get("series"):
        check_configurable_series(fields["series"])  # CN (credit notes), P (payments), S, SH, … are taken
    if BillCycle.objects.filter(code=fields.get("code")).exists():
        raise ValidationFailed(f"A cycle {fields.get('code')!r} exists.", code="duplicate_code",
                               fields={"code": ["Already used."]})
    return recorded.create(BillCycle, actor=actor, **{k: v for k, v in fields.items() if k in CYCLE_FIELDS})


@transaction.atomic
def update_cycle(cycle: BillCycle, *, actor, **changes) -> BillCycle:
    """Change a cycle's terms; invoices already made keep theirs."""
    changes.pop("code", None)
    if changes.get("series"):
        check_configurable_series(changes["series"])
    return recorded.update(cycle, actor=actor, **{k: v for k, v in changes.items() if k in CYCLE_FIELDS})


@transaction.atomic
def archive_cycle(cycle: BillCycle, *, actor, reason="") -> BillCycle:
    if cycle.assignments.exists():
        raise DomainError(f"Cycle {cycle.code} still has accounts; move them first.", code="cycle_in_use", status=409)
    return recorded.archive(cycle, actor=actor, reason=reason)


@transaction.atomic
def assign_cycle(*, actor, billing_account: BillingAccount, cycle: BillCycle) -> BillCycleAssignment:
    """Put an account in a cycle (or move it). Idempotent. Errors: cycle_archived, account_closed."""
    _require(actor, "billing.assign_cycle")
    if cycle.archived_at is not None:
        raise DomainError(f"Cycle {cycle.code} is archived.", code="cycle_archived", status=409)
    if not billing_account.is_active:
        raise DomainError(f"Account {billing_account} is closed.", code="account_closed", status=409)
    existing = BillCycleAssignment.objects.select_for_update().filter(billing_account=billing_account).first()
    if existing is not None:
        if existing.cycle_id == cycle.pk:
            return existing
        before = existing.cycle.code
        existing.cycle, existing.assigned_at, existing.actor = cycle, now(), _label(actor)
        existing.save(update_fields=["cycle", "assigned_at", "actor"])
        recorded.record(billing_account, actor=actor, action="bill_cycle", changes={"cycle": [before, cycle.code]})
        return existing
    assignment = BillCycleAssignment.objects.create(billing_account=billing_account, cycle=cycle,
                                                    actor=_label(actor))
    recorded.record(billing_account, actor=actor, action="bill_cycle", changes={"cycle": [None, cycle.code]})
    return assignment


@transaction.atomic
def assign_accounts_bulk(*, actor, cycle: BillCycle | None = None, payment_mode: str | None = None,
                         spread_over: list[BillCycle] | None = None) -> int:
    """Put every active account without a cycle (of `payment_mode`, if given) in `cycle`, or
    spread them evenly over the cycles of `spread_over` (by a hash of the account); returns how many.

    Set-based (one INSERT … SELECT); the summary is audited on each cycle.
    """
    _require(actor, "billing.assign_cycle")
    cycles = list(spread_over or ([cycle] if cycle is not None else []))
    if not cycles:
        raise ValidationFailed("Name a cycle to assign the accounts to.", code="validation_failed",
                               fields={"cycle": ["Required."]})
    archived = [c.code for c in cycles if c.archived_at is not None]
    if archived:
        raise DomainError(f"Cycle {archived[0]} is archived.", code="cycle_archived", status=409)
    with connection.cursor() as cursor:
        cursor.execute("""
            WITH made AS (
            INSERT INTO billing_billcycleassignment (id, billing_account_id, cycle_id, assigned_at, actor)
            SELECT ledger_uuid7(), ba.id, (%(cycles)s::uuid[])[1 + abs(hashtext(ba.id::text)) %% %(n)s],
                   %(now)s, %(actor)s
            FROM ledger_billingaccount ba
            WHERE ba.status = 'active' AND (%(mode)s::text IS NULL OR ba.payment_mode = %(mode)s)
              AND NOT EXISTS (SELECT 1 FROM billing_billcycleassignment x WHERE x.billing_account_id = ba.id)
            ON CONFLICT (billing_account_id) DO NOTHING
            RETURNING cycle_id)
            SELECT cycle_id, count(*) FROM made GROUP BY cycle_id""",
                       {"cycles": [c.pk for c in cycles], "n": len(cycles), "now": now(), "actor": _label(actor),
                        "mode": payment_mode})
        per_cycle = dict(cursor.fetchall())
    for c in cycles:
        recorded.record(c, actor=actor, action="assign_accounts", message=f"{per_cycle.get(c.pk, 0)} accounts",
                        changes={"accounts": [None, per_cycle.get(c.pk, 0)], "payment_mode": [None, payment_mode]})
    return sum(per_cycle.values())


def cycle_of(account: BillingAccount) -> BillCycle:
    assignment = BillCycleAssignment.objects.select_related("cycle").filter(billing_account=account).first()
    if assignment is None:
        raise DomainError(f"Account {account} is in no bill cycle: assign it to one first.", code="no_cycle",
                          status=409, fields={"billing_account": ["No bill cycle."]})
    return assignment.cycle


# --- pending items ---------------------------------------------------------------------------------

@transaction.atomic
def add_pending_item(*, actor, billing_account: BillingAccount, kind: str, description: str, amount,
                     service_type: str = "", day: dt.date | None = None) -> PendingItem:
    """A one-time fee, adjustment or discount for the account's next invoice (booked when it is issued).

    Discounts are credits (negative); a positive discount is refused. Errors: amount errors,
    amount_zero, invalid_kind, unknown_service_type, discount_positive, account_closed.
    """
    amount = parse_amount(amount)
    if amount == 0:
        raise ValidationFailed("The amount is not zero.", code="amount_zero", fields={"amount": ["Not zero."]})
    if kind not in PendingItem.Kind.values:
        raise ValidationFailed(f"Unknown kind {kind!r}.", code="invalid_kind", fields={"kind": ["Unknown."]})
    if kind == PendingItem.Kind.DISCOUNT and amount > 0:
        raise ValidationFailed("A discount is a credit: give a negative amount.", code="discount_positive",
                               fields={"amount": ["Negative for a discount."]})
    if service_type and not ServiceType.objects.filter(code=service_type).exists():
        raise ValidationFailed(f"Unknown service type {service_type!r}.", code="unknown_service_type",
                               fields={"service_type": ["Unknown."]})
    if not billing_account.is_active:
        raise DomainError(f"Account {billing_account} is closed.", code="account_closed", status=409)
    item = recorded.create(PendingItem, actor=actor, billing_account=billing_account, kind=kind,
                           description=str(description or "").strip() or kind.replace("_", " "), amount=amount,
                           service_type=service_type or "", day=day or today(), added_by=_label(actor))
    return item


# --- taxes ------------------------------------------------------------------------------------------

def tax_rates(*, tax_scheme, day: dt.date) -> dict:
    """{service type code: [TaxRate]} for a customer under `tax_scheme` on `day`."""
    return {st.code: catalog.applicable_taxes(service_type=st, tax_scheme=tax_scheme, day=day)
            for st in ServiceType.objects.all()}


def tax_table(day: dt.date) -> list[tuple]:
    """(tax scheme id or None, service type code, tax code, rate, inclusive) for every scheme: the bulk path's rules."""
    from tarifa.crm.models import TaxScheme

    rows = []
    for scheme in [None, *TaxScheme.objects.all()]:
        for st_code, rates in tax_rates(tax_scheme=scheme, day=day).items():
            rows += [(scheme.pk if scheme else None, st_code, r.code, r.rate, r.inclusive) for r in rates]
    return rows


# --- invoices -------------------------------------------------------------------------------------

def _minor(currency: str) -> int:
    return CURRENCIES[currency]


def draft_for(account: BillingAccount, cycle: BillCycle, period: str) -> tuple[generation.Draft, dict]:
    """What the invoice of `account` for `period` would be (pure function over the read sources)."""
    start, end = period_of(cycle, period)
    invoice_date = end + dt.timedelta(days=cycle.invoice_date_offset_days)
    srcs = sources.read_sources(account, end)
    customer = account.customer
    draft = generation.generate(sources=srcs, taxes=tax_rates(tax_scheme=customer.tax_scheme, day=invoice_date),
                                rounding=cycle.rounding, currency=account.currency,
                                minor_digits=_minor(account.currency))
    return draft, {"period_start": start, "period_end": end, "invoice_date": invoice_date,
                   "due_date": invoice_date + dt.timedelta(days=cycle.payment_terms_days)}


def _json_taxes(entries) -> list:
    return [{"code": e["code"], "rate": f"{Decimal(e['rate']):f}", "inclusive": bool(e["inclusive"]),
             "base": f"{Decimal(e['base']):f}", "tax": f"{Decimal(e['tax']):f}"} for e in entries]


def _write(account, cycle, period, draft, dates, *, actor, run=None, purpose=Invoice.Purpose.REGULAR,
           reason="") -> Invoice:
    invoice = Invoice.objects.create(
        kind=Invoice.Kind.INVOICE, purpose=purpose, reason=reason, billing_account=account, customer=account.customer,
        cycle=cycle, period=period,
        period_start=dates["period_start"], period_end=dates["period_end"], invoice_date=dates["invoice_date"],
        due_date=dates["due_date"], currency=account.currency, rounding=draft.rounding,
        rounding_note=draft.rounding_note, subtotal=draft.subtotal, tax_total=draft.tax_total, total=draft.total,
        ledger_amount=draft.ledger_amount, tax_summary=_json_taxes(draft.tax_summary), bill_run=run,
        language=account.customer.language or "en")
    lines, links = [], []
    for position, d in enumerate(draft.lines, start=1):
        line = InvoiceLine(
            invoice=invoice, position=position, kind=d.kind, key=d.key[:200], description=d.description,
            service=d.service, service_type=d.service_type, subscription_id=d.subscription or None,
            period_start=d.period_start, period_end=d.period_end, quantity=d.quantity, unit=d.unit,
            free_units=d.free_units, destination=d.destination, amount=d.amount, net=d.net, tax=d.tax,
            total=d.total, taxes=_json_taxes(d.taxes), booked=d.booked_amount != 0)
        lines.append(line)
        links += [InvoicedSource(source_id=sid, source_type=stype, line=line, invoice=invoice, amount=amount)
                  for sid, stype, amount in d.sources]
    InvoiceLine.objects.bulk_create(lines)
    try:
        with transaction.atomic():
            InvoicedSource.objects.bulk_create(links)
    except IntegrityError:
        raise Conflict("A source of this invoice was invoiced meanwhile; run again.", code="source_invoiced") from None
    recorded.record(invoice, actor=actor, action="create",
                    changes={"total": [None, f"{draft.total:f}"], "lines": [None, len(lines)]},
                    message=f"{period or purpose} draft")
    return invoice


def _system(code, currency):
    return ledger.system_account(code, currency)


def _book(invoice: Invoice, *, actor) -> int:
    """Post the invoice's own ledger transfers (see the module doc). Idempotent by key."""
    account = invoice.billing_account
    cur = invoice.currency
    tags = {"invoice": str(invoice.pk)}
    posted = 0

    def post(debit, credit, amount, kind, key, memo, extra=None):
        nonlocal posted
        if amount < 0:
            debit, credit, amount = credit, debit, -amount
        if amount == 0:
            return
        ledger.post_transfer(actor=actor, debit=debit, credit=credit, amount=amount, currency=cur, kind=kind,
                             idempotency_key=f"invoice:{invoice.pk}:{key}", tags={**tags, **(extra or {})},
                             reference=invoice, memo=memo, enforce_limit=False)
        posted += 1

    for line in invoice.lines.filter(booked=True).order_by("position"):
        booked = sum((s.amount for s in line.sources.all() if s.source_type != InvoicedSource.Type.TRANSFER), ZERO)
        other = _line_counter_account(line.kind, line.service_type, cur)
        post(account, other, booked, "charge" if line.kind in ("usage", "one_time_fee") else "adjustment",
             f"line:{line.position}", line.description, {"line": line.position})
    for t in invoice.tax_summary:
        if not t["inclusive"]:
            post(account, _system(f"taxes_payable:{t['code']}", cur), Decimal(t["tax"]), "tax", f"tax:{t['code']}",
                 f"{t['code']} {t['rate']}%")
    inclusive: dict[tuple, Decimal] = {}
    for line in invoice.lines.all():
        # An untyped discount's taxes (spread over the charges) reduce the tax out of `discounts`.
        counter = "discounts" if line.kind == "discount" and not line.service_type else line.service_type
        for t in line.taxes:
            if t["inclusive"] and counter:
                k = (t["code"], counter)
                inclusive[k] = inclusive.get(k, ZERO) + Decimal(t["tax"])
    for (code, st), amount in sorted(inclusive.items()):
        account_code = st if st == "discounts" else f"revenue:{st}"
        post(_system(account_code, cur), _system(f"taxes_payable:{code}", cur), amount, "tax",
             f"taxincl:{code}:{st}", f"{code} included in {st}{'' if st == 'discounts' else ' revenue'}")
    excl = sum((Decimal(t["tax"]) for t in invoice.tax_summary if not t["inclusive"]), ZERO)
    difference = invoice.total - invoice.ledger_amount - excl
    post(account, _system("rounding", cur), difference, "adjustment", "rounding", invoice.rounding_note[:200],
         {"purpose": "rounding"})
    return posted


def _line_counter_account(kind: str, service_type: str, currency: str):
    if kind == "adjustment":
        return _system("adjustments", currency)
    if kind == "discount":
        return _system("discounts", currency)
    return _system(f"revenue:{service_type}" if service_type else "revenue:other", currency)


def _issue(invoice: Invoice, *, actor, series: str) -> Invoice:
    posted = _book(invoice, actor=actor)
    invoice.number = next_number(series, branch=invoice.branch)
    invoice.issued_at = now()
    invoice.state = generation.state_for(total=invoice.total, paid=invoice.paid_amount,
                                         credited=invoice.credited_amount, due_date=invoice.due_date, today=today())
    invoice.updated_at = now()
    invoice.save(update_fields=["number", "issued_at", "state", "updated_at"])
    recorded.record(invoice, actor=actor, action="issue", changes={"number": ["", invoice.number],
                                                                   "state": ["draft", invoice.state]},
                    message=f"{posted} ledger transfers")
    events.emit("billing.invoice_issued", obj=invoice, payload={
        "invoice": str(invoice.pk), "number": invoice.number, "billing_account": str(invoice.billing_account_id),
        "customer": str(invoice.customer_id), "total": f"{invoice.total:f}", "currency": invoice.currency,
        "kind": invoice.kind})
    return invoice


def _lock_account(account: BillingAccount) -> BillingAccount:
    ledger.lock_accounts(account)
    return BillingAccount.objects.select_related("customer", "customer__tax_scheme", "ledger_account").get(
        pk=account.pk)


@transaction.atomic
def generate_invoice(*, actor, billing_account: BillingAccount, period: str, issue: bool | None = None,
                     as_of: dt.date | None = None, run=None) -> Invoice:
    """Invoice `billing_account` for `period` of its cycle: what is not yet invoiced, once.

    Takes the account lock. Idempotent per (account, period): a second call returns the
    existing invoice (`invoice.existing = True`). Issues it (numbering, ledger postings,
    allocation of unallocated payments, event) when `issue` or, by default, the cycle's
    `auto_issue` says so. Never a zero invoice, never one for a period the account did not
    live in. Errors: no_cycle, invalid_period, period_not_closed, opened_after_period,
    closed_before_period, nothing_to_invoice, account_closed (ledger), source_invoiced (a
    concurrent writer; retry).
    """
    _require(actor, "billing.add_invoice")
    period = parse_period(period)
    cycle = cycle_of(billing_account)
    check_period_closed(cycle, period, as_of=as_of)
    account = _lock_account(billing_account)
    existing = Invoice.objects.filter(billing_account=account, period=period, kind=Invoice.Kind.INVOICE).first()
    if existing is not None:
        existing.existing = True
        return existing
    check_lived(account, cycle, period)
    draft, dates = draft_for(account, cycle, period)
    if draft.empty:
        raise nothing_to_invoice(account, f"in {period}")
    dates["period_start"] = regular_start(account, dates["period_start"], dates["period_end"])
    invoice = _write(account, cycle, period, draft, dates, actor=actor, run=run)
    if issue if issue is not None else cycle.auto_issue:
        _issue(invoice, actor=actor, series=cycle.series)
        allocate_account(account=account, actor=actor)
        invoice.refresh_from_db()
    invoice.existing = False
    return invoice


def account_lifetime(account: BillingAccount) -> tuple[dt.date, dt.date | None]:
    """(the day the account was opened — its first payment mode's effective day —, the day it was closed or None)."""
    from django.db.models import Min
    from django.utils import timezone

    opened = account.mode_changes.aggregate(day=Min("effective_date"))["day"] or timezone.localtime(
        account.created_at).date()
    return opened, (timezone.localtime(account.closed_at).date() if account.closed_at else None)


def check_lived(account: BillingAccount, cycle: BillCycle, period: str) -> None:
    """Refuse a period the account did not live in: opened after its end, or closed before its start."""
    start, end = period_of(cycle, period)
    opened, closed = account_lifetime(account)
    if opened > end:
        message = (f"Account {account.number} was opened on {opened}, after period {period} ended ({end}):"
                   f" there is nothing to invoice for {period}.")
        raise DomainError(message, code="opened_after_period", status=409, fields={"period": [message]})
    if closed is not None and closed < start:
        message = f"Account {account.number} was closed on {closed}, before period {period} began ({start})."
        raise DomainError(message, code="closed_before_period", status=409, fields={"period": [message]})


def nothing_to_invoice(account: BillingAccount, when: str) -> DomainError:
    return DomainError(f"Nothing to invoice for account {account.number} {when}: no charge, usage or pending item"
                       " that is not on an invoice yet. Zero invoices are not issued.", code="nothing_to_invoice",
                       status=409)


def regular_start(account: BillingAccount, start: dt.date, end: dt.date) -> dt.date:
    """A regular invoice starts where the last interim (or final) invoice inside its period ended."""
    from django.db.models import Max

    last = (Invoice.objects.filter(billing_account=account, kind=Invoice.Kind.INVOICE,
                                   purpose__in=[Invoice.Purpose.INTERIM, Invoice.Purpose.FINAL],
                                   period_end__gte=start, period_end__lt=end)
            .aggregate(day=Max("period_end"))["day"])
    return last + dt.timedelta(days=1) if last else start


FAR_FUTURE = dt.date(9999, 12, 31)


@transaction.atomic
def bill_now(*, actor, billing_account: BillingAccount, purpose: str = Invoice.Purpose.INTERIM, reason: str = "",
             issue: bool = True, as_of: dt.date | None = None) -> Invoice:
    """An invoice now, outside the cycle's periods: *interim* — what is due so far (every source
    not yet invoiced up to today) —, or *final* — everything not yet invoiced, also days charged
    ahead and their reversals, because the customer leaves.

    Takes the account lock. Issued at once (number, ledger, allocation, e-mail) unless `issue` is
    false (a draft for review). The next regular invoice starts the day after it (`regular_start`)
    and takes only what it left: each source stands on one invoice line. Never a zero invoice.
    Errors: permission_denied, no_cycle, nothing_to_invoice, account_closed (ledger).
    """
    _require(actor, "billing.issue_invoice")
    if purpose not in (Invoice.Purpose.INTERIM, Invoice.Purpose.FINAL):
        raise ValidationFailed(f"Unknown purpose {purpose!r}.", code="invalid_purpose",
                               fields={"purpose": ["interim or final."]})
    cycle = cycle_of(billing_account)
    account = _lock_account(billing_account)
    day = as_of or today()
    upto = day if purpose == Invoice.Purpose.INTERIM else FAR_FUTURE
    srcs = sources.read_sources(account, upto)
    draft = generation.generate(sources=srcs, taxes=tax_rates(tax_scheme=account.customer.tax_scheme, day=day),
                                rounding=cycle.rounding, currency=account.currency,
                                minor_digits=_minor(account.currency))
    if draft.empty:
        raise nothing_to_invoice(account, "today")
    from django.db.models import Max

    last = Invoice.objects.filter(billing_account=account, kind=Invoice.Kind.INVOICE).exclude(
        period_end__isnull=True).aggregate(day=Max("period_end"))["day"]
    start = last + dt.timedelta(days=1) if last else account_lifetime(account)[0]
    dates = {"period_start": min(start, day), "period_end": day, "invoice_date": day,
             "due_date": day + dt.timedelta(days=cycle.payment_terms_days)}
    invoice = _write(account, cycle, "", draft, dates, actor=actor, purpose=purpose, reason=str(reason or "").strip())
    if issue:
        _issue(invoice, actor=actor, series=cycle.series)
        allocate_account(account=account, actor=actor)
        invoice.refresh_from_db()
    return invoice


def final_invoice_if_due(*, account: BillingAccount, actor, reason: str) -> Invoice | None:
    """The final invoice of a customer who leaves, if anything is left to invoice (else None).

    Accounts in no bill cycle are not invoiced (None). A closed account whose final invoice would
    have to book something on it (a pending item, an added tax) is refused by the ledger: that is
    recorded in the account's history for the operator, and None returned (never retried forever)."""
    try:
        return bill_now(actor=actor, billing_account=account, purpose=Invoice.Purpose.FINAL, reason=reason)
    except DomainError as exc:
        if exc.code in ("nothing_to_invoice", "no_cycle"):
            return None
        if exc.code == "account_closed":
            recorded.record(account, actor=actor, action="final_invoice_refused", message=exc.message)
            return None
        raise


def preview_invoice(*, billing_account: BillingAccount, period: str) -> tuple[generation.Draft, dict]:
    """The dry run of `generate_invoice`: the same reads and the same function, nothing written."""
    period = parse_period(period)
    cycle = cycle_of(billing_account)
    account = BillingAccount.objects.select_related("customer", "customer__tax_scheme").get(pk=billing_account.pk)
    return draft_for(account, cycle, period)


@transaction.atomic
def issue_invoice(invoice: Invoice, *, actor) -> Invoice:
    """Issue a draft: number it (gap-free, in this transaction), book it, allocate payments. Errors: not_draft."""
    _require(actor, "billing.issue_invoice")
    _lock_account(invoice.billing_account)
    invoice = Invoice.objects.select_for_update(of=("self",)).select_related("cycle", "billing_account").get(
        pk=invoice.pk)
    if not invoice.is_draft:
        raise DomainError(f"Invoice {invoice} is already issued.", code="not_draft", status=409)
    _issue(invoice, actor=actor, series=invoice.cycle.series if invoice.cycle else "I")
    allocate_account(account=invoice.billing_account, actor=actor)
    invoice.refresh_from_db()
    return invoice


@transaction.atomic
def discard_draft(invoice: Invoice, *, actor, reason="") -> None:
    """Delete a draft (its sources are free again; the next run invoices them). Errors: not_draft."""
    _require(actor, "billing.issue_invoice")
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if not invoice.is_draft:
        raise DomainError(f"Invoice {invoice} is issued: correct it with a credit note.", code="not_draft",
                          status=409)
    recorded.record(invoice, actor=actor, action="discard", message=str(reason or ""))
    InvoicedSource.objects.filter(invoice=invoice).delete()
    InvoiceLine.objects.filter(invoice=invoice).delete()
    invoice.delete()


# --- credit notes -----------------------------------------------------------------------------------

@transaction.atomic
def credit_invoice(invoice: Invoice, *, actor, amount=None, reason: str) -> Invoice:
    """A credit note for `amount` (gross; default: all that is still creditable) of an issued invoice.

    Never more than the invoice's total less what earlier credit notes took back
    (`credit_too_large`, naming the remaining amount). A partial note credits a share of each
    line (in proportion to what is left of it) at that line's rates (`generation.credit_note`);
    no line and no tax of a line is ever credited beyond what it charged.
    Booked at once: the customer is credited against the taxes and `credit_notes`.
    Errors: not_issued, not_an_invoice, reason_required, credit_too_large, amount errors.
    """
    _require(actor, "billing.credit_invoice")
    if not str(reason or "").strip():
        raise ValidationFailed("Give the reason for the credit note.", code="reason_required",
                               fields={"reason": ["Required."]})
    account = _lock_account(invoice.billing_account)
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.kind != Invoice.Kind.INVOICE:
        raise DomainError("Only invoices are credited, not credit notes.", code="not_an_invoice", status=409)
    if invoice.is_draft:
        raise DomainError("A draft is not credited: discard it or issue it first.", code="not_issued", status=409)
    remaining = invoice.total - invoice.credited_amount
    minor = _minor(invoice.currency)
    if amount is None or amount == "":
        amount = remaining
    amount = parse_amount(amount, positive=True)
    if amount != generation.rnd(amount, minor):
        raise ValidationFailed(f"The amount has more than {minor} decimal places.", code="amount_too_precise",
                               fields={"amount": [f"At most {minor} decimal places."]})
    if amount > remaining:
        raise DomainError(f"A credit note of {amount:f} {invoice.currency} is larger than what invoice"
                          f" {invoice.number} can still be credited: {remaining:f} {invoice.currency}"
                          f" (total {invoice.total:f}, credited {invoice.credited_amount:f}).",
                          code="credit_too_large", status=409, fields={"amount": [f"At most {remaining:f}."]})
    originals = list(invoice.lines.order_by("position"))
    try:
        draft = generation.credit_note(lines=_creditable_lines(invoice, originals), amount=amount,
                                       rounding=invoice.rounding, minor_digits=minor)
    except ValueError:
        raise DomainError(f"Invoice {invoice.number}'s lines cannot take back {amount:f} {invoice.currency} more.",
                          code="credit_too_large", status=409, fields={"amount": [f"At most {remaining:f}."]}) from None
    tax = draft.tax_total
    note = Invoice.objects.create(
        kind=Invoice.Kind.CREDIT_NOTE, billing_account=account, customer=account.customer, cycle=invoice.cycle,
        period="", period_start=invoice.period_start, period_end=invoice.period_end, invoice_date=today(),
        due_date=today(), currency=invoice.currency, rounding=invoice.rounding, rounding_note=invoice.rounding_note,
        subtotal=-(amount - tax), tax_total=-tax, total=-amount, ledger_amount=-amount,
        tax_summary=_json_taxes([{**t, "base": -t["base"], "tax": -t["tax"]} for t in draft.tax_summary]),
        credited_invoice=invoice, reason=str(reason).strip(), language=invoice.language)
    by_key = {ln.key: ln for ln in originals}
    for position, d in enumerate(draft.lines, start=1):
        line = by_key.get(d.key)
        whole = line is not None and d.total == line.total
        InvoiceLine.objects.create(
            invoice=note, position=position, kind=InvoiceLine.Kind.CREDIT, key=f"credit:{d.key}"[:200],
            description=f"Credit: {d.description}"[:300], service=line.service if line else "",
            service_type=line.service_type if line else "", subscription_id=line.subscription_id if line else None,
            period_start=line.period_start if line else None, period_end=line.period_end if line else None,
            quantity=line.quantity if whole else Decimal(1), unit=line.unit if whole else "",
            amount=-d.amount, net=-d.net, tax=-d.tax, total=-d.total,
            taxes=_json_taxes([{**t, "base": -t["base"], "tax": -t["tax"]} for t in d.taxes]))
    cur = invoice.currency
    tags = {"invoice": str(note.pk), "credits": str(invoice.pk)}
    customer_side = amount
    for t in draft.tax_summary:
        if not t["inclusive"] and t["tax"] != 0:
            payable, tax_amount = _system(f"taxes_payable:{t['code']}", cur), t["tax"]
            debit, credit = (payable, account) if tax_amount > 0 else (account, payable)
            ledger.post_transfer(actor=actor, debit=debit, credit=credit, amount=abs(tax_amount), currency=cur,
                                 kind="tax", enforce_limit=False, idempotency_key=f"invoice:{note.pk}:tax:{t['code']}",
                                 tags=tags, reference=note, memo=f"credit note: {t['code']}")
            customer_side -= tax_amount
    rest = customer_side
    if rest > 0:
        ledger.post_transfer(actor=actor, debit=_system("credit_notes", cur), credit=account, amount=rest,
                             currency=cur, kind="adjustment", enforce_limit=False,
                             idempotency_key=f"invoice:{note.pk}:credit", tags=tags, reference=note,
                             memo=f"credit note for {invoice.number}")
    note.number = next_number(CREDIT_NOTE_SERIES, branch=note.branch)
    note.state, note.issued_at = Invoice.State.ISSUED, now()
    note.save(update_fields=["number", "state", "issued_at"])
    invoice.credited_amount += amount
    invoice.state = generation.state_for(total=invoice.total, paid=invoice.paid_amount,
                                         credited=invoice.credited_amount, due_date=invoice.due_date, today=today())
    invoice.updated_at = now()
    invoice.save(update_fields=["credited_amount", "state", "updated_at"])
    recorded.record(note, actor=actor, action="issue", message=str(reason),
                    changes={"number": ["", note.number], "total": [None, f"{note.total:f}"]})
    recorded.record(invoice, actor=actor, action="credit", message=str(reason),
                    changes={"credited_amount": [f"{invoice.credited_amount - amount:f}",
                                                 f"{invoice.credited_amount:f}"], "credit_note": [None, note.number]})
    events.emit("billing.credit_note_issued", obj=note, payload={
        "invoice": str(note.pk), "number": note.number, "credits": invoice.number,
        "billing_account": str(account.pk), "customer": str(account.customer_id), "total": f"{note.total:f}",
        "currency": cur, "kind": note.kind})
    return note


def _creditable_lines(invoice: Invoice, originals: list) -> list:
    """The invoice's lines (and its rounding difference) with what earlier credit notes took back of each."""
    credited: dict[str, list] = {}
    for pl in InvoiceLine.objects.filter(invoice__credited_invoice=invoice, invoice__kind=Invoice.Kind.CREDIT_NOTE):
        key = pl.key.removeprefix("credit:")
        entry = credited.setdefault(key, [ZERO, {}])
        entry[0] -= pl.total
        for t in pl.taxes:
            k = (t["code"], Decimal(t["rate"]), bool(t["inclusive"]))
            b, x = entry[1].get(k, (ZERO, ZERO))
            entry[1][k] = (b - Decimal(t["base"]), x - Decimal(t["tax"]))
    lines = [generation.CreditableLine(key=ln.key, description=ln.description, total=ln.total, taxes=ln.taxes,
                                       credited=credited.get(ln.key, [ZERO])[0],
                                       credited_taxes=credited.get(ln.key, [ZERO, {}])[1], kind=ln.kind,
                                       service_type=ln.service_type) for ln in originals]
    difference = invoice.total - sum((ln.total for ln in originals), ZERO)
    if difference or "rounding" in credited:
        lines.append(generation.CreditableLine(key="rounding", description="Rounding", total=difference,
                                               credited=credited.get("rounding", [ZERO])[0]))
    return lines


# --- payment allocation -----------------------------------------------------------------------------

ALLOCATE_SQL = """
WITH pay AS MATERIALIZED (
  SELECT t.id, ba.id AS account_id, t.created_at, t.amount - coalesce(al.used, 0) AS free
  FROM ledger_billingaccount ba
  JOIN ledger_transfer t ON t.credit_account_id = ba.ledger_account_id AND t.kind = 'payment'
  LEFT JOIN LATERAL (SELECT sum(a.amount) AS used FROM billing_allocation a WHERE a.transfer_id = t.id) al ON TRUE
  WHERE {scope}
    AND NOT EXISTS (SELECT 1 FROM ledger_transfer r WHERE r.reverses_id = t.id)
), p AS (
  SELECT *, sum(free) OVER (PARTITION BY account_id ORDER BY created_at, id) - free AS lo FROM pay WHERE free > 0
), inv AS (
  SELECT i.id, i.billing_account_id AS account_id, i.invoice_date, i.number,
         i.total - i.paid_amount - i.credited_amount AS open
  FROM billing_invoice i JOIN ledger_billingaccount ba ON ba.id = i.billing_account_id
  WHERE {scope} AND i.kind = 'invoice' AND (i.state IN ('issued', 'partially_paid', 'overdue') {drafts})
    AND i.total - i.paid_amount - i.credited_amount > 0
), v AS (
  SELECT *, sum(open) OVER (PARTITION BY account_id ORDER BY invoice_date, number) - open AS lo FROM inv
), m AS (
  SELECT p.id AS transfer_id, v.id AS invoice_id, p.account_id,
         least(p.lo + p.free, v.lo + v.open) - greatest(p.lo, v.lo) AS amount
  FROM p JOIN v ON v.account_id = p.account_id AND p.lo < v.lo + v.open AND v.lo < p.lo + p.free
), ins AS (
  INSERT INTO billing_allocation (id, invoice_id, transfer_id, billing_account_id, amount, created_at, actor)
  SELECT ledger_uuid7(), m.invoice_id, m.transfer_id, m.account_id, m.amount, %(now)s, %(actor)s FROM m
  WHERE m.amount > 0
  ON CONFLICT (transfer_id, invoice_id) DO UPDATE SET amount = billing_allocation.amount + EXCLUDED.amount
  RETURNING invoice_id
)
SELECT DISTINCT invoice_id FROM ins
"""

REFRESH_SQL = """
WITH a AS (SELECT invoice_id, sum(amount) AS paid FROM billing_allocation WHERE invoice_id = ANY(%(ids)s)
           GROUP BY invoice_id)
UPDATE billing_invoice i SET paid_amount = a.paid, updated_at = %(now)s,
  state = CASE WHEN i.total - a.paid - i.credited_amount <= 0 THEN 'paid'
               WHEN i.due_date < %(today)s THEN 'overdue' ELSE 'partially_paid' END
FROM a WHERE i.id = a.invoice_id AND i.state <> 'draft'
RETURNING i.id, i.state
"""


def allocate(*, scope: str, params: dict, actor="system", drafts_of_batch=False) -> list:
    """Allocate unallocated payments to open invoices oldest first, within `scope` (SQL on `ba`).

    Set-based; the caller holds the accounts' lock. Returns the invoice ids changed.
    `drafts_of_batch`: the bill run's drafts (temporary table `billing_batch`) count as open —
    they are issued in the same transaction, their state set from what was allocated.
    """
    args = {"now": now(), "today": today(), "actor": _label(actor), **params}
    drafts = "OR i.id IN (SELECT invoice_id FROM billing_batch)" if drafts_of_batch else ""
    with connection.cursor() as cursor:
        cursor.execute(ALLOCATE_SQL.format(scope=scope, drafts=drafts), args)
        ids = [r[0] for r in cursor.fetchall()]
        if ids:
            cursor.execute(REFRESH_SQL, {**args, "ids": ids})
            for invoice_id, state in cursor.fetchall():
                if state == "paid":
                    events.emit("billing.invoice_paid", payload={"invoice": str(invoice_id)})
    return ids


@transaction.atomic
def allocate_account(*, account: BillingAccount, actor="system") -> list:
    """Allocate the account's unallocated payments, oldest invoice first. Takes the account lock."""
    ledger.lock_accounts(account)
    return allocate(scope="ba.id = %(account)s", params={"account": account.pk}, actor=actor)


@transaction.atomic
def allocate_payment(*, actor, invoice: Invoice, transfer: Transfer, amount=None) -> Allocation:
    """The operator's choice: apply (part of) a payment to this invoice rather than the oldest.

    Errors: not_a_payment, other_account, not_open, nothing_free, amount_too_large.
    """
    _require(actor, "billing.allocate_payment")
    account = _lock_account(invoice.billing_account)
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if transfer.kind != Transfer.Kind.PAYMENT:
        raise ValidationFailed("Only payments are allocated.", code="not_a_payment", fields={"transfer": ["Not a payment."]})
    if transfer.credit_account_id != account.ledger_account_id:
        raise ValidationFailed("The payment was made to another account.", code="other_account",
                               fields={"transfer": ["Another account's payment."]})
    if invoice.kind != Invoice.Kind.INVOICE or invoice.state not in ("issued", "partially_paid", "overdue"):
        raise DomainError(f"Invoice {invoice} is not open.", code="not_open", status=409)
    used = sum((a.amount for a in Allocation.objects.filter(transfer=transfer)), ZERO)
    free = transfer.amount - used
    if free <= 0:
        raise DomainError("This payment is already allocated in full.", code="nothing_free", status=409)
    want = min(free, invoice.outstanding) if amount in (None, "") else parse_amount(amount, positive=True)
    if want > free or want > invoice.outstanding:
        raise ValidationFailed(f"At most {min(free, invoice.outstanding):f}.", code="amount_too_large",
                               fields={"amount": [f"At most {min(free, invoice.outstanding):f}."]})
    allocation, created = Allocation.objects.get_or_create(
        transfer=transfer, invoice=invoice,
        defaults={"amount": want, "billing_account": account, "actor": _label(actor)})
    if not created:
        allocation.amount += want
        allocation.save(update_fields=["amount"])
    with connection.cursor() as cursor:
        cursor.execute(REFRESH_SQL, {"ids": [invoice.pk], "now": now(), "today": today()})
    recorded.record(invoice, actor=actor, action="allocate", changes={"payment": [None, str(transfer.pk)],
                                                                      "amount": [None, f"{want:f}"]})
    return allocation


def mark_overdue(*, as_of: dt.date | None = None) -> int:
    """Issued or partially paid invoices past their due date with money outstanding become overdue."""
    with connection.cursor() as cursor:
        cursor.execute("""UPDATE billing_invoice SET state = 'overdue', updated_at = %s
                          WHERE kind = 'invoice' AND state IN ('issued', 'partially_paid') AND due_date < %s
                            AND total - paid_amount - credited_amount > 0""", [now(), as_of or today()])
        return cursor.rowcount


# --- document templates ------------------------------------------------------------------------------

def _check_template(kind: str, body: str) -> None:
    from .documents import check_template

    check_template(kind, body)


@transaction.atomic
def create_template(*, actor, kind, language="en", body, note="") -> DocumentTemplate:
    """An operator's template; refused when it does not render on a sample (`template_error`)."""
    if DocumentTemplate.objects.filter(kind=kind, language=language, archived_at__isnull=True).exists():
        raise ValidationFailed("A template for this document and language exists.", code="duplicate_template",
                               fields={"language": ["Already has a template."]})
    _check_template(kind, body)
    return recorded.create(DocumentTemplate, actor=actor, kind=kind, language=language, body=body, note=note)


@transaction.atomic
def update_template(template: DocumentTemplate, *, actor, **changes) -> DocumentTemplate:
    changes.pop("kind", None)
    if "body" in changes:
        _check_template(template.kind, changes["body"])
    return recorded.update(template, actor=actor, **changes)


@transaction.atomic
def archive_template(template: DocumentTemplate, *, actor, reason="") -> DocumentTemplate:
    return recorded.archive(template, actor=actor, reason=reason)


def invoice_or_404(pk) -> Invoice:
    invoice = Invoice.objects.select_related("billing_account", "customer", "cycle").filter(pk=pk).first()
    if invoice is None:
        raise NotFound("No such invoice.", code="invoice_not_found")
    return invoice
