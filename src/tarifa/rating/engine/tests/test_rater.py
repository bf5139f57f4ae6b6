"""Rating semantics, checked against CGRateS's own expected costs and by hand.

Where a number comes from a CGRateS test, the docstring names it (tests live in
``engine/calldesc_test.go``, ``engine/ratingprofile_test.go`` and
``general_tests/*_test.go`` of cgrates/cgrates, v0.10/v0.11).  CGRateS's unit tests
run with ``globalRoundingDecimals = 6``, hence :func:`rate6`; the other tests use
the engine default of 5 (CGRateS's shipped ``rounding_decimals``).

Durations are integer nanoseconds for voice (``SECOND`` = 10**9), units otherwise.
"""

from __future__ import annotations

from datetime import time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tarifa.rating.engine import (
    ANY,
    MINUTE,
    SECOND,
    Destination,
    DestinationRate,
    Rate,
    RateSlot,
    RatingError,
    RatingPlanBinding,
    RatingProfile,
    TariffPlan,
    TariffPlanError,
    Timing,
    load_directory,
    rate,
    round_cost,
)

from . import at, needs_interop, rate6, sample_plan, write_plan

D = Decimal


def engine_unit():
    return sample_plan("engine_unit")


# =========================================================================== CGRateS
# engine/calldesc_test.go & friends, against the engine_unit plan (which is the
# CSV that engine/loader_csv_test.go loads for those tests).


