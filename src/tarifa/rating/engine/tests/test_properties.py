"""Property tests: invariants of the rater over random tariff plans and calls.

The plans are random but always rate every instant (a ``*any`` binding sits under
the random timings), have non-negative prices, and price each increment at an
amount with at most 4 decimals.  That last condition matters: CGRateS rounds the
span cost and then each increment's share of it to the engine decimals, and when
an increment is worth less than that precision a longer call can come out
*cheaper* (see ``test_double_rounding_is_not_monotonic_like_cgrates`` in
test_rater.py).  With exact per-increment prices the double rounding is a no-op and
cost is a non-decreasing function of usage, which is what we check.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tarifa.rating.engine import (
    ANY,
    HOUR,
    SECOND,
    Destination,
    DestinationRate,
    Rate,
    RateSlot,
    RatingPlanBinding,
    RatingProfile,
    TariffPlan,
    Timing,
    rate,
)

ZONES = [UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")]
INCREMENTS = [1 * SECOND, 5 * SECOND, 6 * SECOND, 10 * SECOND, 30 * SECOND, 60 * SECOND]
GROUP_STARTS = [30 * SECOND, 60 * SECOND, 90 * SECOND, 120 * SECOND, 300 * SECOND]

PROPERTY_SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def money(max_units: int, places: int):
    """Non-negative Decimals with ``places`` decimals."""
    return st.integers(0, max_units).map(lambda n: Decimal(n).scaleb(-places))


@st.composite
def rate_slots(draw):
    """1-3 slots, the first at 0; each increment costs an exact 4-decimal amount."""
    starts = [0] + sorted(draw(st.sets(st.sampled_from(GROUP_STARTS), max_size=2)))
    slots = []
    for i, start in enumerate(starts):
        increment = draw(st.sampled_from(INCREMENTS))
        per_unit = draw(st.sampled_from([1, 2, 3, 10, 60]))  # increments per rate unit
        price = draw(money(20_000, 4))  # per increment
        connect_fee = draw(money(100, 2)) if i == 0 else Decimal(0)
        slots.append(
            RateSlot(
                connect_fee, price * per_unit, increment * per_unit, increment, start
            )
        )
    return tuple(slots)


@st.composite
def plans(draw):
    """A random plan, the cap shared by all destination rates (if any)."""
    cap = draw(st.one_of(st.none(), money(5_000, 2)))
    strategy = draw(st.sampled_from(["*free", "*disconnect"])) if cap else ""
    rates, drs, bindings, timings = [], [], [], []
    count = draw(st.integers(1, 3))
    for i in range(count):
        rates.append(Rate(f"R{i}", draw(rate_slots())))
        drs.append(
            DestinationRate(
                f"DR{i}",
                "D",
                f"R{i}",
                draw(st.sampled_from(["*up", "*middle", "*down"])),
                draw(st.integers(2, 4)),
                cap or Decimal(0),
                strategy,
            )
        )
    # DR0 is always in force; the others apply on random days from random times.
    bindings.append(
        RatingPlanBinding("P", "DR0", ANY, Decimal(draw(st.integers(0, 20))))
    )
    for i in range(1, count):
        timings.append(
            Timing(
                f"T{i}",
                week_days=frozenset(draw(st.sets(st.integers(1, 7), max_size=7))),
                start_time=time(
                    draw(st.integers(0, 23)), draw(st.sampled_from([0, 30])), 0
                ),
            )
        )
        bindings.append(
            RatingPlanBinding("P", f"DR{i}", f"T{i}", Decimal(draw(st.integers(0, 20))))
        )
    profiles = [RatingProfile("t", "call", ANY, datetime(2000, 1, 1, tzinfo=UTC), "P")]
    if draw(st.booleans()):
        # A second activation of the same plan mid-range exercises activation splits.
        profiles.append(
            RatingProfile(
                "t",
                "call",
                ANY,
                draw(
                    st.datetimes(
                        datetime(2020, 1, 1),
                        datetime(2030, 1, 1),
                        timezones=st.just(UTC),
                    )
                ),
                "P",
            )
        )
    return TariffPlan(
        destinations=[Destination("D", ("1", "12"))],
        timings=timings,
        rates=rates,
        destination_rates=drs,
        rating_plan_bindings=bindings,
        rating_profiles=profiles,
    )


answer_times = st.datetimes(
    datetime(2020, 1, 1),
    datetime(2030, 1, 1),
    timezones=st.sampled_from(ZONES),
    allow_imaginary=False,
)
usages = st.integers(0, 3 * HOUR)
usage_types = st.sampled_from(["voice", "*voice", "data", "sms"])
engine_decimals = st.integers(4, 6)


def _rate(plan, answer_time, usage, usage_type="voice", rounding_decimals=5):
    return rate(
        plan,
        tenant="t",
        category="call",
        subject="someone",
        destination="12345",
        answer_time=answer_time,
        usage=usage,
        usage_type=usage_type,
        rounding_decimals=rounding_decimals,
    )


@PROPERTY_SETTINGS
@given(plans(), answer_times, usages, usages, usage_types, engine_decimals)
def test_cost_never_decreases_with_usage(plan, answer_time, a, b, usage_type, grd):
    short, long = sorted((a, b))
    assert (
        _rate(plan, answer_time, short, usage_type, grd).cost
        <= _rate(plan, answer_time, long, usage_type, grd).cost
    )


@PROPERTY_SETTINGS
@given(plans(), answer_times, usages, usage_types)
def test_cost_is_never_negative(plan, answer_time, usage, usage_type):
    cost = _rate(plan, answer_time, usage, usage_type)
    assert cost.cost >= 0 and cost.unrounded_cost >= 0
    assert all(span.cost >= 0 for span in cost.spans)


@PROPERTY_SETTINGS
@given(plans(), answer_times, usages, usage_types)
def test_splitting_never_loses_time(plan, answer_time, usage, usage_type):
    cost = _rate(plan, answer_time, usage, usage_type)
    assert sum(span.usage for span in cost.spans) == usage
    if usage == 0:
        return
    spans = cost.spans
    answer_ns = _ns(answer_time)
    assert spans[0].start_ns == answer_ns and spans[0].elapsed == 0
    assert all(a.end_ns == b.start_ns for a, b in zip(spans, spans[1:], strict=False))
    assert cost.rated_usage == sum(span.rated_usage for span in spans) >= usage
    for span in spans:
        assert span.rated_usage > 0
        assert span.elapsed == span.start_ns - answer_ns
        if span.slot is not None:
            # Every span is a whole number of its increments.
            assert span.rated_usage % span.slot.effective_increment == 0
    # Only the last span may reach past the end of the real usage, by less than
    # one of its increments.
    overshoot = cost.rated_usage - usage
    assert overshoot < spans[-1].slot.effective_increment


@PROPERTY_SETTINGS
@given(plans(), answer_times, usages)
def test_non_voice_is_one_interval(plan, answer_time, usage):
    """Data is never split by time of day: every span has the interval in force at
    the answer time (it can still split at group interval starts)."""
    cost = _rate(plan, answer_time, usage, "data")
    assert len({(s.timing_id, s.rating_plan_id) for s in cost.spans}) <= 1


@PROPERTY_SETTINGS
@given(plans(), answer_times, usages)
def test_free_cap_is_respected(plan, answer_time, usage):
    cost = _rate(plan, answer_time, usage)
    cap = plan.destination_rates[0].max_cost
    if plan.destination_rates[0].max_cost_strategy == "*free" and cap > 0:
        assert cost.cost <= cap


@PROPERTY_SETTINGS
@given(plans(), answer_times, usages)
def test_disconnect_point_is_within_usage(plan, answer_time, usage):
    cost = _rate(plan, answer_time, usage)
    if cost.max_usage is not None:
        assert cost.max_cost_disconnect and 0 <= cost.max_usage < usage
        assert plan.destination_rates[0].max_cost_strategy == "*disconnect"


def _ns(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * SECOND + delta.microseconds * 1000


def test_helper_matches_engine_epoch():
    moment = datetime(2024, 2, 29, 12, 0, 0, 123456, tzinfo=ZoneInfo("Europe/Berlin"))
    assert _ns(moment) == int(moment.timestamp()) * SECOND + 123456000
    assert _ns(moment + timedelta(0)) == _ns(moment)
