"""Load a CGRateS classic tariff plan directory (the ``data/tariffplans/*`` CSVs).

Files and columns (CGRateS v0.10 ``TpReader``):

=====================  ========================================================
``Destinations.csv``   ID, Prefix
``Timings.csv``        ID, Years, Months, MonthDays, WeekDays, Time (optional
                       file: without it only the built-in ``*any`` exists)
``Rates.csv``          ID, ConnectFee, Rate, RateUnit, RateIncrement,
                       GroupIntervalStart
``DestinationRates``   ID, DestinationsID, RatesID, RoundingMethod,
                       RoundingDecimals, MaxCost, MaxCostStrategy
``RatingPlans.csv``    ID, DestinationRatesID, TimingID, Weight
``RatingProfiles``     Tenant, Category, Subject, ActivationTime, RatingPlanID,
                       RatesFallbackSubject
=====================  ========================================================

Lines starting with ``#`` are headers/comments and blank lines are skipped.  The
loader is stricter than CGRateS (which silently drops unparsable list items):
any malformed value or dangling reference raises :class:`TariffPlanError` naming
the file and line, and nothing is returned half-loaded.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, time
from decimal import Decimal, InvalidOperation
from os import PathLike
from pathlib import Path

from .durations import parse_duration
from .model import (
    ANY,
    MAX_COST_STRATEGIES,
    ROUNDING_METHODS,
    Destination,
    DestinationRate,
    Rate,
    RateSlot,
    RatingPlanBinding,
    RatingProfile,
    TariffPlan,
    TariffPlanError,
    Timing,
)

__all__ = ["load_directory", "FILES"]

DESTINATIONS = "Destinations.csv"
TIMINGS = "Timings.csv"
RATES = "Rates.csv"
DESTINATION_RATES = "DestinationRates.csv"
RATING_PLANS = "RatingPlans.csv"
RATING_PROFILES = "RatingProfiles.csv"
FILES = (DESTINATIONS, TIMINGS, RATES, DESTINATION_RATES, RATING_PLANS, RATING_PROFILES)


class _Row:
    __slots__ = ("file", "line_no", "fields")

    def __init__(self, file: str, line_no: int, fields: list[str]):
        self.file = file
        self.line_no = line_no
        self.fields = fields

    def error(self, message: str) -> TariffPlanError:
        return TariffPlanError(self.file, self.line_no, message)


def load_directory(path: str | PathLike[str], tenant: str | None = None) -> TariffPlan:
    """Read a tariff-plan directory into a validated :class:`TariffPlan`.

    ``tenant``, when given, replaces the tenant of every rating profile (handy to
    load CGRateS's sample plans, all written for ``cgrates.org``, into any tenant).
    """
    directory = Path(path)
    if not directory.is_dir():
        raise TariffPlanError(str(directory), None, "not a directory")

    destinations = _load_destinations(_read(directory, DESTINATIONS))
    timings, action_only = _load_timings(_read(directory, TIMINGS, required=False))
    rates = _load_rates(_read(directory, RATES))
    destination_rates = _load_destination_rates(
        _read(directory, DESTINATION_RATES), destinations, rates
    )
    bindings = _load_rating_plans(
        _read(directory, RATING_PLANS), destination_rates, timings, action_only
    )
    plan_ids = {b.plan_id for b in bindings}
    profiles = _load_rating_profiles(
        _read(directory, RATING_PROFILES), plan_ids, tenant
    )

    try:
        return TariffPlan(
            destinations=destinations.values(),
            timings=timings.values(),
            rates=rates.values(),
            destination_rates=[
                dr for rows in destination_rates.values() for dr in rows
            ],
            rating_plan_bindings=bindings,
            rating_profiles=profiles,
        )
    except TariffPlanError as exc:  # pragma: no cover - references checked above
        raise TariffPlanError(str(directory), None, exc.message) from exc


# --------------------------------------------------------------------------- reading


def _read(directory: Path, name: str, *, required: bool = True) -> list[_Row]:
    file_path = directory / name
    if not file_path.is_file():
        if required:
            raise TariffPlanError(str(file_path), None, "file not found")
        return []
    rows: list[_Row] = []
    # utf-8-sig: spreadsheets like to prepend a BOM.
    with open(file_path, encoding="utf-8-sig", newline="") as handle:
        for line_no, line in enumerate(handle, start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            try:
                fields = next(csv.reader([line], skipinitialspace=True))
            except csv.Error as exc:
                raise TariffPlanError(
                    str(file_path), line_no, f"malformed CSV: {exc}"
                ) from None
            rows.append(_Row(str(file_path), line_no, [f.strip() for f in fields]))
    return rows


def _columns(row: _Row, minimum: int, maximum: int, names: str) -> list[str]:
    count = len(row.fields)
    if not minimum <= count <= maximum:
        expected = str(maximum) if minimum == maximum else f"{minimum} to {maximum}"
        raise row.error(f"expected {expected} columns ({names}), found {count}")
    return row.fields + [""] * (maximum - count)


def _required(row: _Row, value: str, what: str) -> str:
    if not value:
        raise row.error(f"{what} is empty")
    return value


def _decimal(
    row: _Row, value: str, what: str, *, default: Decimal | None = None
) -> Decimal:
    if value == "" and default is not None:
        return default
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise row.error(f"{what} {value!r} is not a number") from None
    if not number.is_finite():
        raise row.error(f"{what} {value!r} is not a finite number")
    return number


def _duration(row: _Row, value: str, what: str) -> int:
    try:
        units = parse_duration(value)
    except ValueError:
        raise row.error(f"{what} {value!r} is not a duration") from None
    if units < 0:
        raise row.error(f"{what} {value!r} is negative")
    return units


def _int_set(row: _Row, value: str, what: str, lo: int, hi: int) -> frozenset[int]:
    if value in ("", ANY):
        return frozenset()
    out = set()
    for item in value.split(";"):
        item = item.strip()
        try:
            number = int(item)
        except ValueError:
            raise row.error(f"{what} item {item!r} is not an integer") from None
        if not lo <= number <= hi:
            raise row.error(f"{what} item {number} is outside {lo}..{hi}")
        out.add(number)
    return frozenset(out)


def _clock_time(row: _Row, value: str) -> time:
    parts = value.split(":")
    if len(parts) != 3:
        raise row.error(f"time {value!r} is not HH:MM:SS")
    try:
        hour, minute, second = (int(p) for p in parts)
        return time(hour, minute, second)
    except ValueError:
        raise row.error(f"time {value!r} is not a valid HH:MM:SS") from None


# --------------------------------------------------------------------------- files


def _load_destinations(rows: list[_Row]) -> dict[str, Destination]:
    prefixes: dict[str, list[str]] = {}
    first_row: dict[str, _Row] = {}
    for row in rows:
        dest_id, prefix = _columns(row, 2, 2, "ID, Prefix")
        _required(row, dest_id, "destination ID")
        _required(row, prefix, "prefix")
        if dest_id == ANY:
            raise row.error(f"{ANY} is reserved and cannot be a destination ID")
        bucket = prefixes.setdefault(dest_id, [])
        first_row.setdefault(dest_id, row)
        if prefix not in bucket:
            bucket.append(prefix)
    return {
        dest_id: Destination(dest_id, tuple(items))
        for dest_id, items in prefixes.items()
    }


def _load_timings(
    rows: list[_Row],
) -> tuple[dict[str, Timing], dict[str, tuple[_Row, str]]]:
    """Timings usable for rating, plus the action-only ones (``*asap`` & co).

    ``Timings.csv`` is shared with action plans; a time like ``*asap`` only makes
    sense there, so such timings load fine but cannot be bound in a rating plan.
    """
    timings: dict[str, Timing] = {}
    action_only: dict[str, tuple[_Row, str]] = {}
    for row in rows:
        timing_id, years, months, month_days, week_days, clock = _columns(
            row, 6, 6, "ID, Years, Months, MonthDays, WeekDays, Time"
        )
        _required(row, timing_id, "timing ID")
        if timing_id in timings or timing_id in action_only:
            raise row.error(f"duplicate timing ID {timing_id}")
        year_set = _int_set(row, years, "Years", 1, 9999)
        month_set = _int_set(row, months, "Months", 1, 12)
        day_set = _int_set(row, month_days, "MonthDays", 1, 31)
        # CGRateS reads weekdays modulo 7: both 0 and 7 are Sunday (ISO 7 here).
        week_set = frozenset(
            7 if d == 0 else d for d in _int_set(row, week_days, "WeekDays", 0, 7)
        )
        if clock.startswith("*") and clock != ANY:
            action_only[timing_id] = (row, clock)
            continue
        start, end = time(0), None
        if clock not in ("", ANY):
            parts = clock.split(";")
            if len(parts) > 2:
                raise row.error(f"time {clock!r} is not HH:MM:SS or HH:MM:SS;HH:MM:SS")
            start = _clock_time(row, parts[0])
            if len(parts) == 2:
                end = _clock_time(row, parts[1])
        try:
            timings[timing_id] = Timing(
                timing_id, year_set, month_set, day_set, week_set, start, end
            )
        except TariffPlanError as exc:
            raise row.error(exc.message) from None
    return timings, action_only


def _load_rates(rows: list[_Row]) -> dict[str, Rate]:
    slots: dict[str, list[RateSlot]] = {}
    for row in rows:
        rate_id, connect_fee, price, unit, increment, group_start = _columns(
            row,
            6,
            6,
            "ID, ConnectFee, Rate, RateUnit, RateIncrement, GroupIntervalStart",
        )
        _required(row, rate_id, "rate ID")
        try:
            slot = RateSlot(
                connect_fee=_decimal(
                    row, connect_fee, "ConnectFee", default=Decimal(0)
                ),
                rate=_decimal(row, _required(row, price, "Rate"), "Rate"),
                rate_unit=_duration(row, unit, "RateUnit"),
                rate_increment=_duration(row, increment, "RateIncrement"),
                group_interval_start=_duration(row, group_start, "GroupIntervalStart"),
            )
        except TariffPlanError as exc:
            if exc.file is not None:
                raise
            raise row.error(exc.message) from None
        slots.setdefault(rate_id, []).append(slot)
    return {rate_id: Rate(rate_id, tuple(items)) for rate_id, items in slots.items()}


def _load_destination_rates(
    rows: list[_Row], destinations: dict[str, Destination], rates: dict[str, Rate]
) -> dict[str, list[DestinationRate]]:
    grouped: dict[str, list[DestinationRate]] = {}
    for row in rows:
        dr_id, dest_id, rate_id, method, decimals, max_cost, strategy = _columns(
            row,
            5,
            7,
            "ID, DestinationsID, RatesID, RoundingMethod, RoundingDecimals, MaxCost, MaxCostStrategy",
        )
        _required(row, dr_id, "destination rate ID")
        _required(row, dest_id, "DestinationsID")
        _required(row, rate_id, "RatesID")
        if dest_id != ANY and dest_id not in destinations:
            raise row.error(
                f"destination rate {dr_id} references unknown destination {dest_id}"
            )
        if rate_id not in rates:
            raise row.error(
                f"destination rate {dr_id} references unknown rate {rate_id}"
            )
        if method not in ROUNDING_METHODS:
            raise row.error(
                f"unknown RoundingMethod {method!r} (use *up, *middle or *down)"
            )
        try:
            rounding_decimals = int(decimals)
        except ValueError:
            raise row.error(
                f"RoundingDecimals {decimals!r} is not an integer"
            ) from None
        if strategy not in MAX_COST_STRATEGIES:
            raise row.error(
                f"unknown MaxCostStrategy {strategy!r} (use *free or *disconnect)"
            )
        limit = _decimal(row, max_cost, "MaxCost", default=Decimal(0))
        if limit < 0:
            raise row.error(f"MaxCost {max_cost!r} is negative")
        try:
            grouped.setdefault(dr_id, []).append(
                DestinationRate(
                    id=dr_id,
                    destination_id=dest_id,
                    rate_id=rate_id,
                    rounding_method=method,
                    rounding_decimals=rounding_decimals,
                    max_cost=limit,
                    max_cost_strategy=strategy,
                )
            )
        except TariffPlanError as exc:
            raise row.error(exc.message) from None
    return grouped


def _load_rating_plans(
    rows: list[_Row],
    destination_rates: dict[str, list[DestinationRate]],
    timings: dict[str, Timing],
    action_only: dict[str, tuple[_Row, str]],
) -> list[RatingPlanBinding]:
    bindings: list[RatingPlanBinding] = []
    for row in rows:
        plan_id, dr_id, timing_id, weight = _columns(
            row, 4, 4, "ID, DestinationRatesID, TimingID, Weight"
        )
        _required(row, plan_id, "rating plan ID")
        if dr_id not in destination_rates:
            raise row.error(
                f"rating plan {plan_id} references unknown destination rate {dr_id}"
            )
        if timing_id != ANY and timing_id not in timings:
            if timing_id in action_only:
                timing_row, value = action_only[timing_id]
                raise row.error(
                    f"rating plan {plan_id} uses timing {timing_id} whose time {value!r} "
                    f"({timing_row.file}:{timing_row.line_no}) only applies to action plans"
                )
            raise row.error(
                f"rating plan {plan_id} references unknown timing {timing_id}"
            )
        bindings.append(
            RatingPlanBinding(
                plan_id=plan_id,
                destination_rate_id=dr_id,
                timing_id=timing_id,
                weight=_decimal(row, _required(row, weight, "Weight"), "Weight"),
            )
        )
    return bindings


def _activation_time(row: _Row, value: str) -> datetime:
    text = _required(row, value, "ActivationTime")
    try:
        if text.isdigit():  # unix seconds, accepted by CGRateS's ParseTimeDetectLayout
            return datetime.fromtimestamp(int(text), tz=UTC)
        moment = datetime.fromisoformat(
            text[:-1] + "+00:00" if text.endswith("Z") else text
        )
    except (ValueError, OverflowError):
        raise row.error(f"ActivationTime {value!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _load_rating_profiles(
    rows: list[_Row], plan_ids: set[str], tenant: str | None
) -> list[RatingProfile]:
    profiles: list[RatingProfile] = []
    for row in rows:
        row_tenant, category, subject, activation, plan_id, fallback = _columns(
            row,
            5,
            6,
            "Tenant, Category, Subject, ActivationTime, RatingPlanID, FallbackSubject",
        )
        _required(row, row_tenant, "Tenant")
        _required(row, category, "Category")
        _required(row, subject, "Subject")
        _required(row, plan_id, "RatingPlanID")
        if plan_id not in plan_ids:
            raise row.error(f"rating profile references unknown rating plan {plan_id}")
        profiles.append(
            RatingProfile(
                tenant=tenant if tenant is not None else row_tenant,
                category=category,
                subject=subject,
                activation_time=_activation_time(row, activation),
                rating_plan_id=plan_id,
                fallback_subjects=tuple(
                    s.strip() for s in fallback.split(";") if s.strip()
                ),
            )
        )
    return profiles