@needs_interop
class TestCGRatesEngineUnit:
    def test_get_cost(self):
        """TestGetCost: vdf/rif to 0256, Thu 2012-02-02 17:30-18:30 costs 2701,
        connect fee 1.

        Plan EVENING: NAT (0256) is R4 (1 per second, connect fee 1) on workdays
        from 00:00 and R5 (0.5 per second) from 18:00.  1800 s x 1 + 1800 s x 0.5
        + 1 = 2701, in two spans split at 18:00.
        """
        cost = rate6(
            engine_unit(),
            tenant="vdf",
            category="0",
            subject="rif",
            destination="0256",
            answer_time=at(2012, 2, 2, 17, 30),
            usage=timedelta(hours=1),
        )
        assert cost.cost == D("2701")
        assert cost.connect_fee == D("1")
        assert [s.timing_id for s in cost.spans] == ["WORKDAYS_00", "WORKDAYS_18"]
        assert [s.rate_id for s in cost.spans] == ["R4", "R5"]
        assert cost.spans[1].start == at(2012, 2, 2, 18, 0)
        assert (
            cost.spans[0].destination_id == "NAT"
            and cost.spans[0].matched_prefix == "0256"
        )

    def test_get_cost_rounding_double_rounding(self):
        """TestGetCostRounding (0.3001, "should be 0.3 :(") and TestDebitRounding
        (0.30006 before the final rounding).

        Subject "round" -> DEFAULT -> ALL (49) -> R2: 0.1 per 60 s in 1 s steps,
        *middle 4.  GetCost: 180 s x 0.1 / 60 = 0.3.  createIncrementsSlice: 0.3 /
        180 = 0.0016666.. rounded to 6 decimals = 0.001667, x 180 = 0.30006; rounded
        *middle to 4 decimals = 0.3001.
        """
        cost = rate6(
            engine_unit(),
            tenant="cgrates.org",
            category="call",
            subject="round",
            destination="49",
            answer_time=at(2017, 2, 2, 17, 30),
            usage=3 * MINUTE,
        )
        assert cost.unrounded_cost == D("0.30006")
        assert cost.cost == D("0.3001")
        assert cost.connect_fee == 0
        (increment,) = cost.spans[0].increments
        assert (increment.count, increment.duration, increment.cost) == (
            180,
            SECOND,
            D("0.001667"),
        )

    def test_get_cost_rounding_with_five_engine_decimals(self):
        """Same call with CGRateS's shipped rounding_decimals = 5: 0.3/180 rounds to
        0.00167, x 180 = 0.3006 -> 0.3006 (hand-derived)."""
        cost = rate(
            engine_unit(),
            tenant="cgrates.org",
            category="call",
            subject="round",
            destination="49",
            answer_time=at(2017, 2, 2, 17, 30),
            usage=3 * MINUTE,
        )
        assert cost.unrounded_cost == D("0.3006")
        assert cost.cost == D("0.3006")

    def test_get_cost_zero(self):
        """TestGetCostZero and TestCosts1GetCostZeroDuration: zero usage costs 0 and
        no connect fee is charged."""
        cost = rate6(
            engine_unit(),
            tenant="vdf",
            category="0",
            subject="rif",
            destination="0256",
            answer_time=at(2012, 2, 2, 17, 30),
            usage=0,
        )
        assert cost.cost == 0 and cost.connect_fee == 0 and cost.rated_usage == 0

    def test_zero_usage_keeps_rating_info(self):
        """TestGetCostRatingInfoOnZeroTime: the zero-length span still names the
        matched destination RET, prefix 0723, plan DY_PLAN and subject dy."""
        cost = rate6(
            engine_unit(),
            tenant="cgrates.org",
            category="call",
            subject="dy",
            destination="0723123113",
            answer_time=at(2015, 10, 26, 13, 29, 27),
            usage=0,
        )
        (span,) = cost.spans
        assert (
            span.destination_id,
            span.matched_prefix,
            span.rating_plan_id,
            span.matched_subject,
        ) == (
            "RET",
            "0723",
            "DY_PLAN",
            "dy",
        )

    def test_get_cost_timespans_group_interval(self):
        """TestGetCostTimespans: test/trp to 0256, 85 s costs 85 in 2 timespans.

        TDRT -> T1 -> LANDLINE_OFFPEAK: 1 per s in one 60 s increment for the first
        minute, then 1 per s in 1 s increments.  60 + 25 = 85.
        """
        cost = rate6(
            engine_unit(),
            tenant="test",
            category="0",
            subject="trp",
            destination="0256",
            answer_time=at(2013, 10, 8, 9, 23, 2),
            usage=85 * SECOND,
        )
        assert cost.cost == D("85")
        assert len(cost.spans) == 2
        assert [s.slot.group_interval_start for s in cost.spans] == [0, 60 * SECOND]
        assert [s.elapsed for s in cost.spans] == [0, 60 * SECOND]

    def test_get_cost_rate_groups(self):
        """TestGetCostRateGroups (132) and TestSplitSpansRoundToIncrements (2
        timespans whose durations add up to 132 s)."""
        cost = rate6(
            engine_unit(),
            tenant="test",
            category="0",
            subject="trp",
            destination="0256",
            answer_time=at(2013, 10, 7, 14, 50),
            usage=132 * SECOND,
        )
        assert cost.cost == D("132")
        assert len(cost.spans) == 2
        assert sum(s.rated_usage for s in cost.spans) == 132 * SECOND

    def test_full_destination_not_found_uses_longest_prefix(self):
        """TestFullDestNotFound: 0256308200 is rated by its prefix 0256 -> 2701."""
        cost = rate6(
            engine_unit(),
            tenant="vdf",
            category="0",
            subject="rif",
            destination="0256308200",
            answer_time=at(2012, 2, 2, 17, 30),
            usage=timedelta(hours=1),
        )
        assert cost.cost == D("2701") and cost.connect_fee == 1
        assert cost.spans[0].matched_prefix == "0256"

    def test_subject_not_found_uses_any_subject(self):
        """TestSubjectNotFound: an unknown subject of vdf/0 is rated by the
        vdf/0/*any profile (EVENING) -> 2701 on Friday 2013-02-01 17:30-18:30."""
        cost = rate6(
            engine_unit(),
            tenant="vdf",
            category="0",
            subject="not_exiting",
            destination="025740532",
            answer_time=at(2013, 2, 1, 17, 30),
            usage=timedelta(hours=1),
        )
        assert cost.cost == D("2701") and cost.connect_fee == 1
        assert cost.spans[0].matched_subject == ANY

    def test_subject_not_found_without_any_profile(self):
        """TestSubjectNotFoundCostNegativeOne: cgrates.org/0 has neither the subject
        nor *any: CGRateS answers cost -1 with ErrRatingPlanNotFound."""
        with pytest.raises(RatingError) as info:
            rate6(
                engine_unit(),
                tenant="cgrates.org",
                category="0",
                subject="not_exiting",
                destination="025740532",
                answer_time=at(2013, 2, 1, 17, 30),
                usage=timedelta(hours=1),
            )
        assert info.value.code == "RATING_PLAN_NOT_FOUND"

    def test_multiple_rating_plans(self):
        """TestMultipleRatingPlans: Wed 2012-02-08 17:30-18:30 to 0257308200 -> 2701."""
        cost = rate6(
            engine_unit(),
            tenant="vdf",
            category="0",
            subject="rif",
            destination="0257308200",
            answer_time=at(2012, 2, 8, 17, 30),
            usage=timedelta(hours=1),
        )
        assert cost.cost == D("2701") and cost.connect_fee == 1

    def test_spans_across_midnight(self):
        """TestSpansMultipleRatingPlans: Tue 23:50 -> Wed 00:30 costs 2100 with no
        connect fee: 600 s x 0.5 (R5 after 18:00) + 1800 s x 1 (R4 after midnight);
        the connect fee comes from the *first* span's rate (R5: 0)."""
        cost = rate6(
            engine_unit(),
            tenant="vdf",
            category="0",
            subject="rif",
            destination="0257308200",
            answer_time=at(2012, 2, 7, 23, 50),
            usage=40 * MINUTE,
        )
        assert cost.cost == D("2100") and cost.connect_fee == 0
        assert [s.start for s in cost.spans] == [at(2012, 2, 7, 23, 50), at(2012, 2, 8)]

    def test_less_than_a_minute(self):
        """TestLessThanAMinute: 30 s at 0.5 per s -> 15."""
        cost = rate6(
            engine_unit(),
            tenant="vdf",
            category="0",
            subject="rif",
            destination="0257308200",
            answer_time=at(2012, 2, 8, 23, 50),
            usage=30 * SECOND,
        )
        assert cost.cost == D("15")

    def test_unique_price_longer_prefix_outside_plan(self):
        """TestUniquePrice: 0723045326 for 1 h 0 min 21 s at 0.5 -> 1810.5.

        The longer prefix 0723045 (destination SPEC) exists but is not in plan
        EVENING, so the lookup goes on to the shorter prefix 0723 (NAT).
        """
        cost = rate6(
            engine_unit(),
            tenant="vdf",
            category="0",
            subject="rif",
            destination="0723045326",
            answer_time=at(2012, 2, 8, 22, 50),
            usage=3621 * SECOND,
        )
        assert cost.cost == D("1810.5")
        assert cost.spans[0].matched_prefix == "0723"

    def test_minutes_cost(self):
        """TestMinutesCost: 110 s at 0.5 -> 55."""
        cost = rate6(
            engine_unit(),
            tenant="vdf",
            category="0",
            subject="rif",
            destination="0723",
            answer_time=at(2012, 2, 8, 22, 50),
            usage=110 * SECOND,
        )
        assert cost.cost == D("55")

    def test_max_cost_disconnect_does_not_cap(self):
        """TestGetCostWithMaxCost (1800, not capped) and TestMaxSessionTimeWithMaxCost
        (10 s): MX_DISC is 1 per second with MaxCost 10 *disconnect."""
        cost = rate6(
            engine_unit(),
            tenant="cgrates.org",
            category="call",
            subject="max",
            destination="0723123113",
            answer_time=at(2015, 3, 23, 6, 0),
            usage=30 * MINUTE,
        )
        assert cost.cost == D("1800")
        assert not cost.max_cost_applied
        assert cost.max_cost_disconnect and cost.max_usage == 10 * SECOND

    def test_max_cost_free_caps(self):
        """TestGetCostWithMaxCostFree (10) and TestMaxSessionTimeWithMaxCostFree (no
        limit): after 18:00 the same call uses MX_FREE, MaxCost 10 *free."""
        cost = rate6(
            engine_unit(),
            tenant="cgrates.org",
            category="call",
            subject="max",
            destination="0723123113",
            answer_time=at(2015, 3, 23, 19, 0),
            usage=30 * MINUTE,
        )
        assert cost.cost == D("10")
        assert cost.max_cost_applied
        assert not cost.max_cost_disconnect and cost.max_usage is None

    def test_get_cost_rounding_issue(self):
        """TestGetCostRoundingIssue: DY = 0.15 connect fee + 0.05 per 60 s in 1 s
        increments, *up 2; 24 s -> 0.17.

        24 x 0.05 / 60 = 0.02; per increment 0.02 / 24 = 0.000833 (6 decimals);
        x 24 = 0.019992; + 0.15 = 0.169992 -> *up 2 = 0.17.
        """
        cost = rate6(
            engine_unit(),
            tenant="cgrates.org",
            category="call",
            subject="dy",
            destination="0723123113",
            answer_time=at(2015, 10, 26, 13, 29, 27),
            usage=24 * SECOND,
        )
        assert cost.unrounded_cost == D("0.169992")
        assert cost.cost == D("0.17")

    def test_unknown_destination(self):
        """TestMaxDebitUnknowDest: 9999999999 is not in DY_PLAN ->
        ErrUnauthorizedDestination."""
        with pytest.raises(RatingError) as info:
            rate6(
                engine_unit(),
                tenant="cgrates.org",
                category="call",
                subject="dy",
                destination="9999999999",
                answer_time=at(2015, 10, 26, 13, 29, 27),
                usage=2 * SECOND,
            )
        assert info.value.code == "UNAUTHORIZED_DESTINATION"

    def test_data_any_destination(self):
        """TestCDGetCostANY: data to *any, 1 s worth of units (10**9), rated by
        LANDLINE_OFFPEAK (1 per 1 s unit in 60 s increments) -> 60."""
        cost = rate6(
            engine_unit(),
            tenant="cgrates.org",
            category="data",
            subject="rif",
            destination=ANY,
            answer_time=at(2014, 3, 4, 6, 0),
            usage=SECOND,
            usage_type="*data",
        )
        assert cost.cost == D("60")
        assert cost.spans[0].destination_id == ANY

    def test_data_split_in_group_intervals(self):
        """TestCDDataGetCost (65) and TestCDSplitInDataSlots (2 spans): data is not
        split by time, but is split at GroupIntervalStart (60 s worth of units)."""
        cost = rate6(
            engine_unit(),
            tenant="cgrates.org",
            category="data",
            subject="rif",
            destination=ANY,
            answer_time=at(2014, 3, 4, 6, 0),
            usage=65 * SECOND,
            usage_type="data",
        )
        assert cost.cost == D("65")
        assert len(cost.spans) == 2

    def test_activation_and_timing_splits(self):
        """TestGetCostRatingPlansAndRatingIntervals: CUSTOMER_1/rif:from:tm to 49178,
        Mon 2012-02-27 23:50 -> Tue 18:10, gives 3 contiguous timespans.

        PREMIUM is active until 2012-02-28 00:00, then STANDARD: spans are
        [23:50, 00:00) PREMIUM after 18:00, [00:00, 18:00) and [18:00, 18:10)
        STANDARD.  Hand-derived cost: 600 s x 0.1/60 (R2, 0.001667 each = 1.0002)
        + 64800 s x 0.2/60 (R1, 0.003333 each = 215.9784) + 600 s of R2 (1.0002)
        = 217.9788.
        """
        start = at(2012, 2, 27, 23, 50)
        cost = rate6(
            engine_unit(),
            tenant="CUSTOMER_1",
            category="0",
            subject="rif:from:tm",
            destination="49178",
            answer_time=start,
            usage=at(2012, 2, 28, 18, 10) - start,
        )
        assert [s.rating_plan_id for s in cost.spans] == [
            "PREMIUM",
            "STANDARD",
            "STANDARD",
        ]
        assert all(
            a.end == b.start for a, b in zip(cost.spans, cost.spans[1:], strict=False)
        )
        assert cost.cost == D("217.9788")

    def test_activation_and_timing_splits_more(self):
        """TestGetCostRatingPlansAndRatingIntervalsMore: from Mon 09:50 -> 4 spans."""
        start = at(2012, 2, 27, 9, 50)
        cost = rate6(
            engine_unit(),
            tenant="CUSTOMER_1",
            category="0",
            subject="rif:from:tm",
            destination="49178",
            answer_time=start,
            usage=at(2012, 2, 28, 18, 10) - start,
        )
        assert len(cost.spans) == 4
        assert all(
            a.end == b.start for a, b in zip(cost.spans, cost.spans[1:], strict=False)
        )

    def test_multi_day_splits(self):
        """TestGetCostRatingPlansAndRatingIntervalsMoreDays: Mon 09:50 -> Thu 18:10
        gives 8 timespans (each workday splits at 18:00 and at midnight)."""
        start = at(2012, 2, 20, 9, 50)
        cost = rate6(
            engine_unit(),
            tenant="CUSTOMER_1",
            category="0",
            subject="rif:from:tm",
            destination="49178",
            answer_time=start,
            usage=at(2012, 2, 23, 18, 10) - start,
        )
        assert len(cost.spans) == 8

    def test_multi_day_splits_weekend(self):
        """TestGetCostRatingPlansAndRatingIntervalsMoreDaysWeekend expects 5
        timespans for Fri 09:50 -> Mon 18:10 *after* CGRateS's Compress(), which
        merges the identical Saturday and Sunday spans.  We report the 6 spans
        before that cosmetic merge: Fri <18:00, Fri >=18:00, Sat, Sun, Mon <18:00,
        Mon >=18:00; Saturday and Sunday are priced identically."""
        start = at(2012, 2, 24, 9, 50)
        cost = rate6(
            engine_unit(),
            tenant="CUSTOMER_1",
            category="0",
            subject="rif:from:tm",
            destination="49178",
            answer_time=start,
            usage=at(2012, 2, 27, 18, 10) - start,
        )
        assert len(cost.spans) == 6
        sat, sun = cost.spans[2], cost.spans[3]
        assert (sat.timing_id, sun.timing_id) == ("WEEKENDS", "WEEKENDS")
        assert sat.cost == sun.cost

    def test_fallback_subject_chain(self):
        """TestGetRatingProfileForPrefix: vdf/fallback1 (plan G, activations at
        13:45, 13:46, 13:47) has no rate for 0256098, so each of its 3 rating
        infos falls back to fallback2 (plan R -> NAT -> R4).  Hand-derived cost:
        149 s x 1 + connect fee 1 = 150."""
        cost = rate6(
            engine_unit(),
            tenant="vdf",
            category="0",
            subject="fallback1",
            destination="0256098",
            answer_time=at(2013, 11, 18, 13, 45, 1),
            usage=149 * SECOND,
        )
        assert len(cost.spans) == 3
        assert {s.matched_subject for s in cost.spans} == {"fallback2"}
        assert {s.rating_plan_id for s in cost.spans} == {"R"}
        assert cost.cost == D("150")

    def test_fallback_first_part_before_activation(self):
        """TestGetRatingProfileForPrefixFirstEmpty: starting at 13:44:01, before the
        first activation of fallback1, gives 4 rating infos: the first minute is
        rated by the *any subject (EVENING), the rest by fallback2.  Cost 209 + 1."""
        cost = rate6(
            engine_unit(),
            tenant="vdf",
            category="0",
            subject="fallback1",
            destination="0256098",
            answer_time=at(2013, 11, 18, 13, 44, 1),
            usage=209 * SECOND,
        )
        assert [s.matched_subject for s in cost.spans] == [
            ANY,
            "fallback2",
            "fallback2",
            "fallback2",
        ]
        assert [s.rating_plan_id for s in cost.spans] == ["EVENING", "R", "R", "R"]
        assert cost.cost == D("210")

    def test_no_rating_profile_uses_any(self):
        """TestGetRatingProfileNotFound: vdf/no_rating_profile gets one rating info
        from vdf/0/*any.  Hand-derived: Tue 22:05, 90 s at R5 0.5 -> 45."""
        cost = rate6(
            engine_unit(),
            tenant="vdf",
            category="0",
            subject="no_rating_profile",
            destination="0256098",
            answer_time=at(2015, 8, 18, 22, 5),
            usage=90 * SECOND,
        )
        assert cost.cost == D("45") and cost.spans[0].matched_subject == ANY

    def test_profile_found_but_no_destination_does_not_use_any(self):
        """TestGetRatingProfileFoundButNoDestination: cgrates.org/call/nt exists
        (GER_ONLY) without a rate for 447956.  CGRateS does *not* try the *any
        subject then (whose RP_UK would match): unauthorized."""
        with pytest.raises(RatingError) as info:
            rate6(
                engine_unit(),
                tenant="cgrates.org",
                category="call",
                subject="nt",
                destination="447956",
                answer_time=at(2015, 8, 18, 22, 5),
                usage=90 * SECOND,
            )
        assert info.value.code == "UNAUTHORIZED_DESTINATION"

    def test_self_referencing_fallback_terminates(self):
        """vdf/inf falls back to itself: the recursion stops after
        RECURSION_MAX_DEPTH (3) levels with unauthorized destination."""
        with pytest.raises(RatingError) as info:
            rate6(
                engine_unit(),
                tenant="vdf",
                category="0",
                subject="inf",
                destination="0256",
                answer_time=at(2013, 10, 21, 18, 34),
                usage=MINUTE,
            )
        assert info.value.code == "UNAUTHORIZED_DESTINATION"

    def test_fallback_to_another_plan(self):
        """vdf/fall (PREMIUM has no NAT) falls back to rif (EVENING): Monday 18:34,
        60 s at R5 0.5 -> 30 (hand-derived)."""
        cost = rate6(
            engine_unit(),
            tenant="vdf",
            category="0",
            subject="fall",
            destination="0256",
            answer_time=at(2013, 10, 21, 18, 34),
            usage=MINUTE,
        )
        assert cost.cost == D("30") and cost.spans[0].matched_subject == "rif"

    def test_weight_picks_urgent_destination(self):
        """STANDARD binds RT_URG (weight 20, *any timing) for 112: free."""
        cost = rate6(
            engine_unit(),
            tenant="vdf",
            category="0",
            subject="one",
            destination="112",
            answer_time=at(2013, 10, 21, 18, 34),
            usage=MINUTE,
        )
        assert cost.cost == 0 and cost.spans[0].destination_rate_id == "RT_URG"

    def test_zero_rate_with_connect_fee(self):
        """RT_UK_Mobile_BIG5_PKG is 0 per 20 s with a 0.01 connect fee: a minute
        costs just the connect fee (hand-derived); the minute is 3 increments."""
        cost = rate6(
            engine_unit(),
            tenant="cgrates.org",
            category="call",
            subject="discounted_minutes",
            destination="447956",
            answer_time=at(2014, 3, 4, 6, 0),
            usage=MINUTE,
        )
        assert cost.cost == D("0.01")
        assert [(i.count, i.duration) for i in cost.spans[0].increments] == [
            (1, 0),
            (3, 20 * SECOND),
        ]


