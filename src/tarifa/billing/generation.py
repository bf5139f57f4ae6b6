"""Invoice generation: a pure function of what an account was charged and what is already invoiced.

No ORM, no I/O (Kill Bill's model). `generate(account, sources, invoiced, period, taxes, rounding)`
returns the draft of what is *not yet invoiced*: a re-run with the same inputs plus the
invoices it produced returns nothing, and a dry run is the same call without the write.

Sources are the charged ledger transfers (recurring and one-time fees, usage charged
to prepaid accounts, manual adjustments), the rated usage of postpaid accounts not yet
in the ledger, and the pending items (one-time fees, adjustments, discounts) waiting for
the next invoice. Each one lands on exactly one line:

- recurring fee: one line per (subscription, tariff, fee), the days it covers as the line's period;
- one-time fee, adjustment, discount: one line per source;
- usage: one line per (subscription, usage type, destination group) with quantity and free units.

Taxes: each line is taxed with the rates of its service type (already filtered by the
customer's tax scheme): inclusive taxes are taken out of the amount, exclusive ones are
added (`catalog.pricing.taxes_for`). Rounding to the currency's minor unit, half up:

- per line: the line's amount and each of its taxes are rounded; the invoice adds them up;
- per invoice: lines stay exact; each tax's invoice total is rounded once, and so is the
  sum of the amounts.

Either way `total == subtotal + tax_total`, and `total - ledger_amount - exclusive taxes`
is the rounding difference the invoice books.

The bulk path (`bulk.py`) computes the same in SQL; a property test holds them together.
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from tarifa.catalog.pricing import TaxRate, q6, taxes_for

ZERO = Decimal(0)
LINE = "line"
INVOICE = "invoice"

RECURRING_FEE = "recurring_fee"
ONE_TIME_FEE = "one_time_fee"
USAGE = "usage"
ADJUSTMENT = "adjustment"
DISCOUNT = "discount"

KIND_ORDER = {RECURRING_FEE: 0, ONE_TIME_FEE: 1, USAGE: 2, ADJUSTMENT: 3, DISCOUNT: 4}


@dataclass(frozen=True)
class Source:
    """One thing the customer was charged (amount > 0) or credited (amount < 0)."""

    id: str
    type: str  # "transfer" | "usage" | "item"
    kind: str  # RECURRING_FEE | ONE_TIME_FEE | USAGE | ADJUSTMENT | DISCOUNT
    amount: Decimal  # exact (6 places), signed: + the customer owes, - the customer is credited
    day_from: dt.date
    day_to: dt.date
    booked: bool = True  # already in the ledger (transfers); usage and items are booked by the invoice
    service: str = ""  # service code
    service_type: str = ""  # service type code (taxes, revenue account)
    subscription: str = ""  # subscription id
    subscription_number: str = ""
    tariff: str = ""
    fee: str = ""  # recurring / channel-x / package-y / activation … / usage type for usage
    destination: str = ""
    quantity: Decimal = ZERO
    free_units: Decimal = ZERO
    description: str = ""


@dataclass
class LineDraft:
    key: str
    kind: str
    description: str
    service: str
    service_type: str
    subscription: str
    period_start: dt.date
    period_end: dt.date
    quantity: Decimal
    unit: str
    free_units: Decimal
    destination: str
    amount: Decimal  # exact sum of the sources
    booked_amount: Decimal  # part of `amount` the invoice books in the ledger (sources not yet booked)
    net: Decimal = ZERO
    tax: Decimal = ZERO
    total: Decimal = ZERO
    taxes: list = field(default_factory=list)  # [{"code", "rate", "inclusive", "base", "tax"}]
    sources: list = field(default_factory=list)  # [(source id, type, amount)]


@dataclass
class Draft:
    lines: list
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    ledger_amount: Decimal  # exact sum of the sources
    tax_summary: list  # [{"code", "rate", "inclusive", "base", "tax"}], sorted by code
    rounding: str
    rounding_note: str
    rounding_difference: Decimal  # total - (ledger_amount + exclusive taxes): booked by the invoice

    @property
    def empty(self) -> bool:
        return not self.lines

    def exclusive_taxes(self) -> dict:
        return {t["code"]: t["tax"] for t in self.tax_summary if not t["inclusive"] and t["tax"]}


def quantum(minor_digits: int) -> Decimal:
    return Decimal(1).scaleb(-minor_digits)


def rnd(value: Decimal, minor_digits: int) -> Decimal:
    return value.quantize(quantum(minor_digits), rounding=ROUND_HALF_UP)


def rounding_note(rounding: str, currency: str, minor_digits: int) -> str:
    step = format(quantum(minor_digits), "f")
    if rounding == INVOICE:
        return (f"Amounts in {currency}, exact to 6 places per line; each tax total and the invoice total"
                f" are rounded half up to {step} {currency} once, per invoice.")
    return f"Each line's amount and each of its taxes are rounded half up to {step} {currency}; totals add them up."


def line_key(src: Source) -> str:
    if src.kind == RECURRING_FEE:
        return f"fee:{src.subscription}:{src.tariff}:{src.fee}:{src.service_type}"
    if src.kind == USAGE:
        return f"usage:{src.subscription}:{src.fee}:{src.destination}:{src.service_type}"
    return f"{src.kind}:{src.id}"


def describe(src: Source) -> str:
    """The line's description (the bulk path builds the same strings)."""
    if src.kind == RECURRING_FEE:
        fee = "" if src.fee == "recurring" else f" {src.fee}"
        return f"{src.service} {src.subscription_number} {src.tariff}{fee}".strip()[:300]
    if src.kind == USAGE:
        dest = f" {src.destination}" if src.destination else ""
        return f"{src.service} {src.subscription_number} {src.fee}{dest}".strip()[:300]
    if src.kind == ONE_TIME_FEE and src.subscription_number:
        return f"{src.service} {src.subscription_number} {src.fee}".strip()[:300]
    return (src.description or src.fee or src.kind)[:300]


