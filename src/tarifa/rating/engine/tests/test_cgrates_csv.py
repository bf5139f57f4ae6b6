"""Loading CGRateS classic tariff-plan CSVs, and parsing durations."""

from __future__ import annotations

from datetime import time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tarifa.rating.engine import (
    ANY,
    HOUR,
    MILLISECOND,
    MINUTE,
    SECOND,
    TariffPlanError,
    format_duration,
    load_directory,
    parse_duration,
    rate,
    to_units,
)

from . import INTEROP, at, needs_interop, write_plan

# A minimal valid plan; tests override one file at a time to break it.
GOOD = dict(
    Destinations="#Id,Prefix\nDST_1002,1002\nDST_FS,10",
    Timings="#Id,Years,Months,MonthDays,WeekDays,Time\nPEAK,*any,*any,*any,1;2;3;4;5,08:00:00",
    Rates="#Id,ConnectFee,Rate,RateUnit,RateIncrement,GroupIntervalStart\nRT_1,0.1,0.6,60s,1s,0s",
    DestinationRates="#Id,DestinationId,RatesTag,RoundingMethod,RoundingDecimals,MaxCost,MaxCostStrategy\n"
    "DR_1,DST_1002,RT_1,*up,4,0,",
    RatingPlans="#Id,DestinationRatesId,TimingTag,Weight\nRP_1,DR_1,PEAK,10\nRP_1,DR_1,*any,5",
    RatingProfiles="#Tenant,Category,Subject,ActivationTime,RatingPlanId,RatesFallbackSubject\n"
    "cgrates.org,call,*any,2014-01-14T00:00:00Z,RP_1,",
)


def load(tmp_path: Path, **overrides: str):
    files = {**GOOD, **overrides}
    return load_directory(write_plan(tmp_path, **files))


# =========================================================================== samples

SAMPLES = [
    "costs1",
    "engine_unit",
    "oldtutorial",
    "session_rounding",
    "testit",
    "testtp",
    "tutorial",
    "tutorial2",
]


@needs_interop
@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_plan_loads(name):
    plan = load_directory(INTEROP / name)
    assert plan.rating_plan_ids
    assert plan.rating_profiles


@needs_interop
def test_samples_folder_has_no_unknown_plan():
    """Keeps SAMPLES in step with shared/interop/cgrates."""
    assert sorted(p.name for p in INTEROP.iterdir() if p.is_dir()) == sorted(SAMPLES)


@needs_interop
def test_engine_unit_contents():
    plan = load_directory(INTEROP / "engine_unit")
    assert plan.destinations["NAT"].prefixes == ("0256", "0257", "0723", "+49")
    # LANDLINE_OFFPEAK has two slots; the file order is kept.
    assert [s.group_interval_start for s in plan.rates["LANDLINE_OFFPEAK"].slots] == [
        0,
        MINUTE,
    ]
    assert plan.timings["WEEKENDS"].week_days == frozenset({6, 7})
    assert plan.timings["WORKDAYS_18"].start_time == time(18)
    # ONE_TIME_RUN (*asap) only serves action plans: it is not a rating timing.
    assert "ONE_TIME_RUN" not in plan.timings
    fallback = [p for p in plan.rating_profiles if p.subject == "trp"][0]
    assert fallback.fallback_subjects == ("rif", "danb")
    assert plan.destination_ids_for("0723045326") == (
        ("0723045", "SPEC"),
        ("0723", "NAT"),
        ("0723", "RET"),
    )


@needs_interop
def test_missing_timings_file_gives_only_any(tmp_path):
    """tutorial has no Timings.csv: its plans bind the built-in *any timing."""
    plan = load_directory(INTEROP / "tutorial")
    assert set(plan.timings) == {ANY}


@needs_interop
def test_tutorial2_comments_blank_lines_and_empty_fields():
    """tutorial2 has comments between rows, blank lines and an empty ConnectFee."""
    plan = load_directory(INTEROP / "tutorial2")
    first, second = plan.rates["RT_120C"].slots
    assert (first.connect_fee, second.connect_fee) == (Decimal("0.2"), Decimal(0))
    assert second.group_interval_start == MINUTE
    assert plan.timings["NEW_YEAR"].months == frozenset({1})


@needs_interop
def test_tenant_override():
    plan = load_directory(INTEROP / "tutorial", tenant="acme")
    assert {p.tenant for p in plan.rating_profiles} == {"acme"}
    cost = rate(
        plan,
        tenant="acme",
        category="call",
        subject="1001",
        destination="1002",
        answer_time=at(2019, 3, 4),
        usage=MINUTE,
    )
    assert cost.cost == Decimal("0.6")


