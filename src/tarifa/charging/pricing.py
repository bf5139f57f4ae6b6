"""Pure pricing of credit-control sessions: no ORM, only the rating engine.

A session is priced as the *whole* usage so far, from its answer time, with the plan and
rounding that rate its CDR offline (`rating.usage`): cost(u) = rate(answer time, u), the
free units of a bundle first (the part a bundle does not cover is priced as the rest of
the call, starting after the free part for types split by time). What an update debits is
cost(used now) − what was already debited, so the sum of the debits of a complete call is
cost(total usage) — the offline price to the last digit, whatever the slices, timing
changes or midnights inside the call.

The next slice reserves cost(used + granted) − cost(used); the grant is the largest
number of units (up to what was asked) whose reservation fits the budget.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from tarifa.rating import engine

ZERO = Decimal(0)
#: Units the search steps by: a second for time, a byte, an item.
STEP = {"time": engine.SECOND, "bytes": 1, "count": 1}
#: Units granted when a request asks for none.
DEFAULT_QUOTA = {"time": 300 * engine.SECOND, "bytes": 10_000_000, "count": 1}


@dataclass
class Pricing:
    """How one session is priced (fixed when it starts)."""

    plan: engine.TariffPlan
    tenant: str
    category: str
    subject: str
    destination: str
    answer_time: dt.datetime  # aware, in the zone whose wall clock the timings read
    split: bool  # split by time of day (voice)
    rounding_decimals: int = 5
    rating_plan: str | None = None
    free: int = 0  # free units of a bundle assigned to the session

    def rate(self, usage: int, *, offset: int = 0) -> engine.Cost:
        return engine.rate(self.plan, tenant=self.tenant, category=self.category, subject=self.subject,
                           destination=self.destination, answer_time=self.answer_time + dt.timedelta(
                               microseconds=offset // 1000) if offset else self.answer_time,
                           usage=usage, usage_type="voice" if self.split else "data",
                           rounding_decimals=self.rounding_decimals, rating_plan_id=self.rating_plan)

    def cost(self, used: int) -> Decimal:
        """The cost of the first `used` units of the session (raises engine.RatingError)."""
        if used <= 0:
            return ZERO
        free = min(self.free, used)
        if free == used:
            return ZERO
        if free:
            return self.rate(used - free, offset=free if self.split else 0).cost
        return self.rate(used).cost

    def rated_usage(self, used: int) -> int:
        """The usage as rated (stretched to whole increments), free units included."""
        if used <= 0:
            return 0
        free = min(self.free, used)
        if free == used:
            return used
        return free + self.rate(used - free, offset=free if self.split else 0).rated_usage


def grant(pricing: Pricing, *, used: int, requested: int, budget: Decimal | None, step: int = 1
          ) -> tuple[int, Decimal]:
    """The most units (≤ requested, in whole `step`s unless all fit) whose reservation fits `budget`.

    Returns (units, amount to reserve). `budget` None: no limit. The cost is non-decreasing
    in the usage, so a binary search finds the largest fitting grant.
    """
    if requested <= 0:
        return 0, ZERO
    base = pricing.cost(used)
    amount = pricing.cost(used + requested) - base
    if budget is None or amount <= budget:
        return requested, max(amount, ZERO)
    if budget <= 0 and pricing.cost(used + min(step, requested)) - base > 0:
        return 0, ZERO
    lo, hi = 0, requested // step  # lo steps fit; hi steps may not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if pricing.cost(used + mid * step) - base <= budget:
            lo = mid
        else:
            hi = mid - 1
    units = lo * step
    return units, max(pricing.cost(used + units) - base, ZERO) if units else ZERO
