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


def is_spread(line) -> bool:
    """A discount without a service type: it reduces the tax base of the lines it discounts."""
    return line.kind == DISCOUNT and not line.service_type


def spread_targets(lines) -> list:
    """The lines an untyped discount is spread over: charges (not discounts, not adjustments), in line order."""
    return [ln for ln in lines if ln.kind not in (DISCOUNT, ADJUSTMENT) and ln.amount > 0]


def spread_shares(amount: Decimal, targets) -> list[Decimal]:
    """`amount` split over `targets` in proportion to their exact amounts (6 places, half up);
    the last target takes the remainder, so the shares add up to `amount` exactly."""
    weight = sum((t.amount for t in targets), ZERO)
    shares = [q6(amount * t.amount / weight) for t in targets[:-1]]
    return [*shares, amount - sum(shares, ZERO)]


def _spread_entries(amount: Decimal, targets, taxes: dict) -> list[dict]:
    """Taxes of an untyped discount: each target's share at that target's rates, summed per tax."""
    acc: dict[tuple, dict] = {}
    for target, share in zip(targets, spread_shares(amount, targets), strict=True):
        rates = sorted(taxes.get(target.service_type, ()) if target.service_type else (), key=lambda r: r.code)
        for e in _tax_entries(share, rates)[1]:
            a = acc.setdefault((e["code"], e["rate"], e["inclusive"]), {**e, "base": ZERO, "tax": ZERO})
            a["base"] += e["base"]
            a["tax"] += e["tax"]
    return [acc[k] for k in sorted(acc, key=lambda k: (not k[2], k[0], k[1]))]


def generate(*, sources, invoiced=frozenset(), taxes: dict, rounding: str = LINE, currency: str,
             minor_digits: int = 2) -> Draft:
    """The draft invoice of `sources` not in `invoiced` (ids of sources already on an invoice line).

    `taxes`: {service type code: [TaxRate, …]} as they apply to this customer on the
    invoice date (rates of a type missing here: none). Pure and deterministic.

    A discount without a service type is not a tax-free line: it is spread over the invoice's
    charges in proportion to their amounts (`spread_shares`) and each share is taxed at its
    charge's rates, so the discount reduces the tax base (49.00 incl. 20 % VAT less a 10.00
    discount is 39.00 incl. 6.50 VAT).
    """
    fresh = [s for s in sources if s.id not in invoiced]
    lines = group(fresh)
    targets = spread_targets(lines)
    summary: dict[tuple, dict] = {}
    for line in lines:
        rates = sorted(taxes.get(line.service_type, ()) if line.service_type else (), key=lambda r: r.code)
        base_amount = rnd(line.amount, minor_digits) if rounding == LINE else line.amount
        if is_spread(line) and targets:
            entries = _spread_entries(base_amount, targets, taxes)
            net = base_amount - sum((e["tax"] for e in entries if e["inclusive"]), ZERO)
        else:
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


@dataclass
class CreditableLine:
    """An invoice line as a credit note sees it: what it charged and what earlier notes took back.

    `total` is the line's gross amount (with added taxes); `taxes` its tax entries
    ({"code", "rate", "inclusive", "base", "tax"}); `credited` the gross amount earlier credit
    notes took back from it and `credited_taxes` {(code, rate, inclusive): (base, tax)} theirs.
    """

    key: str
    description: str
    total: Decimal
    taxes: list = field(default_factory=list)
    credited: Decimal = ZERO
    credited_taxes: dict = field(default_factory=dict)
    kind: str = ""
    service_type: str = ""

    @property
    def remaining(self) -> Decimal:
        return self.total - self.credited


@dataclass
class CreditLineDraft:
    key: str
    description: str
    total: Decimal  # gross amount credited (positive: what the customer gets back)
    tax: Decimal
    net: Decimal
    amount: Decimal  # total less the added (exclusive) taxes: the price part
    taxes: list  # [{"code", "rate", "inclusive", "base", "tax"}] positive


@dataclass
class CreditDraft:
    lines: list
    total: Decimal
    tax_total: Decimal
    tax_summary: list  # [{"code", "rate", "inclusive", "base", "tax"}] positive, sorted by code


def _within(value: Decimal, limit: Decimal) -> Decimal:
    """`value` clamped between 0 and `limit` (either sign)."""
    return min(max(value, min(ZERO, limit)), max(ZERO, limit))


def credit_shares(amount: Decimal, remaining: list[Decimal], step: Decimal) -> list[Decimal]:
    """`amount` split over lines in proportion to what each can still be credited (`remaining`,
    signed), on the grid `step`, half up; the line with the largest remainder takes the rest.
    No share leaves the interval between 0 and its line's remainder: an excess moves to lines
    with room, in line order. The shares add up to `amount` exactly."""
    weight = sum(remaining, ZERO)
    if amount == weight:
        return list(remaining)
    if weight == 0 or not remaining:
        raise ValueError("nothing to credit")
    largest = max(range(len(remaining)), key=lambda i: (abs(remaining[i]), -i))
    shares = [(amount * r / weight).quantize(step, rounding=ROUND_HALF_UP) for r in remaining]
    shares[largest] = ZERO
    shares[largest] = amount - sum(shares, ZERO)
    for _ in range(len(remaining) + 1):
        excess = ZERO
        for i, r in enumerate(remaining):
            clamped = _within(shares[i], r)
            excess += shares[i] - clamped
            shares[i] = clamped
        if excess == 0:
            break
        for i, r in enumerate(remaining):
            room = r - shares[i]
            if excess and room and (room > 0) == (excess > 0):
                take = excess if abs(excess) <= abs(room) else room
                shares[i] += take
                excess -= take
        if excess:
            raise ValueError("the amount exceeds what the lines can be credited")
    return shares


