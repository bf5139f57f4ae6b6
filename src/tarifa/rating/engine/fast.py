"""A cached front end to :func:`.rater.rate` for rating millions of records.

Most usage records are priced by a single rate interval from start to end: a voice
call that crosses no midnight, no timing change and no later rating-profile
activation, or any data/SMS record (never split by time).  For such a record the
cost depends only on *which* rate interval prices it and on its usage, so
:class:`CachedRater` resolves the interval itself (the same profile, prefix and
timing look-ups as the rater, using its compiled indexes) and keeps

    cost = cache[(price key of the interval, usage key)]

where the price key stands for (rate, rounding, max cost) — shared by every
destination priced alike — and the usage key is the number of increments for a
single-slot rate (a call of 61 s and one of 119 s both cost two minutes under
60 s increments) or the exact usage otherwise.  A miss, and every record that does
not fit (boundary crossed, fallback subjects, errors), goes through
:func:`.rater.rate` itself, so the results are the rater's by construction; the
property tests check the two agree on random plans and calls.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, tzinfo
from decimal import Decimal

from .durations import SECOND
from .model import ANY, RatingError, TariffPlan, _RateInterval
from .rater import RATING_PLAN_NOT_FOUND, VOICE_USAGE_TYPES, _day, _match_destination, _to_datetime, rate

__all__ = ["CachedRater", "Rated"]

_BUCKET = 900 * SECOND  # every UTC offset and DST change is a multiple of 15 minutes
_INF = 1 << 126


class Rated:
    """The outcome the mediation needs: cost and what matched."""

    __slots__ = ("cost", "rating_plan_id", "destination_id")

    def __init__(self, cost: Decimal, rating_plan_id: str, destination_id: str):
        self.cost = cost
        self.rating_plan_id = rating_plan_id
        self.destination_id = destination_id

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Rated({self.cost}, {self.rating_plan_id}, {self.destination_id})"


class _LocalClock:
    """The part of the rater's _Clock that destination matching uses, computed lazily."""

    __slots__ = ("start_ns", "tz", "_local")

    def __init__(self, start_ns: int, tz: tzinfo, local=None):
        self.start_ns = start_ns
        self.tz = tz
        self._local = local

    def local(self, at_ns: int) -> tuple[date, int]:
        if at_ns == self.start_ns and self._local is not None:
            return self._local
        moment = _to_datetime(at_ns, self.tz)
        value = moment.date(), moment.hour * 3600 + moment.minute * 60 + moment.second
        if at_ns == self.start_ns:
            self._local = value
        return value


