"""Tariff-plan model: the CGRateS (v0.10/v0.11 "RALs") classic rating objects.

The public objects are frozen dataclasses that mirror the CSV files one row (or one
id) at a time.  :class:`TariffPlan` validates the references between them once and
compiles the indexes the rater needs, so that rating a call never scans a list:

* a per-rating-plan dict ``prefix -> candidate destinations``, probed from the
  longest prefix of the dialled number down to one digit (``O(len(number))``);
* a per-(tenant, category, subject) list of activation times, bisected;
* for each (rating plan, destination) a :class:`_RateIntervalList` whose per-day
  "who wins when" timeline is computed once per calendar day and cached.

Money is ``Decimal`` everywhere; durations are integer base units (see
:mod:`.durations`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal

from .durations import SECOND

__all__ = [
    "ANY",
    "ROUNDING_UP",
    "ROUNDING_MIDDLE",
    "ROUNDING_DOWN",
    "MAX_COST_FREE",
    "MAX_COST_DISCONNECT",
    "TariffPlanError",
    "RatingError",
    "Destination",
    "Timing",
    "RateSlot",
    "Rate",
    "DestinationRate",
    "RatingPlanBinding",
    "RatingProfile",
    "TariffPlan",
    "ALWAYS_TIMING",
]

ANY = "*any"
ROUNDING_UP = "*up"
ROUNDING_MIDDLE = "*middle"
ROUNDING_DOWN = "*down"
ROUNDING_METHODS = frozenset({ROUNDING_UP, ROUNDING_MIDDLE, ROUNDING_DOWN, ""})
MAX_COST_FREE = "*free"
MAX_COST_DISCONNECT = "*disconnect"
MAX_COST_STRATEGIES = frozenset({MAX_COST_FREE, MAX_COST_DISCONNECT, ""})

_DAY_SECONDS = 86_400


# --------------------------------------------------------------------------- errors


class TariffPlanError(ValueError):
    """A tariff plan is malformed or references something that does not exist.

    ``file`` and ``line_no`` locate the offending CSV row when the plan was loaded
    from files (both are ``None`` for plans built in code).
    """

    def __init__(self, file: str | None, line_no: int | None, message: str):
        self.file = file
        self.line_no = line_no
        self.message = message
        where = ""
        if file is not None:
            where = f"{file}:{line_no}: " if line_no is not None else f"{file}: "
        super().__init__(where + message)


class RatingError(Exception):
    """A call cannot be rated.

    ``code`` mirrors the CGRateS error names so callers can map them 1:1:
    ``UNAUTHORIZED_DESTINATION`` (no rate for the destination, CGRateS
    ``ErrUnauthorizedDestination``) and ``RATING_PLAN_NOT_FOUND`` (no rating
    profile for the subject nor for ``*any``, CGRateS ``ErrRatingPlanNotFound``).
    """

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class Destination:
    """A named set of number prefixes (``Destinations.csv``)."""

    id: str
    prefixes: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.id or self.id == ANY:
            raise TariffPlanError(None, None, f"invalid destination id {self.id!r}")
        for prefix in self.prefixes:
            if not isinstance(prefix, str) or not prefix:
                raise TariffPlanError(
                    None, None, f"destination {self.id}: empty prefix"
                )


@dataclass(frozen=True, slots=True)
class Timing:
    """When a rate applies (``Timings.csv``).

    Empty sets mean "any".  ``week_days`` uses ISO numbering, 1 = Monday ...
    7 = Sunday (CGRateS accepts 0 and 7 for Sunday; the loader maps 0 to 7).
    A timing is *in force* on matching days from ``start_time`` until midnight, or
    until ``end_time`` when one is given (CGRateS's rarely used ``HH:MM:SS;HH:MM:SS``
    form; the end is treated as exclusive).
    """

    id: str
    years: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    month_days: frozenset[int] = frozenset()
    week_days: frozenset[int] = frozenset()
    start_time: time = time(0)
    end_time: time | None = None

    def __post_init__(self) -> None:
        for name, values, lo, hi in (
            ("months", self.months, 1, 12),
            ("month_days", self.month_days, 1, 31),
            ("week_days", self.week_days, 1, 7),
        ):
            for value in values:
                if not lo <= value <= hi:
                    raise TariffPlanError(
                        None,
                        None,
                        f"timing {self.id}: {name} value {value} out of {lo}..{hi}",
                    )
        if self.start_time.tzinfo is not None or (
            self.end_time is not None and self.end_time.tzinfo is not None
        ):
            raise TariffPlanError(
                None, None, f"timing {self.id}: times must be naive (local)"
            )
        if self.end_time is not None and self.end_time <= self.start_time:
            raise TariffPlanError(
                None, None, f"timing {self.id}: end time must be after start time"
            )

    def matches_date(self, day: date) -> bool:
        """True when the timing applies on this (local) calendar day."""
        return (
            (not self.years or day.year in self.years)
            and (not self.months or day.month in self.months)
            and (not self.month_days or day.day in self.month_days)
            and (not self.week_days or day.isoweekday() in self.week_days)
        )

    @property
    def start_seconds(self) -> int:
        t = self.start_time
        return t.hour * 3600 + t.minute * 60 + t.second

    @property
    def end_seconds(self) -> int:
        t = self.end_time
        if t is None:
            return _DAY_SECONDS
        return t.hour * 3600 + t.minute * 60 + t.second

    @property
    def is_always(self) -> bool:
        """In force at every instant (the built-in ``*any`` timing and equivalents)."""
        return (
            not self.years
            and not self.months
            and not self.month_days
            and not self.week_days
            and self.start_time == time(0)
            and self.end_time is None
        )


#: The built-in ``*any`` timing every CGRateS tariff plan can refer to.
ALWAYS_TIMING = Timing(ANY)


@dataclass(frozen=True, slots=True)
class RateSlot:
    """One row of ``Rates.csv``.

    ``rate`` is charged per ``rate_unit`` of usage, usage is counted in whole
    ``rate_increment``\\ s, and the slot applies from ``group_interval_start`` of
    elapsed usage on.  Durations are integer base units (ns for voice).  A
    ``rate_unit`` or ``rate_increment`` of 0 means one second, as in CGRateS
    (``RateInterval.GetRateParameters``); ``effective_unit`` and
    ``effective_increment`` hold the values actually used.
    """

    connect_fee: Decimal
    rate: Decimal
    rate_unit: int
    rate_increment: int
    group_interval_start: int
    effective_unit: int = field(init=False, repr=False, compare=False)
    effective_increment: int = field(init=False, repr=False, compare=False)
    #: ``rate`` as integer coefficient and power of ten, for exact integer maths.
    rate_coefficient: int = field(init=False, repr=False, compare=False)
    rate_exponent: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("connect_fee", "rate"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise TariffPlanError(
                    None, None, f"rate slot {name} must be a finite Decimal"
                )
        for name in ("rate_unit", "rate_increment", "group_interval_start"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise TariffPlanError(
                    None, None, f"rate slot {name} must be a non-negative integer"
                )
        object.__setattr__(self, "effective_unit", self.rate_unit or SECOND)
        object.__setattr__(self, "effective_increment", self.rate_increment or SECOND)
        sign, digits, exponent = self.rate.as_tuple()
        coefficient = int("".join(map(str, digits)) or "0")
        object.__setattr__(
            self, "rate_coefficient", -coefficient if sign else coefficient
        )
        object.__setattr__(self, "rate_exponent", exponent)


@dataclass(frozen=True, slots=True)
class Rate:
    """A named group of :class:`RateSlot` (all ``Rates.csv`` rows sharing an id).

    ``slots`` keeps the file order because CGRateS takes the connect fee from the
    *first defined* slot (``GetRateInterval``: ``RateSlots[0].ConnectFee``).
    """

    id: str
    slots: tuple[RateSlot, ...]
    slots_by_start: tuple[RateSlot, ...] = field(init=False, repr=False, compare=False)
    starts: tuple[int, ...] = field(init=False, repr=False, compare=False)
    #: The only slot when there is exactly one and it starts at 0 (fast path).
    flat: RateSlot | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.slots:
            raise TariffPlanError(None, None, f"rate {self.id} has no slots")
        ordered = tuple(sorted(self.slots, key=lambda s: s.group_interval_start))
        object.__setattr__(self, "slots_by_start", ordered)
        object.__setattr__(
            self, "starts", tuple(s.group_interval_start for s in ordered)
        )
        flat = (
            ordered[0]
            if len(ordered) == 1 and ordered[0].group_interval_start == 0
            else None
        )
        object.__setattr__(self, "flat", flat)

    @property
    def connect_fee(self) -> Decimal:
        return self.slots[0].connect_fee

    def slot_at(self, elapsed: int) -> RateSlot | None:
        """The slot with the greatest GroupIntervalStart <= ``elapsed``.

        ``None`` when every slot starts later (CGRateS returns -1 parameters there
        and then computes a meaningless cost; the rater treats that time as free).
        On equal starts the later-defined slot wins, as in ``GetRateParameters``.
        """
        if self.flat is not None:
            return self.flat
        starts = self.starts
        for i in range(len(starts) - 1, -1, -1):
            if starts[i] <= elapsed:
                return self.slots_by_start[i]
        return None

    def next_start_after(self, elapsed: int) -> int | None:
        """The first GroupIntervalStart strictly greater than ``elapsed``."""
        for start in self.starts:
            if start > elapsed:
                return start
        return None


@dataclass(frozen=True, slots=True)
class DestinationRate:
    """One row of ``DestinationRates.csv``: a destination priced by a rate."""

    id: str
    destination_id: str
    rate_id: str
    rounding_method: str = ROUNDING_MIDDLE
    rounding_decimals: int = 4
    max_cost: Decimal = Decimal(0)
    max_cost_strategy: str = ""

    def __post_init__(self) -> None:
        if self.rounding_method not in ROUNDING_METHODS:
            raise TariffPlanError(
                None,
                None,
                f"destination rate {self.id}: unknown rounding method {self.rounding_method!r}",
            )
        if self.max_cost_strategy not in MAX_COST_STRATEGIES:
            raise TariffPlanError(
                None,
                None,
                f"destination rate {self.id}: unknown max cost strategy {self.max_cost_strategy!r}",
            )
        if (
            not isinstance(self.max_cost, Decimal)
            or not self.max_cost.is_finite()
            or self.max_cost < 0
        ):
            raise TariffPlanError(
                None,
                None,
                f"destination rate {self.id}: max cost must be a non-negative Decimal",
            )
        if (
            not isinstance(self.rounding_decimals, int)
            or not 0 <= self.rounding_decimals <= 18
        ):
            raise TariffPlanError(
                None,
                None,
                f"destination rate {self.id}: rounding decimals must be 0..18",
            )


@dataclass(frozen=True, slots=True)
class RatingPlanBinding:
    """One row of ``RatingPlans.csv``: a destination rate in force during a timing."""

    plan_id: str
    destination_rate_id: str
    timing_id: str
    weight: Decimal

    def __post_init__(self) -> None:
        if not isinstance(self.weight, Decimal) or not self.weight.is_finite():
            raise TariffPlanError(
                None, None, f"rating plan {self.plan_id}: weight must be a Decimal"
            )


@dataclass(frozen=True, slots=True)
class RatingProfile:
    """One row of ``RatingProfiles.csv``: which plan a subject uses from when."""

    tenant: str
    category: str
    subject: str
    activation_time: datetime
    rating_plan_id: str
    fallback_subjects: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (
            self.activation_time.tzinfo is None
            or self.activation_time.utcoffset() is None
        ):
            raise TariffPlanError(
                None,
                None,
                f"rating profile {self.tenant}:{self.category}:{self.subject}: activation time must be tz-aware",
            )

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.tenant, self.category, self.subject)


# --------------------------------------------------------------------------- compiled


class _RateInterval:
    """A destination rate bound to a timing with a weight: CGRateS ``RateInterval``.

    Flattened copies of the values the rater reads for every span, so the hot path
    does attribute loads instead of chained lookups.
    """

    __slots__ = (
        "timing",
        "weight",
        "order",
        "plan_id",
        "destination_rate",
        "rate",
        "connect_fee",
        "rounding_method",
        "rounding_decimals",
        "max_cost",
        "max_cost_strategy",
        "timing_id",
        "destination_rate_id",
        "rate_id",
    )

    def __init__(
        self,
        *,
        timing: Timing,
        weight: Decimal,
        order: int,
        plan_id: str,
        destination_rate: DestinationRate,
        rate: Rate,
    ):
        self.timing = timing
        self.weight = weight
        self.order = order
        self.plan_id = plan_id
        self.destination_rate = destination_rate
        self.rate = rate
        self.connect_fee = rate.connect_fee
        self.rounding_method = destination_rate.rounding_method
        self.rounding_decimals = destination_rate.rounding_decimals
        self.max_cost = destination_rate.max_cost
        self.max_cost_strategy = destination_rate.max_cost_strategy
        self.timing_id = timing.id
        self.destination_rate_id = destination_rate.id
        self.rate_id = rate.id

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return (
            f"<RateInterval {self.plan_id}/{self.destination_rate_id}/{self.timing_id}"
            f" w={self.weight}>"
        )


class _Shape:
    """The timing structure of a list of rate intervals, shared between lists.

    Which interval is in force when depends only on the intervals' timings,
    weights and definition order, never on their prices.  A plan with thousands
    of destinations bound through the same few rating-plan rows therefore has a
    handful of shapes, and their per-day timelines are computed once per day for
    all destinations together.
    """

    __slots__ = ("members", "sole_always", "always_in_force", "_cache")

    _CACHE_LIMIT = 4096

    def __init__(self, members: tuple[tuple[Timing, Decimal, int], ...]):
        self.members = members
        self.sole_always = len(members) == 1 and members[0][0].is_always
        # Some member is in force at every instant (e.g. workdays from 00:00 plus
        # weekends from 00:00): then "is a rate in force now?" needs no timeline.
        self.always_in_force = all(
            any(
                timing.start_time == time(0)
                and timing.end_time is None
                and not (timing.years or timing.months or timing.month_days)
                and (not timing.week_days or weekday in timing.week_days)
                for timing, _, _ in members
            )
            for weekday in range(1, 8)
        )
        self._cache: dict[date, tuple[tuple[int, int | None], ...]] = {}

    def schedule(self, day: date) -> tuple[tuple[int, int | None], ...]:
        """``(second_of_day, index_or_None)`` change points of one local day.

        The first point is always second 0; ``None`` means no interval is in force.
        """
        cached = self._cache.get(day)
        if cached is not None:
            return cached
        result = self._compute(day)
        if len(self._cache) >= self._CACHE_LIMIT:
            self._cache.clear()
        self._cache[day] = result
        return result

    def _compute(self, day: date) -> tuple[tuple[int, int | None], ...]:
        todays = [
            (i, timing, weight, order)
            for i, (timing, weight, order) in enumerate(self.members)
            if timing.matches_date(day)
        ]
        points = {0}
        for _, timing, _, _ in todays:
            points.add(timing.start_seconds)
            if timing.end_time is not None:
                points.add(timing.end_seconds)
        timeline: list[tuple[int, int | None]] = []
        for point in sorted(points):
            if point >= _DAY_SECONDS:
                continue
            winner = None
            winner_key = None
            for i, timing, weight, order in todays:
                if timing.start_seconds <= point < timing.end_seconds:
                    # Highest weight, then latest start time, then first defined
                    # (CGRateS RateIntervalTimeSorter / SelectRatingIntevalsForTimespan).
                    key = (weight, timing.start_seconds, -order)
                    if winner_key is None or key > winner_key:
                        winner, winner_key = i, key
            if not timeline or timeline[-1][1] != winner:
                timeline.append((point, winner))
        return tuple(timeline)

    def winner_at(self, day: date, second_of_day: int) -> int | None:
        if self.sole_always:
            return 0
        winner = None
        for start, index in self.schedule(day):
            if start > second_of_day:
                break
            winner = index
        return winner


class _RateIntervalList:
    """All rate intervals a rating plan has for one destination id."""

    __slots__ = ("intervals", "max_weight", "match_weight", "sole", "shape")

    def __init__(self, intervals: Iterable[_RateInterval], shapes: dict):
        self.intervals = tuple(intervals)
        self.max_weight = max(ri.weight for ri in self.intervals)
        # CGRateS RateIntervalList.GetWeight starts from 0, so when destinations
        # sharing a prefix compete, negative weights count as 0.
        self.match_weight = max(self.max_weight, Decimal(0))
        # Only the relative definition order of the list's own intervals breaks ties, so
        # ranks (0, 1, 2 …) instead of plan-wide positions let thousands of destinations
        # bound through alike rows share one shape and its per-day timelines.
        ranks = {order: rank for rank, order in enumerate(sorted(ri.order for ri in self.intervals))}
        members = tuple((ri.timing, ri.weight, ranks[ri.order]) for ri in self.intervals)
        shape = shapes.get(members)
        if shape is None:
            shape = shapes[members] = _Shape(members)
        self.shape = shape
        # Fast path: a single always-on interval (the overwhelmingly common case of
        # a "*any" timing) never needs a timeline.
        self.sole = self.intervals[0] if shape.sole_always else None

    def winner_at(self, day: date, second_of_day: int) -> _RateInterval | None:
        if self.sole is not None:
            return self.sole
        index = self.shape.winner_at(day, second_of_day)
        return None if index is None else self.intervals[index]


class _CompiledPlan:
    """A rating plan ready for destination matching."""

    __slots__ = ("id", "prefix_index", "max_prefix_len", "any_list", "by_destination")

    def __init__(
        self,
        plan_id: str,
        by_destination: dict[str, _RateIntervalList],
        destinations: dict[str, Destination],
    ):
        self.id = plan_id
        self.by_destination = by_destination
        self.any_list = by_destination.get(ANY)
        index: dict[str, list[tuple[str, _RateIntervalList]]] = {}
        # Iterating destinations in load order keeps the CSV order among
        # destinations sharing a prefix: it decides equal-weight ties.
        for dest_id, dest in destinations.items():
            ril = by_destination.get(dest_id)
            if ril is None:
                continue
            for prefix in dest.prefixes:
                bucket = index.setdefault(prefix, [])
                if all(existing != dest_id for existing, _ in bucket):
                    bucket.append((dest_id, ril))
        self.prefix_index = {p: tuple(c) for p, c in index.items()}
        self.max_prefix_len = max((len(p) for p in self.prefix_index), default=0)


class _ProfileActivations:
    """The activations of one (tenant, category, subject), sorted by time."""

    __slots__ = ("profiles", "times_ns")

    def __init__(self, profiles: list[RatingProfile]):
        # Stable sort: among equal activation times the later row wins, because
        # the rater picks the last activation <= the call start.
        self.profiles = tuple(
            sorted(profiles, key=lambda p: _epoch_ns(p.activation_time))
        )
        self.times_ns = [_epoch_ns(p.activation_time) for p in self.profiles]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_ns(moment: datetime) -> int:
    """Exact nanoseconds since the Unix epoch for an aware datetime."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * SECOND + delta.microseconds * 1_000