# =========================================================================== format


def test_good_plan_loads(tmp_path):
    plan = load(tmp_path)
    assert plan.rating_plan_ids == ("RP_1",)


def test_bom_quotes_and_spaces(tmp_path):
    directory = write_plan(tmp_path, **GOOD)
    (directory / "Destinations.csv").write_text(
        '\ufeff#Id,Prefix\n DST_1002 , "1002"\nDST_FS,10\n'
    )
    plan = load_directory(directory)
    assert plan.destinations["DST_1002"].prefixes == ("1002",)


def test_week_day_zero_is_sunday(tmp_path):
    plan = load(tmp_path, Timings=GOOD["Timings"] + "\nSUN,*any,*any,*any,0,00:00:00")
    assert plan.timings["SUN"].week_days == frozenset({7})


def test_start_and_end_time(tmp_path):
    """CGRateS also accepts Time as "start;end"."""
    plan = load(tmp_path, Timings="PEAK,2024;2025,1;12,1;31,*any,08:00:00;18:30:00")
    timing = plan.timings["PEAK"]
    assert (timing.start_time, timing.end_time) == (time(8), time(18, 30))
    assert timing.years == frozenset({2024, 2025}) and timing.month_days == frozenset(
        {1, 31}
    )


def test_activation_time_formats(tmp_path):
    plan = load(
        tmp_path,
        RatingProfiles=(
            "t,call,a,2014-01-14T00:00:00Z,RP_1,\n"
            "t,call,b,2014-01-14T02:00:00+02:00,RP_1,\n"
            "t,call,c,2014-01-14 00:00:00,RP_1,\n"
            "t,call,d,1389657600,RP_1,"
        ),
    )
    assert len({p.activation_time for p in plan.rating_profiles}) == 1


def test_short_rating_profile_and_destination_rate_rows(tmp_path):
    """Trailing optional columns may be omitted (MaxCost/Strategy, fallback)."""
    plan = load(
        tmp_path,
        DestinationRates="DR_1,DST_1002,RT_1,*up,4",
        RatingProfiles="cgrates.org,call,*any,2014-01-14T00:00:00Z,RP_1",
    )
    assert plan.rating_profiles[0].fallback_subjects == ()


# =========================================================================== errors


@pytest.mark.parametrize(
    "file, text, line, message",
    [
        ("Destinations", "#h\nDST_1002", 2, "expected 2 columns"),
        ("Destinations", "#h\nDST_1002,", 2, "prefix is empty"),
        ("Timings", "#h\n\nPEAK,*any,13,*any,*any,08:00:00", 3, "Months item 13"),
        ("Timings", "PEAK,*any,*any,*any,8,08:00:00", 1, "WeekDays item 8"),
        ("Timings", "PEAK,*any,*any,*any,1;x,08:00:00", 1, "not an integer"),
        ("Timings", "PEAK,*any,*any,*any,*any,25:00:00", 1, "not a valid HH:MM:SS"),
        ("Timings", "PEAK,*any,*any,*any,*any,8am", 1, "not HH:MM:SS"),
        ("Rates", "#h\nRT_1,0.1,abc,60s,1s,0s", 2, "Rate 'abc' is not a number"),
        (
            "Rates",
            "RT_1,0.1,0.6,60 parsecs,1s,0s",
            1,
            "RateUnit '60 parsecs' is not a duration",
        ),
        ("Rates", "RT_1,0.1,0.6,60s,-1s,0s", 1, "RateIncrement '-1s' is negative"),
        ("Rates", "RT_1,0.1,NaN,60s,1s,0s", 1, "not a finite number"),
        ("DestinationRates", "DR_1,DST_1002,RT_9,*up,4,0,", 1, "unknown rate RT_9"),
        (
            "DestinationRates",
            "DR_1,DST_9,RT_1,*up,4,0,",
            1,
            "unknown destination DST_9",
        ),
        (
            "DestinationRates",
            "DR_1,DST_1002,RT_1,*ceil,4,0,",
            1,
            "unknown RoundingMethod",
        ),
        (
            "DestinationRates",
            "DR_1,DST_1002,RT_1,*up,four,0,",
            1,
            "RoundingDecimals 'four'",
        ),
        (
            "DestinationRates",
            "DR_1,DST_1002,RT_1,*up,4,1,*maybe",
            1,
            "unknown MaxCostStrategy",
        ),
        (
            "RatingPlans",
            "#h\nRP_1,DR_1,PEAK,10\nRP_1,DR_9,PEAK,10",
            3,
            "unknown destination rate DR_9",
        ),
        ("RatingPlans", "RP_1,DR_1,NIGHT,10", 1, "unknown timing NIGHT"),
        ("RatingPlans", "RP_1,DR_1,PEAK,heavy", 1, "Weight 'heavy'"),
        (
            "RatingProfiles",
            "#h\n#c\nt,call,*any,2014-01-14T00:00:00Z,RP_9,",
            3,
            "unknown rating plan RP_9",
        ),
        (
            "RatingProfiles",
            "t,call,*any,yesterday,RP_1,",
            1,
            "ActivationTime 'yesterday'",
        ),
        ("RatingProfiles", "t,call,,2014-01-14T00:00:00Z,RP_1,", 1, "Subject is empty"),
    ],
)
def test_errors_name_file_and_line(tmp_path, file, text, line, message):
    with pytest.raises(TariffPlanError) as info:
        load(tmp_path, **{file: text})
    error = info.value
    assert Path(error.file).name == f"{file}.csv"
    assert error.line_no == line
    assert message in error.message
    assert f"{file}.csv:{line}:" in str(error)