# =========================================================================== general_tests


@needs_interop
def test_costs1_get_cost():
    """general_tests/costs1_test.go TestCosts1GetCost1: +4986517174963 (GERMANY,
    1 per second) for 90 s -> 90."""
    cost = rate(
        sample_plan("costs1"),
        tenant="cgrates.org",
        category="call",
        subject="1001",
        destination="+4986517174963",
        answer_time=at(2013, 8, 7, 17, 30),
        usage=90 * SECOND,
    )
    assert cost.cost == D("90")


@pytest.fixture
def datachrg1(tmp_path):
    """The plan of general_tests/datachrg1_test.go (written inline there)."""
    return load_directory(
        write_plan(
            tmp_path,
            Timings="TM1,*any,*any,*any,*any,00:00:00\nTM2,*any,*any,*any,*any,01:00:00",
            Destinations="",
            Rates="RT_DATA_2c,0,0.002,10s,10s,0\nRT_DATA_1c,0,0.001,10,10,0",
            DestinationRates="DR_DATA_1,*any,RT_DATA_2c,*up,4,0,\nDR_DATA_2,*any,RT_DATA_1c,*up,4,0,",
            RatingPlans="RP_DATA1,DR_DATA_1,TM1,10\nRP_DATA1,DR_DATA_2,TM2,10",
            RatingProfiles="cgrates.org,data,*any,2012-01-01T00:00:00Z,RP_DATA1,",
        )
    )


def test_datachrg1_first_interval(datachrg1):
    """TestGetDataCostDtChrg1: 20 s worth of units at 00:00 -> TM1, 0.002 per 10 s
    -> 0.004."""
    cost = rate(
        datachrg1,
        tenant="cgrates.org",
        category="data",
        subject="12345",
        destination="",
        answer_time=at(2014, 3, 4, 0, 0),
        usage=20 * SECOND,
        usage_type="*data",
    )
    assert cost.cost == D("0.004")