def unit_of(src: Source) -> str:
    return src.fee if src.kind == USAGE else ""


def group(sources) -> list[LineDraft]:
    lines: dict[str, LineDraft] = {}
    for src in sources:
        key = line_key(src)
        line = lines.get(key)
        if line is None:
            line = lines[key] = LineDraft(
                key=key, kind=src.kind, description=describe(src), service=src.service,
                service_type=src.service_type, subscription=src.subscription, period_start=src.day_from,
                period_end=src.day_to, quantity=ZERO, unit=unit_of(src), free_units=ZERO,
                destination=src.destination, amount=ZERO, booked_amount=ZERO)
        line.amount += src.amount
        if not src.booked:
            line.booked_amount += src.amount
        line.quantity += src.quantity if src.kind == USAGE else ZERO
        line.free_units += src.free_units
        line.period_start = min(line.period_start, src.day_from)
        line.period_end = max(line.period_end, src.day_to)
        line.sources.append((src.id, src.type, src.amount))
    for line in lines.values():
        if line.kind != USAGE:
            line.quantity = Decimal(1)
    return sorted(lines.values(), key=lambda ln: (KIND_ORDER.get(ln.kind, 9), ln.description, ln.key))


def _tax_entries(amount: Decimal, rates) -> tuple[Decimal, list[dict]]:
    net, tax_lines = taxes_for(amount, list(rates))
    inclusive = {r.code: r.inclusive for r in rates}
    return net, [{"code": t.code, "rate": t.rate, "inclusive": inclusive[t.code], "base": t.base, "tax": t.tax}
                 for t in tax_lines]


