"""Usage quantities as operators write them, to and from the engine's integer base units.

Pure functions (no ORM). Base units: nanoseconds for time, bytes for data, items for
counts — what the engine rates. A bare number is *seconds* for time here (the operator's
unit; the engine's own CGRateS-style parser reads a bare number as nanoseconds).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .engine import SECOND, format_duration, parse_duration

TIME, BYTES, COUNT = "time", "bytes", "count"

BYTE_UNITS = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_CLOCK = re.compile(r"^(\d+):([0-5]?\d):([0-5]?\d(?:\.\d+)?)$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)$")


class QuantityError(ValueError):
    pass


def parse_quantity(text, measure: str) -> int:
    """'45s', '1m20s', '90' (seconds), '00:01:30' for time; '10GB', '512MiB', '1024' for bytes; '3' for counts."""
    if isinstance(text, bool):
        raise QuantityError("not a quantity")
    if isinstance(text, int):
        value = str(text)
    else:
        value = str(text or "").strip()
    if not value:
        raise QuantityError("empty quantity")
    if value.startswith("-"):
        raise QuantityError(f"negative quantity {value!r}")
    if measure == TIME:
        try:
            seconds = Decimal(value)
        except InvalidOperation:
            seconds = None
        if seconds is not None:
            if not seconds.is_finite():
                raise QuantityError(f"{value!r} is not a duration")
            return int(seconds * SECOND)
        clock = _CLOCK.match(value)
        if clock:
            h, m, s = clock.groups()
            return (int(h) * 3600 + int(m) * 60) * SECOND + int(Decimal(s) * SECOND)
        try:
            return parse_duration(value)
        except ValueError:
            raise QuantityError(f"{value!r} is not a duration (use 45s, 1m20s, 90 or 00:01:30)") from None
    if measure == BYTES:
        match = _SIZE.match(value)
        if not match:
            raise QuantityError(f"{value!r} is not a data size (use 1024, 10MB, 1.5GiB)")
        number, unit = match.groups()
        factor = BYTE_UNITS.get(unit.lower() or "b")
        if factor is None:
            raise QuantityError(f"unknown data unit {unit!r} (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
        return int(Decimal(number) * factor)
    try:
        count = Decimal(value)
    except InvalidOperation:
        raise QuantityError(f"{value!r} is not a number") from None
    if not count.is_finite() or count != count.to_integral_value():
        raise QuantityError(f"{value!r} is not a whole number")
    return int(count)


def format_quantity(units: int | None, measure: str) -> str:
    if units is None:
        return ""
    if measure == TIME:
        return format_duration(units)
    if measure == BYTES:
        for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
            if abs(units) >= size:
                text = format((Decimal(units) / size).quantize(Decimal("0.01")).normalize(), "f")
                return f"{text} {unit}"
        return f"{units} B"
    return str(units)


def format_usage(units: int | None, usage_type: str) -> str:
    """Format with the measure of a usage type (looked up, cached, in the database)."""
    from .selectors import measure_of

    return format_quantity(units, measure_of(usage_type))