def test_datachrg1_second_interval(datachrg1):
    """TestGetDataCostSecondIntDtChrg1: 20 units at 01:00 -> TM2 (the later start
    wins among equal weights), 0.001 per 10 units -> 0.002."""
    cost = rate(
        datachrg1,
        tenant="cgrates.org",
        category="data",
        subject="12345",
        destination="",
        answer_time=at(2014, 3, 4, 1, 0),
        usage=20,
        usage_type="*data",
    )
    assert cost.cost == D("0.002")


def test_datachrg1_data_is_not_split_by_time(datachrg1):
    """TestGetDataBetweenCostDtChrg1: starting 00:59:50 with 20 s of units crosses
    01:00, but data is rated entirely at the answer time's interval -> 0.004."""
    cost = rate(
        datachrg1,
        tenant="cgrates.org",
        category="data",
        subject="12345",
        destination="",
        answer_time=at(2014, 3, 4, 0, 59, 50),
        usage=20 * SECOND,
        usage_type="*data",
    )
    assert cost.cost == D("0.004")
    assert len(cost.spans) == 1 and cost.spans[0].timing_id == "TM1"


# =========================================================================== timings


@pytest.fixture
def weekday_plan(tmp_path):
    """The rate intervals of TestSplitSpansWeekend, as CSV: three timings for one
    1-per-second rate (weekdays from 08:00, weekdays from 00:00, weekends)."""
    return load_directory(
        write_plan(
            tmp_path,
            Destinations="SPN_MOB,0034678",
            Timings=(
                "WD_08,*any,*any,*any,1;2;3;4;5,08:00:00\n"
                "WD_00,*any,*any,*any,1;2;3;4;5,00:00:00\n"
                "WE,*any,*any,*any,6;7,00:00:00\n"
                "MAY_DAY,*any,5,1,*any,00:00:00"
            ),
            Rates="R1,0,1,1s,1s,0s\nR2,0,2,1s,1s,0s",
            DestinationRates="DR1,SPN_MOB,R1,*up,6,0,\nDR2,SPN_MOB,R2,*up,6,0,",
            RatingPlans=(
                "RP,DR1,WD_08,0\nRP,DR1,WD_00,0\nRP,DR1,WE,0\n"
                "HOLIDAY,DR1,WD_00,10\nHOLIDAY,DR1,WE,10\nHOLIDAY,DR2,MAY_DAY,20"
            ),
            RatingProfiles=(
                "foehn,postpaid,foehn,2015-04-23T00:00:00Z,RP,\n"
                "foehn,postpaid,holiday,2015-04-23T00:00:00Z,HOLIDAY,"
            ),
        )
    )


def test_split_spans_weekend(weekday_plan):
    """TestSplitSpansWeekend: Fri 2015-04-24 07:59:04 -> 08:02:00 gives 2 spans, the
    first under the 00:00 timing, the second under the 08:00 one."""
    cost = rate(
        weekday_plan,
        tenant="foehn",
        category="postpaid",
        subject="foehn",
        destination="0034678096720",
        answer_time=at(2015, 4, 24, 7, 59, 4),
        usage=176 * SECOND,
    )
    assert [s.timing_id for s in cost.spans] == ["WD_00", "WD_08"]
    assert cost.spans[1].start == at(2015, 4, 24, 8, 0)
    assert cost.cost == D("176")


def test_holiday_weight_wins(weekday_plan):
    """TestCalldescHolliday: a May-1st timing of weight 20 beats the weight-10
    weekday timing on Fri 2015-05-01: one span, priced by DR2 (2 per s)."""
    cost = rate(
        weekday_plan,
        tenant="foehn",
        category="postpaid",
        subject="holiday",
        destination="0034678",
        answer_time=at(2015, 5, 1, 13, 30),
        usage=326 * SECOND,
    )
    assert len(cost.spans) == 1 and cost.spans[0].timing_id == "MAY_DAY"
    assert cost.cost == D("652")


def test_holiday_ends_at_midnight(weekday_plan):
    """The holiday is in force until midnight only: Fri 23:59:30 + 60 s is 30 s at
    2 (MAY_DAY) and 30 s at 1 (WE, Saturday) = 90 (hand-derived)."""
    cost = rate(
        weekday_plan,
        tenant="foehn",
        category="postpaid",
        subject="holiday",
        destination="0034678",
        answer_time=at(2015, 5, 1, 23, 59, 30),
        usage=MINUTE,
    )
    assert [s.timing_id for s in cost.spans] == ["MAY_DAY", "WE"]
    assert cost.cost == D("90")


def test_timing_start_is_inclusive(weekday_plan):
    """A call answered exactly at 08:00:00 is entirely under the 08:00 timing."""
    cost = rate(
        weekday_plan,
        tenant="foehn",
        category="postpaid",
        subject="foehn",
        destination="0034678",
        answer_time=at(2015, 4, 24, 8, 0),
        usage=MINUTE,
    )
    assert [s.timing_id for s in cost.spans] == ["WD_08"]


def test_week_day_seven_is_sunday(weekday_plan):
    """6;7 covers Saturday and Sunday (CGRateS reads week days modulo 7)."""
    cost = rate(
        weekday_plan,
        tenant="foehn",
        category="postpaid",
        subject="foehn",
        destination="0034678",
        answer_time=at(2015, 4, 26, 12, 0),
        usage=MINUTE,
    )
    assert cost.spans[0].timing_id == "WE"