# --------------------------------------------------------------------------- plan


class TariffPlan:
    """A complete, validated CGRateS tariff plan with its lookup indexes.

    Build it from the model objects (or with :func:`.cgrates_csv.load_directory`).
    Ids are unique per kind except where CGRateS groups rows: ``Destination`` and
    ``Rate`` are already grouped; destination-rate rows sharing an id form one
    destination rate; bindings sharing a plan id form one rating plan.
    """

    def __init__(
        self,
        *,
        destinations: Iterable[Destination] = (),
        timings: Iterable[Timing] = (),
        rates: Iterable[Rate] = (),
        destination_rates: Iterable[DestinationRate] = (),
        rating_plan_bindings: Iterable[RatingPlanBinding] = (),
        rating_profiles: Iterable[RatingProfile] = (),
    ):
        self.destinations: dict[str, Destination] = _unique(destinations, "destination")
        timing_map = _unique(timings, "timing")
        timing_map.setdefault(ANY, ALWAYS_TIMING)
        self.timings: dict[str, Timing] = timing_map
        self.rates: dict[str, Rate] = _unique(rates, "rate")
        self.destination_rates: tuple[DestinationRate, ...] = tuple(destination_rates)
        self.rating_plan_bindings: tuple[RatingPlanBinding, ...] = tuple(
            rating_plan_bindings
        )
        self.rating_profiles: tuple[RatingProfile, ...] = tuple(rating_profiles)

        dr_groups: dict[str, list[DestinationRate]] = {}
        for dr in self.destination_rates:
            if dr.destination_id != ANY and dr.destination_id not in self.destinations:
                raise TariffPlanError(
                    None,
                    None,
                    f"destination rate {dr.id} references unknown destination {dr.destination_id}",
                )
            if dr.rate_id not in self.rates:
                raise TariffPlanError(
                    None,
                    None,
                    f"destination rate {dr.id} references unknown rate {dr.rate_id}",
                )
            dr_groups.setdefault(dr.id, []).append(dr)

        plan_lists: dict[str, dict[str, list[_RateInterval]]] = {}
        for order, binding in enumerate(self.rating_plan_bindings):
            rows = dr_groups.get(binding.destination_rate_id)
            if rows is None:
                raise TariffPlanError(
                    None,
                    None,
                    f"rating plan {binding.plan_id} references unknown destination rate {binding.destination_rate_id}",
                )
            timing = self.timings.get(binding.timing_id)
            if timing is None:
                raise TariffPlanError(
                    None,
                    None,
                    f"rating plan {binding.plan_id} references unknown timing {binding.timing_id}",
                )
            per_dest = plan_lists.setdefault(binding.plan_id, {})
            for row in rows:
                per_dest.setdefault(row.destination_id, []).append(
                    _RateInterval(
                        timing=timing,
                        weight=binding.weight,
                        order=order,
                        plan_id=binding.plan_id,
                        destination_rate=row,
                        rate=self.rates[row.rate_id],
                    )
                )
        shapes: dict = {}
        self._plans: dict[str, _CompiledPlan] = {
            plan_id: _CompiledPlan(
                plan_id,
                {
                    dest: _RateIntervalList(ris, shapes)
                    for dest, ris in per_dest.items()
                },
                self.destinations,
            )
            for plan_id, per_dest in plan_lists.items()
        }

        grouped: dict[tuple[str, str, str], list[RatingProfile]] = {}
        for profile in self.rating_profiles:
            if profile.rating_plan_id not in self._plans:
                raise TariffPlanError(
                    None,
                    None,
                    f"rating profile {profile.tenant}:{profile.category}:{profile.subject} "
                    f"references unknown rating plan {profile.rating_plan_id}",
                )
            grouped.setdefault(profile.key, []).append(profile)
        self._profiles: dict[tuple[str, str, str], _ProfileActivations] = {
            key: _ProfileActivations(profiles) for key, profiles in grouped.items()
        }

        reverse: dict[str, list[str]] = {}
        for dest in self.destinations.values():
            for prefix in dest.prefixes:
                ids = reverse.setdefault(prefix, [])
                if dest.id not in ids:
                    ids.append(dest.id)
        self._reverse = {p: tuple(ids) for p, ids in reverse.items()}
        self._max_prefix_len = max((len(p) for p in self._reverse), default=0)

    # ----------------------------------------------------------------- queries

    @property
    def rating_plan_ids(self) -> tuple[str, ...]:
        return tuple(self._plans)

    def has_rating_plan(self, plan_id: str) -> bool:
        return plan_id in self._plans

    def profiles_for(
        self, tenant: str, category: str, subject: str
    ) -> tuple[RatingProfile, ...]:
        """Activations of one rating subject, oldest first (empty if none)."""
        found = self._profiles.get((tenant, category, subject))
        return found.profiles if found else ()

    def destination_ids_for(self, number: str) -> tuple[tuple[str, str], ...]:
        """``(prefix, destination id)`` pairs matching ``number``, longest prefix first.

        Independent of any rating plan; handy for diagnostics and for the UI.
        """
        out: list[tuple[str, str]] = []
        reverse = self._reverse
        for k in range(min(len(number), self._max_prefix_len), 0, -1):
            prefix = number[:k]
            for dest_id in reverse.get(prefix, ()):
                out.append((prefix, dest_id))
        return tuple(out)

    def __repr__(self) -> str:
        return (
            f"<TariffPlan destinations={len(self.destinations)} timings={len(self.timings)}"
            f" rates={len(self.rates)} rating_plans={len(self._plans)}"
            f" profiles={len(self.rating_profiles)}>"
        )


def _unique(items: Iterable, kind: str) -> dict:
    out: dict = {}
    for item in items:
        if item.id in out:
            raise TariffPlanError(None, None, f"duplicate {kind} id {item.id}")
        out[item.id] = item
    return out
