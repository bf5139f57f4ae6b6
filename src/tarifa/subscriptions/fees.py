"""Which recurring fees are due, day by day: a pure function of the subscription's history.

No ORM, no I/O. The daily charge job computes the same thing in set-based SQL
(`charging.CHARGES_SQL`) for speed; a test holds the two to the same answers.

Rules:
- a subscription is charged for each day from its activation to its termination day
  (inclusive) under the tariff period in force that day, at the price version in force
  that day;
- a day is not charged when a suspension covered the whole day (started before the day,
  not ended by its end) unless the tariff charges suspended days;
- a daily fee is charged each day; a monthly fee prorated by day is charged each day
  its share of the month (the shares of a month add up to the fee exactly); a monthly
  fee not prorated is charged whole on the first chargeable day of each month;
- each TV channel or package picked is charged like the recurring fee, at the price
  the tariff's version gives it;
- each charge has an idempotency key `fee:<subscription>:<fee>:<period>` (period: the
  day, or the month when not prorated), so nothing is charged twice.
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from tarifa.catalog.pricing import DAY, MONTH, NONE, PriceTable, period_key, recurring_amount

ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class PriceVersionView:
    valid_from: dt.date
    recurring_fee: Decimal
    items: dict = field(default_factory=dict)  # item code ("channel-x" / "package-y") -> amount


@dataclass(frozen=True)
class TariffView:
    code: str
    period: str  # "month" | "day"
    proration: str  # "by_day" | "none"
    charge_suspended_days: bool
    versions: tuple  # PriceVersionView, any order

    def table(self) -> PriceTable:
        return PriceTable((v.valid_from, v) for v in self.versions)


@dataclass(frozen=True)
class SubscriptionView:
    id: str
    activated_on: dt.date | None
    terminated_on: dt.date | None
    periods: tuple  # (tariff code, valid_from, valid_until or None), valid_until excluded
    suspensions: tuple = ()  # (started_on, ended_on or None)
    items: tuple = ()  # (item code, added_on, removed_on or None)


@dataclass(frozen=True)
class Charge:
    key: str
    fee: str
    period: str
    day: dt.date
    amount: Decimal
    tariff: str


def fee_key(subscription_id, fee: str, period: str) -> str:
    return f"fee:{subscription_id}:{fee}:{period}"


def suspended_whole_day(suspensions, day: dt.date) -> bool:
    return any(start < day and (end is None or end > day) for start, end in suspensions)


def tariff_on(periods, day: dt.date):
    for code, start, until in periods:
        if start <= day and (until is None or day < until):
            return code
    return None


def charges_due(sub: SubscriptionView, tariffs: dict, first_day: dt.date, last_day: dt.date,
                already: set | frozenset = frozenset()) -> list[Charge]:
    """The charges of `sub` for the days `first_day`..`last_day`, leaving out keys in `already`."""
    if sub.activated_on is None:
        return []
    start = max(first_day, sub.activated_on)
    end = min(last_day, sub.terminated_on) if sub.terminated_on else last_day
    tables = {}
    charges: list[Charge] = []
    seen = set(already)
    day = start
    while day <= end:
        code = tariff_on(sub.periods, day)
        tariff = tariffs.get(code) if code else None
        if tariff is not None and (tariff.charge_suspended_days or not suspended_whole_day(sub.suspensions, day)):
            table = tables.get(code) or tables.setdefault(code, tariff.table())
            version = table.value_on(day)
            if version is not None:
                fees = [("recurring", version.recurring_fee)]
                for item, added, removed in sub.items:
                    if added <= day and (removed is None or day < removed) and item in version.items:
                        fees.append((item, version.items[item]))
                period = period_key(tariff.period, tariff.proration, day)
                for fee, price in fees:
                    key = fee_key(sub.id, fee, period)
                    if key in seen:
                        continue
                    amount = recurring_amount(tariff.period, tariff.proration, price, day)
                    if amount is None or amount <= 0:
                        continue
                    seen.add(key)
                    charges.append(Charge(key, fee, period, day, amount, code))
        day += ONE_DAY
    return charges


def total(charges) -> Decimal:
    return sum((c.amount for c in charges), Decimal(0))


__all__ = ["DAY", "MONTH", "NONE", "Charge", "PriceVersionView", "SubscriptionView", "TariffView", "charges_due",
           "fee_key", "suspended_whole_day", "total"]