@needs_interop
class TestTutorial2Timings:
    """tutorial2: DST_10 is RT_120C at PEAK (workdays 08:00-19:00) and RT_60C off
    peak.  RT_120C = 0.2 connect fee, 1.2 per minute in whole minutes for the first
    minute, then per second; RT_60C = 0.1 connect fee + 0.01 per second."""

    def plan(self):
        return sample_plan("tutorial2")

    def cost(self, answer_time, usage, destination="1003", subject="2001", **kw):
        return rate(
            self.plan(),
            tenant="cgrates.org",
            category="call",
            subject=subject,
            destination=destination,
            answer_time=answer_time,
            usage=usage,
            **kw,
        )

    def test_peak_starts_mid_call(self):
        """Mon 2019-03-04 07:59:30, 60 s: 30 s off-peak (0.3 + 0.1 connect fee),
        then 30 s of peak stretched to its 1-minute increment (1.2) = 1.6; the
        rated usage is 90 s."""
        cost = self.cost(at(2019, 3, 4, 7, 59, 30), MINUTE)
        assert [s.timing_id for s in cost.spans] == ["OFFPEAK_MORNING", "PEAK"]
        assert cost.cost == D("1.6")
        assert cost.rated_usage == 90 * SECOND
        assert cost.connect_fee == D("0.1")

    def test_stretched_span_swallows_the_next(self):
        """Mon 18:59:30, 60 s: the peak part (30 s) is stretched to a whole minute
        and covers the off-peak part entirely (roundTimeSpansToIncrement) ->
        0.2 + 1.2 = 1.4 in a single span."""
        cost = self.cost(at(2019, 3, 4, 18, 59, 30), MINUTE)
        assert [s.timing_id for s in cost.spans] == ["PEAK"]
        assert cost.cost == D("1.4")
        assert cost.spans[0].usage == MINUTE

    def test_weekend(self):
        """Sat 2019-03-09 10:00, 90 s off-peak: 0.1 + 0.9 = 1."""
        assert self.cost(at(2019, 3, 9, 10, 0), 90 * SECOND).cost == D("1")

    def test_midnight_split(self):
        """Mon 23:59:30 + 60 s is split at midnight even though both sides cost the
        same (OFFPEAK_EVENING then OFFPEAK_MORNING): 0.1 + 0.3 + 0.3 = 0.7."""
        cost = self.cost(at(2019, 3, 4, 23, 59, 30), MINUTE)
        assert [s.timing_id for s in cost.spans] == [
            "OFFPEAK_EVENING",
            "OFFPEAK_MORNING",
        ]
        assert cost.spans[1].start == at(2019, 3, 5)
        assert cost.cost == D("0.7")

    def test_weekend_to_monday(self):
        """Sun 23:59:30 + 60 s: WEEKEND then Monday's OFFPEAK_MORNING."""
        cost = self.cost(at(2019, 3, 10, 23, 59, 30), MINUTE)
        assert [s.timing_id for s in cost.spans] == [
            "OFFPEAK_WEEKEND",
            "OFFPEAK_MORNING",
        ]

    def test_group_interval_start_per_second_after_first_minute(self):
        """Mon 10:00, 90 s at peak: first minute 1.2 (one 60 s increment), then
        30 s at 1.2/60 per second = 0.6, + 0.2 connect fee = 2.0."""
        cost = self.cost(at(2019, 3, 4, 10, 0), 90 * SECOND)
        assert cost.cost == D("2")
        assert [(s.slot.rate_increment, s.elapsed) for s in cost.spans] == [
            (MINUTE, 0),
            (SECOND, MINUTE),
        ]

    def test_new_year_weight(self):
        """2020-01-01: DST_20 (NEW_YEAR, weight 20, RT_60C) beats DST_2030 (*any,
        weight 10, RT_120C) for 2012345: 0.1 + 0.6 = 0.7.  The next day NEW_YEAR is
        not in force, so the lookup picks DST_2030: 0.2 + 1.2 = 1.4."""
        new_year = self.cost(at(2020, 1, 1, 10, 0), MINUTE, destination="2012345")
        assert new_year.spans[0].destination_id == "DST_20" and new_year.cost == D(
            "0.7"
        )
        next_day = self.cost(at(2020, 1, 2, 10, 0), MINUTE, destination="2012345")
        assert next_day.spans[0].destination_id == "DST_2030" and next_day.cost == D(
            "1.4"
        )

    def test_destination_rates_ending_mid_call(self):
        """Deliberate difference: a New Year call running past midnight leaves
        DST_20 without any timing in force (CGRateS would dereference a nil rate
        interval there); we refuse to rate it rather than guess."""
        with pytest.raises(RatingError) as info:
            self.cost(at(2020, 1, 1, 23, 59, 30), MINUTE, destination="2012345")
        assert info.value.code == "UNAUTHORIZED_DESTINATION"

    def test_explicit_fallback_to_any(self):
        """1001 (RP_1001: only DST_1002) falls back to *any (RatesFallbackSubject)
        for 1003: RP_STANDARD at peak, 0.2 + 1.2 = 1.4; to 1002 its own RT_60C:
        0.1 + 0.6 = 0.7."""
        fallback = self.cost(at(2019, 3, 4, 10, 0), MINUTE, subject="1001")
        assert fallback.spans[0].matched_subject == ANY and fallback.cost == D("1.4")
        own = self.cost(
            at(2019, 3, 4, 10, 0), MINUTE, subject="1001", destination="1002"
        )
        assert own.spans[0].matched_subject == "1001" and own.cost == D("0.7")

    def test_rate_unit_zero_means_one_second(self):
        """RT_10C_CN has RateUnit 0 (CGRateS uses 1 s then) and rate 0: any call of
        RPF_SPECIAL_BLC costs the 0.1 connect fee."""
        cost = self.cost(at(2019, 3, 4, 10, 0), 5 * MINUTE, subject="RPF_SPECIAL_BLC")
        assert cost.cost == D("0.1")

    def test_free_voicemail_rounds_to_minutes(self):
        """RT_0: free, in 1-minute increments: 61 s is rated as 2 minutes."""
        cost = self.cost(at(2019, 3, 4, 10, 0), 61 * SECOND, destination="voicemail")
        assert cost.cost == 0 and cost.rated_usage == 2 * MINUTE

    def test_sms_longest_prefix(self):
        """SMS (units, not split by time): 1002 matches DST_1002 (0.1 per SMS) before
        DST_10 (0.2 per SMS)."""
        kw = dict(tenant="cgrates.org", category="sms", subject="x", usage_type="*sms")
        plan = self.plan()
        assert rate(
            plan, destination="1002", answer_time=at(2019, 3, 4), usage=2, **kw
        ).cost == D("0.2")
        assert rate(
            plan, destination="1003", answer_time=at(2019, 3, 4), usage=2, **kw
        ).cost == D("0.4")

    def test_data_increments(self):
        """RT_1024_1: 1 per 1024 units in 1024-unit increments: 1500 units -> 2."""
        cost = rate(
            self.plan(),
            tenant="cgrates.org",
            category="data",
            subject="x",
            destination="data",
            answer_time=at(2019, 3, 4),
            usage=1500,
            usage_type="data",
        )
        assert cost.cost == D("2") and cost.rated_usage == 2048


def test_timings_follow_the_answer_time_zone(tmp_path):
    """Timings are evaluated on the answer time's wall clock: 07:30 UTC is 08:30 in
    Berlin (CET, UTC+1) in January, so the same instant is peak there."""
    plan = load_directory(
        write_plan(
            tmp_path,
            Destinations="D,1",
            Timings="PEAK,*any,*any,*any,*any,08:00:00\nOFF,*any,*any,*any,*any,00:00:00",
            Rates="RP,0,2,1s,1s,0\nRO,0,1,1s,1s,0",
            DestinationRates="DRP,D,RP,*up,4,0,\nDRO,D,RO,*up,4,0,",
            RatingPlans="P,DRP,PEAK,10\nP,DRO,OFF,10",
            RatingProfiles="t,call,*any,2000-01-01T00:00:00Z,P,",
        )
    )
    kw = dict(tenant="t", category="call", subject="s", destination="1", usage=MINUTE)
    utc = rate(plan, answer_time=at(2020, 1, 15, 7, 30), **kw)
    berlin = rate(
        plan,
        answer_time=at(2020, 1, 15, 7, 30).astimezone(ZoneInfo("Europe/Berlin")),
        **kw,
    )
    assert utc.spans[0].timing_id == "OFF" and utc.cost == D("60")
    assert berlin.spans[0].timing_id == "PEAK" and berlin.cost == D("120")


def test_daylight_saving_day(tmp_path):
    """On 2019-03-31 Berlin skips 02:00-03:00, so that day lasts 23 h.  A call from
    Saturday 23:30 CET lasting 8 h of real time ends at 08:30 CEST.  PEAK (08:00)
    stays in force until midnight, so the call is: 30 min PEAK, then local 00:00 to
    08:00 (only 7 h of real time) OFF, then 30 min PEAK from 08:00 CEST = 06:00 UTC.
    Cost 1800 x 2 + 25200 x 1 + 1800 x 2 = 32400."""
    plan = load_directory(
        write_plan(
            tmp_path,
            Destinations="D,1",
            Timings="PEAK,*any,*any,*any,*any,08:00:00\nOFF,*any,*any,*any,*any,00:00:00",
            Rates="RP,0,2,1s,1s,0\nRO,0,1,1s,1s,0",
            DestinationRates="DRP,D,RP,*up,4,0,\nDRO,D,RO,*up,4,0,",
            RatingPlans="P,DRP,PEAK,10\nP,DRO,OFF,10",
            RatingProfiles="t,call,*any,2000-01-01T00:00:00Z,P,",
        )
    )
    berlin = ZoneInfo("Europe/Berlin")
    cost = rate(
        plan,
        tenant="t",
        category="call",
        subject="s",
        destination="1",
        answer_time=at(2019, 3, 30, 23, 30, tz=berlin),
        usage=8 * 3600 * SECOND,
    )
    assert [s.timing_id for s in cost.spans] == ["PEAK", "OFF", "PEAK"]
    assert cost.spans[1].start == at(2019, 3, 31, 0, 0, tz=berlin)
    assert cost.spans[2].start == at(2019, 3, 31, 6, 0)  # 08:00 CEST
    assert [s.usage for s in cost.spans] == [
        1800 * SECOND,
        7 * 3600 * SECOND,
        1800 * SECOND,
    ]
    assert cost.cost == D("32400")


# =========================================================================== tutorials


MONDAY_10AM = at(2019, 3, 4, 10, 0)


