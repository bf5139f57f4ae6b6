"""Pure price arithmetic: proration, price versions, taxes. No ORM, no I/O.

Amounts are Decimal, exact to the ledger's 6 places. A monthly fee prorated by day
gives each day of the month its share so that the shares of a whole month add up to
the fee exactly: day d of an n-day month gets round(fee*d/n) - round(fee*(d-1)/n).
"""

import calendar
import datetime as dt
from bisect import bisect_right
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

QUANTUM = Decimal("0.000001")
ZERO = Decimal(0)
HUNDRED = Decimal(100)

MONTH = "month"
DAY = "day"
BY_DAY = "by_day"
NONE = "none"


def q6(value: Decimal) -> Decimal:
    return value.quantize(QUANTUM, rounding=ROUND_HALF_UP)


def days_in_month(day: dt.date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def month_end(day: dt.date) -> dt.date:
    return day.replace(day=days_in_month(day))


def day_share(monthly_fee: Decimal, day: dt.date) -> Decimal:
    """This day's share of a monthly fee; a whole month's shares sum to the fee exactly."""
    n = days_in_month(day)
    d = day.day
    return q6(monthly_fee * d / n) - q6(monthly_fee * (d - 1) / n)


def share_of_days(monthly_fee: Decimal, first: dt.date, last: dt.date) -> Decimal:
    """Sum of the day shares from `first` to `last` (same month), inclusive."""
    if first.month != last.month or first.year != last.year or last < first:
        raise ValueError("first and last must be in one month, first <= last")
    n = days_in_month(first)
    return q6(monthly_fee * last.day / n) - q6(monthly_fee * (first.day - 1) / n)


def period_key(period: str, proration: str, day: dt.date) -> str:
    """The charging period `day` falls in: the day itself, or its month when not prorated."""
    if period == MONTH and proration == NONE:
        return f"{day:%Y-%m}"
    return day.isoformat()


def recurring_amount(period: str, proration: str, fee: Decimal, day: dt.date) -> Decimal | None:
    """What is due on `day` for a recurring fee; None when nothing is due that day.

    - daily fee: the fee, every day;
    - monthly fee prorated by day: the day's share of the month;
    - monthly fee not prorated: the whole fee, once per month (the caller charges it on
      the first chargeable day of the month; the period key makes it once).
    """
    if period == DAY:
        return q6(fee)
    if proration == BY_DAY:
        return day_share(fee, day)
    return q6(fee)


class PriceTable:
    """Values effective from dates: `value_on(day)` is the latest one in force."""

    def __init__(self, entries):
        pairs = sorted(entries, key=lambda e: e[0])
        self.dates = [d for d, _ in pairs]
        self.values = [v for _, v in pairs]

    def value_on(self, day: dt.date):
        i = bisect_right(self.dates, day)
        return self.values[i - 1] if i else None

    def __bool__(self):
        return bool(self.dates)


@dataclass(frozen=True)
class TaxRate:
    code: str
    rate: Decimal  # percent
    inclusive: bool


@dataclass(frozen=True)
class TaxLine:
    code: str
    rate: Decimal
    base: Decimal
    tax: Decimal


def taxes_for(amount: Decimal, rates: list[TaxRate]) -> tuple[Decimal, list[TaxLine]]:
    """Split `amount` into (net, tax lines). Inclusive taxes are taken out of the amount,
    exclusive ones are added to the net. Exact to 6 places; documents round later."""
    inclusive = [r for r in rates if r.inclusive]
    incl_rate = sum((r.rate for r in inclusive), ZERO)
    net = q6(amount * HUNDRED / (HUNDRED + incl_rate)) if incl_rate else amount
    lines = []
    taken = ZERO
    for i, r in enumerate(inclusive):
        # The last inclusive tax takes the remainder so net + taxes == amount exactly.
        tax = amount - net - taken if i == len(inclusive) - 1 else q6(net * r.rate / HUNDRED)
        taken += tax
        lines.append(TaxLine(r.code, r.rate, net, tax))
    for r in rates:
        if not r.inclusive:
            lines.append(TaxLine(r.code, r.rate, net, q6(net * r.rate / HUNDRED)))
    return net, lines