def _line_credit_taxes(line: CreditableLine, share: Decimal, rounding: str, minor_digits: int) -> list[dict]:
    """The taxes of crediting `share` (gross) of `line`, at the line's own rates.

    The rest of a line takes back the rest of each of its taxes. Otherwise the share splits
    as the line was taxed: net = share × 100 / (100 + the line's rates), each tax = net × rate
    / 100 (an inclusive-only line: share × rate / (100 + rate)), the last tax taking the
    remainder; a discount spread over several charges (taxes on different bases) takes back
    each tax in the line's own tax-to-total ratio. Per-line rounding rounds each tax half up
    to the minor unit; no tax ever exceeds what is left of it on the line."""
    entries = [{**t, "rate": Decimal(t["rate"]), "base": Decimal(t["base"]), "tax": Decimal(t["tax"])}
               for t in line.taxes]
    if not entries:
        return []
    left = {}
    for e in entries:
        k = (e["code"], e["rate"], e["inclusive"])
        cb, ct = line.credited_taxes.get(k, (ZERO, ZERO))
        left[k] = (e["base"] - cb, e["tax"] - ct)
    if share == line.remaining:
        return [{"code": k[0], "rate": k[1], "inclusive": k[2], "base": b, "tax": t} for k, (b, t) in left.items()]
    out = []
    same_base = len({e["base"] for e in entries}) == 1
    if same_base:
        hundred = Decimal(100)
        net = q6(share * hundred / (hundred + sum((e["rate"] for e in entries), ZERO)))
        taken = ZERO
        for i, e in enumerate(entries):
            tax = share - net - taken if i == len(entries) - 1 else q6(net * e["rate"] / hundred)
            taken += tax
            out.append({"code": e["code"], "rate": e["rate"], "inclusive": e["inclusive"], "base": net, "tax": tax})
    else:
        for e in entries:
            out.append({"code": e["code"], "rate": e["rate"], "inclusive": e["inclusive"],
                        "base": q6(share * e["base"] / line.total) if line.total else ZERO,
                        "tax": q6(share * e["tax"] / line.total) if line.total else ZERO})
    for o in out:
        if rounding == LINE:
            o["tax"], o["base"] = rnd(o["tax"], minor_digits), rnd(o["base"], minor_digits)
        b, t = left[(o["code"], o["rate"], o["inclusive"])]
        o["tax"] = _within(o["tax"], t)
    if same_base:  # the taxable base is the credited net: share less its (rounded) taxes
        net = share - sum((o["tax"] for o in out), ZERO)
        for o in out:
            o["base"] = net
    for o in out:
        o["base"] = _within(o["base"], left[(o["code"], o["rate"], o["inclusive"])][0])
    return out


def credit_note(*, lines: list[CreditableLine], amount: Decimal, rounding: str = LINE,
                minor_digits: int = 2) -> CreditDraft:
    """What a credit note of `amount` (gross, positive) takes back, line by line. Pure.

    Each line with something left to credit gets its share (`credit_shares`, on the minor
    unit with per-line rounding, 6 places with per-invoice rounding), taxed back at its own
    rates (`_line_credit_taxes`). The note's tax summary adds the lines' taxes per (code, rate,
    inclusive): per-line rounding adds rounded taxes; per-invoice rounding rounds each sum once.
    Raises ValueError when `amount` exceeds what the lines can still be credited.
    """
    open_lines = [ln for ln in lines if ln.remaining != 0]
    step = quantum(minor_digits) if rounding == LINE else quantum(6)
    shares = credit_shares(amount, [ln.remaining for ln in open_lines], step)
    drafts, summary = [], {}
    for line, share in zip(open_lines, shares, strict=True):
        if share == 0:
            continue
        taxes = _line_credit_taxes(line, share, rounding, minor_digits)
        tax = sum((t["tax"] for t in taxes), ZERO)
        excl = sum((t["tax"] for t in taxes if not t["inclusive"]), ZERO)
        drafts.append(CreditLineDraft(key=line.key, description=line.description, total=share, tax=tax,
                                      net=share - tax, amount=share - excl, taxes=taxes))
        for t in taxes:
            sm = summary.setdefault((t["code"], t["rate"], t["inclusive"]),
                                    {"code": t["code"], "rate": t["rate"], "inclusive": t["inclusive"], "base": ZERO,
                                     "tax": ZERO})
            sm["base"] += t["base"]
            sm["tax"] += t["tax"]
    tax_summary = [summary[k] for k in sorted(summary, key=lambda k: (k[0], k[1]))]
    if rounding == INVOICE:
        for t in tax_summary:
            t["base"], t["tax"] = rnd(t["base"], minor_digits), rnd(t["tax"], minor_digits)
    return CreditDraft(lines=drafts, total=amount, tax_total=sum((t["tax"] for t in tax_summary), ZERO),
                       tax_summary=tax_summary)


__all__ = ["ADJUSTMENT", "DISCOUNT", "INVOICE", "LINE", "ONE_TIME_FEE", "RECURRING_FEE", "USAGE", "Draft",
           "CreditDraft", "CreditLineDraft", "CreditableLine", "LineDraft", "Source", "TaxRate", "credit_note",
           "credit_shares", "generate", "period_bounds", "rounding_note",
           "state_for"]