@needs_interop
class TestTutorial:
    def cost(self, subject, destination, usage, answer_time=MONDAY_10AM, **kw):
        return rate(
            sample_plan("tutorial"),
            tenant="cgrates.org",
            category="call",
            subject=subject,
            destination=destination,
            answer_time=answer_time,
            usage=usage,
            **kw,
        )

    def test_rt_20cnt_group_intervals(self):
        """1001 -> 1002 (RT_20CNT: 0.4 connect fee, 0.2 for the first whole minute,
        then 0.1 per minute in 1 s increments), 90 s, 5 engine decimals:
        0.4 + 0.2 + 30 s x 0.1/60 = 0.05, split in 30 increments of
        round(0.05/30, 5) = 0.00167 = 0.0501 -> 0.6501 (*up 4)."""
        cost = self.cost("1001", "1002", 90 * SECOND)
        assert cost.cost == D("0.6501")
        assert [s.slot.group_interval_start for s in cost.spans] == [0, MINUTE]

    def test_rt_10cnt_published_increments(self):
        """1003 -> 1001 (RT_10CNT: 0.2 connect fee, 0.1 first minute, then 0.05 per
        minute per second), 85 s.  A published ApierV1.GetCost trace of this call
        shows increments of 0.1 x 1 and 0.00083 x 25 (= 0.02075); adding the
        connect fee, 0.32075 -> *up 4 = 0.3208."""
        cost = self.cost("1003", "1001", 85 * SECOND)
        assert [(i.count, i.cost) for s in cost.spans for i in s.increments] == [
            (1, D("0.2")),
            (1, D("0.1")),
            (25, D("0.00083")),
        ]
        assert cost.cost == D("0.3208")

    def test_single_minute_is_one_increment(self):
        """RT_10CNT for 20 s is one whole first-minute increment: 0.2 + 0.1."""
        cost = self.cost("1003", "1001", 20 * SECOND)
        assert cost.cost == D("0.3") and cost.rated_usage == MINUTE

    def test_max_cost_disconnect(self):
        """1001 -> 1003: 1 cent per second with MaxCost 0.12 *disconnect.  The cost
        is not capped (60 s = 0.6) but the session would be cut after 12 s."""
        cost = self.cost("1001", "1003", MINUTE)
        assert cost.cost == D("0.6")
        assert cost.max_cost_disconnect and cost.max_usage == 12 * SECOND

    def test_max_cost_disconnect_not_reached(self):
        """10 s cost 0.1 < 0.12: no disconnect."""
        cost = self.cost("1001", "1003", 10 * SECOND)
        assert not cost.max_cost_disconnect and cost.max_usage is None

    def test_latest_activation_before_call(self):
        """1001 has RP_1002 from 2010-01-14 and RP_1001 from 2014-01-14.  In 2012
        RP_1002 applies: 1001 is reachable (RT_20CNT, 60 s = 0.6), 1002 is not."""
        in_2012 = at(2012, 6, 1, 10, 0)
        assert self.cost("1001", "1001", MINUTE, answer_time=in_2012).cost == D("0.6")
        assert (
            self.cost("1001", "1001", MINUTE, answer_time=in_2012)
            .spans[0]
            .rating_plan_id
            == "RP_1002"
        )
        with pytest.raises(RatingError):
            self.cost("1001", "1002", MINUTE, answer_time=in_2012)
        assert self.cost("1001", "1002", MINUTE).spans[0].rating_plan_id == "RP_1001"

    def test_sms_units(self):
        """RT_SMS: 0.01 per SMS: 3 SMS -> 0.03."""
        cost = rate(
            sample_plan("tutorial"),
            tenant="cgrates.org",
            category="sms",
            subject="1001",
            destination="1002",
            answer_time=at(2019, 3, 4),
            usage=3,
            usage_type="*sms",
        )
        assert cost.cost == D("0.03")

    def test_rating_plan_id_skips_profiles(self):
        """With rating_plan_id the profile of 1001 is ignored: RP_1003 prices 1001
        calls with RT_10CNT even for subject 1001 (0.2 + 0.1 for a minute)."""
        cost = self.cost("1001", "1001", MINUTE, rating_plan_id="RP_1003")
        assert cost.cost == D("0.3") and cost.spans[0].matched_subject is None
        with pytest.raises(RatingError) as info:
            self.cost("1001", "1002", MINUTE, rating_plan_id="RP_1003")
        assert info.value.code == "UNAUTHORIZED_DESTINATION"
        with pytest.raises(RatingError) as info:
            self.cost("1001", "1002", MINUTE, rating_plan_id="NOPE")
        assert info.value.code == "RATING_PLAN_NOT_FOUND"


@needs_interop
class TestOldTutorial:
    def cost(self, subject, destination, usage, category="call", **kw):
        return rate(
            sample_plan("oldtutorial"),
            tenant="cgrates.org",
            category=category,
            subject=subject,
            destination=destination,
            answer_time=at(2019, 3, 4, 10, 0),
            usage=usage,
            **kw,
        )

    def test_max_cost_free(self):
        """1001 -> 1007: RP_RETAIL2 uses DR_1007_MAXCOST_FREE, 1 cent per second
        capped at 0.62 *free: 120 s -> 0.62 instead of 1.2."""
        cost = self.cost("1001", "1007", 2 * MINUTE)
        assert cost.cost == D("0.62") and cost.max_cost_applied

    def test_max_cost_free_below_cap(self):
        """30 s -> 0.3, below the cap."""
        cost = self.cost("1001", "1007", 30 * SECOND)
        assert cost.cost == D("0.3") and not cost.max_cost_applied

    def test_max_cost_disconnect(self):
        """Any other subject uses RP_RETAIL1 -> DR_1007_MAXCOST_DISC: 1.2 for 120 s,
        disconnect after 62 s (0.62)."""
        cost = self.cost("1002", "1007", 2 * MINUTE)
        assert cost.cost == D("1.2") and cost.max_usage == 62 * SECOND

    def test_rt_40cnt_stretch_to_increment(self):
        """DST_FS (prefix 10) at peak is RT_40CNT: 0.8 connect fee, 0.4 per minute in
        30 s steps for the first minute, then 0.2 per minute in 10 s steps.
        45 s -> 60 s rated: 0.8 + 0.4 = 1.2.  65 s -> 0.8 + 0.4 + 10 s x 0.2/60
        (0.03333) = 1.23333 -> *up 4 = 1.2334."""
        assert self.cost("1002", "1005", 45 * SECOND).cost == D("1.2")
        cost = self.cost("1002", "1005", 65 * SECOND)
        assert cost.cost == D("1.2334") and cost.rated_usage == 70 * SECOND

    def test_generic_units(self):
        """RT_GENERIC_1 (category generic): 1 per unit -> 5 units cost 5."""
        assert self.cost(
            "x", "anything", 5, category="generic", usage_type="*generic"
        ).cost == D("5")


@needs_interop
class TestSessionRounding:
    """session_rounding: 0.033 per second, total rounded to 1 decimal *up or *down."""

    def cost(self, subject, usage):
        return rate(
            sample_plan("session_rounding"),
            tenant="cgrates.org",
            category="call",
            subject=subject,
            destination="123",
            answer_time=at(2019, 3, 4),
            usage=usage,
        )

    def test_up(self):
        """10 s = 0.33 -> 0.4 (*up 1); 3 s = 0.099 -> 0.1."""
        assert self.cost("up", 10 * SECOND).cost == D("0.4")
        assert self.cost("up", 3 * SECOND).cost == D("0.1")

    def test_down(self):
        """10 s = 0.33 -> 0.3 (*down 1); 3 s = 0.099 -> 0.0."""
        assert self.cost("down", 10 * SECOND).cost == D("0.3")
        assert self.cost("down", 3 * SECOND).cost == D("0")


@needs_interop
def test_testit_rate_starting_after_zero_is_free_before_its_start():
    """testit RT_TEST_1 only has a slot from 60 s (0.05 per minute, per minute).
    CGRateS computes a meaningless cost before 60 s; we treat it as free:
    90 s -> free first minute + 30 s stretched to a minute = 0.05."""
    plan = sample_plan("testit")
    kw = dict(
        tenant="cgrates.org",
        category="Standard",
        subject="TEST",
        destination="1001",
        answer_time=at(2019, 3, 4),
    )
    assert rate(plan, usage=90 * SECOND, **kw).cost == D("0.05")
    assert rate(plan, usage=30 * SECOND, **kw).cost == 0