def test_action_only_timing_cannot_rate(tmp_path):
    """*asap belongs to action plans; binding it in a rating plan is an error that
    points at the RatingPlans row and mentions the Timings row."""
    with pytest.raises(TariffPlanError) as info:
        load(
            tmp_path,
            Timings="PEAK,*any,*any,*any,*any,08:00:00\nASAP,*any,*any,*any,*any,*asap",
            RatingPlans="RP_1,DR_1,PEAK,10\nRP_1,DR_1,ASAP,10",
        )
    assert Path(info.value.file).name == "RatingPlans.csv" and info.value.line_no == 2
    assert "Timings.csv:2" in info.value.message


def test_missing_required_file(tmp_path):
    directory = write_plan(tmp_path, **GOOD)
    (directory / "Rates.csv").unlink()
    with pytest.raises(TariffPlanError) as info:
        load_directory(directory)
    assert Path(info.value.file).name == "Rates.csv"


def test_not_a_directory(tmp_path):
    with pytest.raises(TariffPlanError):
        load_directory(tmp_path / "nope")


def test_duplicate_timing(tmp_path):
    with pytest.raises(TariffPlanError) as info:
        load(
            tmp_path,
            Timings="PEAK,*any,*any,*any,*any,08:00:00\nPEAK,*any,*any,*any,*any,09:00:00",
        )
    assert info.value.line_no == 2


# =========================================================================== durations


@pytest.mark.parametrize(
    "text, units",
    [
        ("60s", 60 * SECOND),
        ("1m", MINUTE),
        ("0s", 0),
        ("1h", HOUR),
        ("100ms", 100 * MILLISECOND),
        ("45s", 45 * SECOND),
        ("1m20s", 80 * SECOND),
        ("1h2m3s", HOUR + 2 * MINUTE + 3 * SECOND),
        ("2.5s", 2500 * MILLISECOND),
        ("1.5m", 90 * SECOND),
        ("250us", 250_000),
        ("250µs", 250_000),
        ("7ns", 7),
        ("0", 0),
        ("", 0),
        # Bare numbers are base units (nanoseconds for time), as in CGRateS's
        # ParseDurationWithNanosecs: they are how data and SMS units are written.
        ("1024", 1024),
        ("10", 10),
        ("2.5", 2),  # Go truncates fractional nanoseconds
        ("-1s", -SECOND),
    ],
)
def test_parse_duration(text, units):
    assert parse_duration(text) == units


@pytest.mark.parametrize(
    "text", ["1x", "s", "1s2", "1 s", "1e3", "--1s", "1s-2s", "ms"]
)
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_to_units_and_format():
    assert to_units(timedelta(minutes=1, microseconds=5)) == MINUTE + 5_000
    assert to_units("1m") == MINUTE
    assert to_units(42) == 42
    with pytest.raises(TypeError):
        to_units(1.0)
    with pytest.raises(TypeError):
        to_units(True)
    assert format_duration(80 * SECOND) == "1m20s"
    assert format_duration(HOUR + 500 * MILLISECOND) == "1h0m0.5s"
    assert format_duration(150 * MILLISECOND) == "150ms"
    assert format_duration(0) == "0s"