class CachedRater:
    """Rates records of one :class:`TariffPlan` with a per-(price, usage) cost cache.

    ``rate(...)`` answers exactly what :func:`.rater.rate` answers for the same
    arguments (cost, rating plan and destination of the first span) or raises the
    same :class:`RatingError`.  Not thread-safe; one per process.
    """

    def __init__(self, plan: TariffPlan, *, rounding_decimals: int = 5, cache_limit: int = 500_000):
        self.plan = plan
        self.rounding_decimals = rounding_decimals
        self.cache_limit = cache_limit
        self._costs: dict = {}
        self._price_keys: dict[int, tuple] = {}
        self._days: dict[tuple[tzinfo, int], object] = {}
        self.hits = 0
        self.misses = 0
        self.slow = 0

    # ------------------------------------------------------------------ public

    def rate(
        self,
        *,
        tenant: str,
        category: str,
        subject: str,
        destination: str,
        start_ns: int,
        tz: tzinfo,
        usage: int,
        usage_type: str = "voice",
        rating_plan_id: str | None = None,
    ) -> Rated:
        if usage < 0:
            raise ValueError("usage must not be negative")
        if start_ns % 1000:
            raise ValueError("start_ns must be whole microseconds (what a datetime can hold)")
        voice = usage_type in VOICE_USAGE_TYPES
        plan = self.plan
        next_activation = _INF
        if rating_plan_id is not None:
            compiled = plan._plans.get(rating_plan_id)
            if compiled is None:
                raise RatingError(RATING_PLAN_NOT_FOUND, f"no rating plan {rating_plan_id!r}")
        else:
            profiles = plan._profiles
            activations = profiles.get((tenant, category, subject))
            if activations is None:
                activations = profiles.get((tenant, category, ANY))
            if activations is None:
                return self._slow(tenant, category, subject, destination, start_ns, tz, usage, usage_type,
                                  rating_plan_id)
            times = activations.times_ns
            idx = bisect_right(times, start_ns) - 1
            if idx < 0:
                return self._slow(tenant, category, subject, destination, start_ns, tz, usage, usage_type,
                                  rating_plan_id)
            if idx + 1 < len(times):
                next_activation = times[idx + 1]
            compiled = plan._plans[activations.profiles[idx].rating_plan_id]
        if usage == 0:
            return self._slow(tenant, category, subject, destination, start_ns, tz, usage, usage_type,
                              rating_plan_id)

        day = self._day_of(start_ns, tz)
        if day.regular:
            local = (day.date, (start_ns - day.start_ns) // SECOND)
        else:
            local = None
        matched = _match_destination(compiled, destination, start_ns, _LocalClock(start_ns, tz, local))
        if matched is None:  # fallback subjects, or unauthorized: the rater decides
            return self._slow(tenant, category, subject, destination, start_ns, tz, usage, usage_type,
                              rating_plan_id)
        dest_id, _prefix, ril = matched

        ri = ril.sole
        window_end = _INF
        if voice:
            if ri is not None:
                window_end = day.end_ns
            else:
                points = day.absolute(ril.shape)
                last = len(points) - 1
                i = 0
                while i < last and points[i + 1][0] <= start_ns:
                    i += 1
                index = points[i][1]
                ri = None if index is None else ril.intervals[index]
                window_end = points[i + 1][0] if i < last else day.end_ns
            if next_activation < window_end:
                window_end = next_activation
            if start_ns + usage > window_end:
                return self._slow(tenant, category, subject, destination, start_ns, tz, usage, usage_type,
                                  rating_plan_id)
        elif ri is None:
            if local is None:
                local = _LocalClock(start_ns, tz).local(start_ns)
            ri = ril.winner_at(local[0], local[1])
        if ri is None:
            return self._slow(tenant, category, subject, destination, start_ns, tz, usage, usage_type,
                              rating_plan_id)

        key = self._key(ri, usage)
        cost = self._costs.get(key)
        if cost is None:
            self.misses += 1
            result = self._slow(tenant, category, subject, destination, start_ns, tz, usage, usage_type,
                                rating_plan_id, count=False)
            if len(self._costs) >= self.cache_limit:
                self._costs.clear()
            self._costs[key] = result.cost
            return result
        self.hits += 1
        return Rated(cost, compiled.id, dest_id)

    # ------------------------------------------------------------------ internals

    def _key(self, ri: _RateInterval, usage: int) -> tuple:
        price = self._price_keys.get(id(ri))
        if price is None:
            price = (id(ri.rate), ri.rounding_method, ri.rounding_decimals, ri.max_cost, ri.max_cost_strategy)
            # Keep the interval alive so its id() is never reused by another object.
            self._price_keys[id(ri)] = price = (price, ri)
        flat = ri.rate.flat
        if flat is not None:
            increment = flat.effective_increment
            return (price[0], -(-usage // increment), True)
        return (price[0], usage, False)

    def _day_of(self, start_ns: int, tz: tzinfo):
        bucket = (tz, start_ns // _BUCKET)
        day = self._days.get(bucket)
        if day is None:
            moment = _to_datetime(start_ns, tz)
            day = _day(moment.date(), tz)
            if not day.start_ns <= start_ns < day.end_ns:  # pragma: no cover - defensive
                day = _day(moment.date(), tz)
            if len(self._days) > 100_000:
                self._days.clear()
            self._days[bucket] = day
        return day

    def _slow(self, tenant, category, subject, destination, start_ns, tz, usage, usage_type, rating_plan_id,
              count=True) -> Rated:
        if count:
            self.slow += 1
        answer_time = _to_datetime(start_ns, tz)
        result = rate(
            self.plan,
            tenant=tenant,
            category=category,
            subject=subject,
            destination=destination,
            answer_time=answer_time,
            usage=usage,
            usage_type=usage_type,
            rounding_decimals=self.rounding_decimals,
            rating_plan_id=rating_plan_id,
        )
        first = result.spans[0] if result.spans else None
        return Rated(result.cost, first.rating_plan_id if first else (rating_plan_id or ""),
                     first.destination_id if first else "")