@needs_interop
def test_testtp_data_per_megabyte():
    """testtp RT_DATA_r: 0.1 per 1048576 units in 10240-unit increments, 5 engine
    decimals, *up 5.  1048576 units = 102.4 increments -> 103 (1054720 units):
    0.1 x 1054720 / 1048576 = 0.1005859.. -> 0.10059; / 103 = 0.000976.. -> 0.00098;
    x 103 = 0.10094."""
    cost = rate(
        sample_plan("testtp"),
        tenant="cgrates.org",
        category="data",
        subject="datar",
        destination="2221",
        answer_time=at(2019, 3, 4),
        usage=1048576,
        usage_type="*data",
    )
    assert cost.rated_usage == 103 * 10240
    assert cost.cost == D("0.10094")


# =========================================================================== rules in code


def _plan(
    rate_slots,
    *,
    rounding=("*up", 4),
    max_cost=("0", ""),
    timings=(),
    bindings=None,
    profiles=None,
    destinations=(("D", ("1",)),),
):
    """A one-rate plan built in code."""
    slots = tuple(
        RateSlot(D(cf), D(r), unit, inc, start)
        for cf, r, unit, inc, start in rate_slots
    )
    return TariffPlan(
        destinations=[Destination(i, p) for i, p in destinations],
        timings=timings,
        rates=[Rate("R", slots)],
        destination_rates=[
            DestinationRate(
                "DR",
                dest_id,
                "R",
                rounding[0],
                rounding[1],
                D(max_cost[0]),
                max_cost[1],
            )
            for dest_id, _ in destinations
        ],
        rating_plan_bindings=bindings or [RatingPlanBinding("P", "DR", ANY, D(10))],
        rating_profiles=profiles
        or [RatingProfile("t", "call", ANY, at(2000, 1, 1), "P")],
    )


NOON = at(2020, 6, 1, 12, 0)


def _cost(plan, usage, answer_time=NOON, destination="1", **kw):
    return rate(
        plan,
        tenant="t",
        category="call",
        subject="s",
        destination=destination,
        answer_time=answer_time,
        usage=usage,
        **kw,
    )


class TestIncrementsAndSlots:
    def test_partial_increment_is_rounded_up(self):
        """1 per minute in 30 s increments: 31 s is charged as 60 s = 1."""
        plan = _plan([("0", "1", MINUTE, 30 * SECOND, 0)])
        cost = _cost(plan, 31 * SECOND)
        assert cost.cost == D("1") and cost.rated_usage == MINUTE
        assert cost.spans[0].usage == 31 * SECOND

    def test_slot_change_mid_call(self):
        """0.2 connect, 0.1/60 s per 60 s for the first minute then 0.05/60 s per 1 s
        (RT_10CNT of the tutorial): 61 s = 0.2 + 0.1 + 0.05/60 (0.00083) = 0.30083
        -> *up 4 = 0.3009."""
        plan = _plan(
            [("0.2", "0.1", MINUTE, MINUTE, 0), ("0", "0.05", MINUTE, SECOND, MINUTE)]
        )
        cost = _cost(plan, 61 * SECOND)
        assert cost.cost == D("0.3009")
        assert [s.slot.group_interval_start for s in cost.spans] == [0, MINUTE]

    def test_connect_fee_charged_once(self):
        """Only the first span carries the connect fee, even across midnight."""
        plan = _plan([("0.5", "1", SECOND, SECOND, 0)])
        cost = _cost(plan, MINUTE, answer_time=at(2020, 6, 1, 23, 59, 30))
        assert [s.connect_fee for s in cost.spans] == [D("0.5"), D("0")]
        assert cost.cost == D("60.5")

    def test_connect_fee_from_first_defined_slot(self):
        """CGRateS takes the connect fee from RateSlots[0], the first row in the
        file, not from the slot with the lowest GroupIntervalStart."""
        plan = _plan(
            [("0", "1", SECOND, SECOND, MINUTE), ("0.7", "1", SECOND, SECOND, 0)]
        )
        assert _cost(plan, 10 * SECOND).connect_fee == D("0")

    def test_double_rounding_is_not_monotonic_like_cgrates(self):
        """Faithful quirk: with increments cheaper than the engine precision the
        per-increment rounding can make a longer call cheaper.  0.1 per hour in 1 s
        increments, 4 engine decimals: 2 s -> whole 0.0001, each 0.00005 -> 0.0001,
        x 2 = 0.0002; 3 s -> whole 0.0001, each 0.0000333 -> 0.0000 = 0."""
        plan = _plan([("0", "0.1", 3600 * SECOND, SECOND, 0)])
        assert _cost(plan, 2 * SECOND, rounding_decimals=4).cost == D("0.0002")
        assert _cost(plan, 3 * SECOND, rounding_decimals=4).cost == D("0")


class TestRounding:
    @pytest.mark.parametrize(
        "value, decimals, method, expected",
        [
            ("0.12341", 4, "*up", "0.1235"),
            ("0.12340", 4, "*up", "0.1234"),
            ("0.12345", 4, "*middle", "0.1235"),
            ("0.123449", 4, "*middle", "0.1234"),
            ("0.12349", 4, "*down", "0.1234"),
            ("0.12349", 4, "", "0.12349"),  # no method: CGRateS leaves it alone
            ("2.5", 0, "*middle", "3"),
            # *up ignores a remainder below 10**-7 of the last digit (Go's guard
            # against float noise in utils.Round).
            ("0.100000000001", 2, "*up", "0.10"),
            ("0.1000001", 2, "*up", "0.11"),
            # Go's math.Modf keeps the sign, so negatives always go to the floor.
            ("-0.12341", 4, "*up", "-0.1235"),
            ("-0.12341", 4, "*middle", "-0.1235"),
            ("-0.12349", 4, "*down", "-0.1235"),
        ],
    )
    def test_round_cost(self, value, decimals, method, expected):
        assert round_cost(D(value), decimals, method) == D(expected)

    @pytest.mark.parametrize(
        "method, expected", [("*up", "0.34"), ("*middle", "0.33"), ("*down", "0.33")]
    )
    def test_destination_rate_method(self, method, expected):
        """0.0333 per second, 10 s = 0.333 rounded to 2 decimals by the method."""
        plan = _plan([("0", "0.0333", SECOND, SECOND, 0)], rounding=(method, 2))
        assert _cost(plan, 10 * SECOND).cost == D(expected)

    def test_longest_rounding_wins(self):
        """CallCost.GetLongestRounding: the span whose destination rate has the
        most decimals decides the final rounding for the whole call."""
        plan = TariffPlan(
            destinations=[Destination("D", ("1",))],
            timings=[
                Timing("AM", start_time=time(0)),
                Timing("PM", start_time=time(12)),
            ],
            rates=[Rate("R", (RateSlot(D(0), D("0.0111"), SECOND, SECOND, 0),))],
            destination_rates=[
                DestinationRate("D2", "D", "R", "*up", 2),
                DestinationRate("D4", "D", "R", "*down", 4),
            ],
            rating_plan_bindings=[
                RatingPlanBinding("P", "D2", "AM", D(10)),
                RatingPlanBinding("P", "D4", "PM", D(10)),
            ],
            rating_profiles=[RatingProfile("t", "call", ANY, at(2000, 1, 1), "P")],
        )
        cost = _cost(plan, 20 * SECOND, answer_time=at(2020, 6, 1, 11, 59, 50))
        assert (cost.rounding_method, cost.rounding_decimals) == ("*down", 4)
        assert cost.cost == D("0.222")

    def test_zero_rounding_decimals_means_no_final_rounding(self):
        """GetLongestRounding starts from 0 decimals and "": a destination rate
        with RoundingDecimals 0 leaves the total unrounded (CGRateS behaviour)."""
        plan = _plan([("0", "0.0333", SECOND, SECOND, 0)], rounding=("*up", 0))
        assert _cost(plan, 10 * SECOND).cost == D("0.333")


class TestMaxCost:
    def test_free_cap_exact_value(self):
        """*free caps at exactly MaxCost even when increments overshoot it."""
        plan = _plan([("0", "0.3", MINUTE, MINUTE, 0)], max_cost=("1", "*free"))
        cost = _cost(plan, 10 * MINUTE)
        assert cost.cost == D("1") and cost.max_cost_applied

    def test_max_cost_zero_means_none(self):
        plan = _plan([("0", "1", SECOND, SECOND, 0)], max_cost=("0", "*free"))
        assert _cost(plan, MINUTE).cost == D("60")

    def test_disconnect_counts_connect_fee(self):
        """Connect fee 0.5 + 0.1 per second, *disconnect at 1: the cost so far
        reaches 1.0 after 5 s, so the session stops there."""
        plan = _plan([("0.5", "0.1", SECOND, SECOND, 0)], max_cost=("1", "*disconnect"))
        cost = _cost(plan, MINUTE)
        assert cost.cost == D("6.5") and cost.max_usage == 5 * SECOND