def generate(*, sources, invoiced=frozenset(), taxes: dict, rounding: str = LINE, currency: str,
             minor_digits: int = 2) -> Draft:
    """The draft invoice of `sources` not in `invoiced` (ids of sources already on an invoice line).

    `taxes`: {service type code: [TaxRate, …]} as they apply to this customer on the
    invoice date (rates of a type missing here: none). Pure and deterministic.
    """
    fresh = [s for s in sources if s.id not in invoiced]
    lines = group(fresh)
    summary: dict[tuple, dict] = {}
    for line in lines:
        rates = sorted(taxes.get(line.service_type, ()) if line.service_type else (), key=lambda r: r.code)
        base_amount = rnd(line.amount, minor_digits) if rounding == LINE else line.amount
        net, entries = _tax_entries(base_amount, rates)
        if rounding == LINE:
            for e in entries:
                e["tax"] = rnd(e["tax"], minor_digits)
                e["base"] = rnd(e["base"], minor_digits)
            incl = sum((e["tax"] for e in entries if e["inclusive"]), ZERO)
            excl = sum((e["tax"] for e in entries if not e["inclusive"]), ZERO)
            line.net = base_amount - incl
            line.tax = incl + excl
            line.total = base_amount + excl
        else:
            line.net = net
            line.tax = sum((e["tax"] for e in entries), ZERO)
            line.total = line.amount + sum((e["tax"] for e in entries if not e["inclusive"]), ZERO)
        line.taxes = entries
        for e in entries:
            s = summary.setdefault((e["code"], e["rate"], e["inclusive"]),
                                   {"code": e["code"], "rate": e["rate"], "inclusive": e["inclusive"],
                                    "base": ZERO, "tax": ZERO})
            s["base"] += e["base"]
            s["tax"] += e["tax"]
    ledger_amount = sum((ln.amount for ln in lines), ZERO)
    tax_summary = [summary[k] for k in sorted(summary, key=lambda k: (k[0], k[1]))]
    if rounding == INVOICE:
        for s in tax_summary:
            s["base"] = rnd(s["base"], minor_digits)
            s["tax"] = rnd(s["tax"], minor_digits)
        tax_total = sum((s["tax"] for s in tax_summary), ZERO)
        excl = sum((s["tax"] for s in tax_summary if not s["inclusive"]), ZERO)
        total = rnd(ledger_amount, minor_digits) + excl
        subtotal = total - tax_total
    else:
        subtotal = sum((ln.net for ln in lines), ZERO)
        tax_total = sum((ln.tax for ln in lines), ZERO)
        total = sum((ln.total for ln in lines), ZERO)
        excl = sum((s["tax"] for s in tax_summary if not s["inclusive"]), ZERO)
    difference = total - ledger_amount - excl
    return Draft(lines=lines, subtotal=q6(subtotal), tax_total=q6(tax_total), total=q6(total),
                 ledger_amount=q6(ledger_amount), tax_summary=tax_summary, rounding=rounding,
                 rounding_note=rounding_note(rounding, currency, minor_digits),
                 rounding_difference=q6(difference))


def state_for(*, total: Decimal, paid: Decimal, credited: Decimal, due_date: dt.date, today: dt.date) -> str:
    """An issued invoice's state from its amounts and due date."""
    outstanding = total - paid - credited
    if outstanding <= 0:
        return "paid"
    if due_date < today:
        return "overdue"
    if paid > 0 or credited > 0:
        return "partially_paid"
    return "issued"


def period_bounds(period: str, day_of_month: int) -> tuple[dt.date, dt.date]:
    """The first and last day of the cycle period `YYYY-MM` starting on `day_of_month`."""
    year, month = (int(p) for p in period.split("-"))
    start = dt.date(year, month, day_of_month)
    nxt = dt.date(year + (month == 12), month % 12 + 1, day_of_month)
    return start, nxt - dt.timedelta(days=1)


def credit_note_split(invoice_total: Decimal, tax_summary: list, amount: Decimal, minor_digits: int) -> list[dict]:
    """The tax split of a partial credit of `amount` (gross) on an invoice: proportional per tax."""
    if invoice_total == 0:
        return []
    out = []
    for t in tax_summary:
        tax = rnd(Decimal(t["tax"]) * amount / invoice_total, minor_digits)
        base = rnd(Decimal(t["base"]) * amount / invoice_total, minor_digits)
        out.append({"code": t["code"], "rate": Decimal(t["rate"]), "inclusive": t["inclusive"], "base": base,
                    "tax": tax})
    return out


__all__ = ["ADJUSTMENT", "DISCOUNT", "INVOICE", "LINE", "ONE_TIME_FEE", "RECURRING_FEE", "USAGE", "Draft",
           "LineDraft", "Source", "TaxRate", "credit_note_split", "generate", "period_bounds", "rounding_note",
           "state_for"]