class TestProfiles:
    def test_latest_activation_at_or_before_start(self):
        profiles = [
            RatingProfile("t", "call", "s", at(2020, 1, 1), "P"),
            RatingProfile("t", "call", "s", at(2020, 6, 1), "P2"),
        ]
        plan = TariffPlan(
            destinations=[Destination("D", ("1",))],
            rates=[
                Rate("R1", (RateSlot(D(0), D(1), SECOND, SECOND, 0),)),
                Rate("R2", (RateSlot(D(0), D(2), SECOND, SECOND, 0),)),
            ],
            destination_rates=[
                DestinationRate("DR1", "D", "R1"),
                DestinationRate("DR2", "D", "R2"),
            ],
            rating_plan_bindings=[
                RatingPlanBinding("P", "DR1", ANY, D(10)),
                RatingPlanBinding("P2", "DR2", ANY, D(10)),
            ],
            rating_profiles=profiles,
        )
        assert _cost(plan, 10 * SECOND, answer_time=at(2020, 5, 31, 23, 0)).cost == D(
            "10"
        )
        assert _cost(plan, 10 * SECOND, answer_time=at(2020, 6, 1)).cost == D("20")
        # A voice call running over the activation is split there (SplitByRatingPlan).
        crossing = _cost(plan, MINUTE, answer_time=at(2020, 5, 31, 23, 59, 30))
        assert [s.rating_plan_id for s in crossing.spans] == ["P", "P2"]
        assert crossing.cost == D("90")
        # Data is not split: the plan active at the answer time rates it all.
        data = _cost(
            plan, MINUTE, answer_time=at(2020, 5, 31, 23, 59, 30), usage_type="data"
        )
        assert data.cost == D("60")
        # Before any activation the subject has nothing (and there is no *any).
        with pytest.raises(RatingError):
            _cost(plan, MINUTE, answer_time=at(2019, 1, 1))

    def test_semicolon_fallbacks_in_order(self, tmp_path):
        """RatesFallbackSubject "a;b": a has no rate for 2, b does."""
        plan = load_directory(
            write_plan(
                tmp_path,
                Destinations="ONE,1\nTWO,2",
                Rates="R,0,1,1s,1s,0",
                DestinationRates="DR1,ONE,R,*up,4,0,\nDR2,TWO,R,*up,4,0,",
                RatingPlans="P1,DR1,*any,10\nP2,DR2,*any,10",
                RatingProfiles=(
                    "t,call,s,2000-01-01T00:00:00Z,P1,a;b\n"
                    "t,call,a,2000-01-01T00:00:00Z,P1,\n"
                    "t,call,b,2000-01-01T00:00:00Z,P2,"
                ),
            )
        )
        cost = _cost(plan, MINUTE, destination="2")
        assert cost.spans[0].matched_subject == "b" and cost.cost == D("60")

    def test_any_destination_after_prefixes(self):
        """A plan's *any destination catches what no prefix matched."""
        plan = TariffPlan(
            destinations=[Destination("D", ("1",))],
            rates=[
                Rate("R1", (RateSlot(D(0), D(1), SECOND, SECOND, 0),)),
                Rate("R9", (RateSlot(D(0), D(9), SECOND, SECOND, 0),)),
            ],
            destination_rates=[
                DestinationRate("DR", "D", "R1"),
                DestinationRate("DR", ANY, "R9"),
            ],
            rating_plan_bindings=[RatingPlanBinding("P", "DR", ANY, D(10))],
            rating_profiles=[RatingProfile("t", "call", ANY, at(2000, 1, 1), "P")],
        )
        assert _cost(plan, SECOND, destination="123").cost == D("1")
        other = _cost(plan, SECOND, destination="555")
        assert other.cost == D("9") and other.spans[0].destination_id == ANY

    def test_equal_prefix_weight_and_timing(self):
        """Two destinations share prefix 44: the one with a timing in force at the
        call start wins; when both are in force the higher weight wins."""
        plan = TariffPlan(
            destinations=[Destination("A", ("44",)), Destination("B", ("44",))],
            timings=[Timing("NIGHT", start_time=time(22))],
            rates=[
                Rate("R1", (RateSlot(D(0), D(1), SECOND, SECOND, 0),)),
                Rate("R2", (RateSlot(D(0), D(2), SECOND, SECOND, 0),)),
            ],
            destination_rates=[
                DestinationRate("DRA", "A", "R1"),
                DestinationRate("DRB", "B", "R2"),
            ],
            rating_plan_bindings=[
                RatingPlanBinding("P", "DRA", ANY, D(10)),
                RatingPlanBinding("P", "DRB", "NIGHT", D(20)),
            ],
            rating_profiles=[RatingProfile("t", "call", ANY, at(2000, 1, 1), "P")],
        )
        day = _cost(plan, SECOND, destination="4412", answer_time=at(2020, 6, 1, 12))
        night = _cost(plan, SECOND, destination="4412", answer_time=at(2020, 6, 1, 23))
        assert day.spans[0].destination_id == "A"
        assert night.spans[0].destination_id == "B"


class TestInputs:
    def test_naive_answer_time_is_refused(self):
        plan = _plan([("0", "1", SECOND, SECOND, 0)])
        with pytest.raises(ValueError):
            _cost(plan, SECOND, answer_time=at(2020, 1, 1).replace(tzinfo=None))

    def test_negative_usage_is_refused(self):
        plan = _plan([("0", "1", SECOND, SECOND, 0)])
        with pytest.raises(ValueError):
            _cost(plan, -1)

    def test_usage_forms(self):
        """int (ns), timedelta and duration strings are equivalent."""
        plan = _plan([("0", "1", SECOND, SECOND, 0)])
        costs = {
            _cost(plan, u).cost for u in (90 * SECOND, timedelta(seconds=90), "1m30s")
        }
        assert costs == {D("90")}

    def test_float_usage_is_refused(self):
        plan = _plan([("0", "1", SECOND, SECOND, 0)])
        with pytest.raises(TypeError):
            _cost(plan, 1.5)

    def test_unratable_zero_usage_costs_nothing(self):
        """CGRateS's zero-duration GetCost ignores rating errors: cost 0, no spans."""
        plan = _plan([("0", "1", SECOND, SECOND, 0)])
        cost = _cost(plan, 0, destination="9")
        assert cost.cost == 0 and cost.spans == []


class TestModelValidation:
    def test_plan_rejects_dangling_references(self):
        slot = RateSlot(D(0), D(1), SECOND, SECOND, 0)
        with pytest.raises(TariffPlanError, match="unknown rate"):
            TariffPlan(
                destinations=[Destination("D", ("1",))],
                destination_rates=[DestinationRate("DR", "D", "NOPE")],
                rates=[Rate("R", (slot,))],
            )
        with pytest.raises(TariffPlanError, match="unknown timing"):
            TariffPlan(
                destinations=[Destination("D", ("1",))],
                rates=[Rate("R", (slot,))],
                destination_rates=[DestinationRate("DR", "D", "R")],
                rating_plan_bindings=[RatingPlanBinding("P", "DR", "NIGHT", D(1))],
            )
        with pytest.raises(TariffPlanError, match="duplicate destination"):
            TariffPlan(
                destinations=[Destination("D", ("1",)), Destination("D", ("2",))]
            )

    def test_values_are_checked(self):
        with pytest.raises(TariffPlanError):
            RateSlot(D(0), 0.1, SECOND, SECOND, 0)  # float money
        with pytest.raises(TariffPlanError):
            RateSlot(D(0), D("0.1"), -SECOND, SECOND, 0)
        with pytest.raises(TariffPlanError):
            Timing("T", week_days=frozenset({0}))  # ISO numbering: 1..7
        with pytest.raises(TariffPlanError):
            RatingProfile("t", "c", "s", at(2020, 1, 1).replace(tzinfo=None), "P")
        with pytest.raises(TariffPlanError):
            DestinationRate("DR", "D", "R", rounding_method="*nearest")

    def test_any_timing_is_built_in(self):
        plan = TariffPlan()
        assert plan.timings[ANY].is_always
