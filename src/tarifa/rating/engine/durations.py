"""Duration parsing with CGRateS semantics, as exact integers.

All durations in the engine are integers counting *base units*: nanoseconds for
time-based usage (CGRateS stores every usage as a Go ``time.Duration``, i.e.
nanoseconds), and plain units for data/SMS/other usage (CGRateS stores 1024 bytes
as ``time.Duration(1024)``, so one "nanosecond" is one unit).  Keeping the same
representation lets a rate written as ``RateUnit=1024`` for data and ``60s`` for
voice go through exactly the same arithmetic, as it does in CGRateS.

The syntax follows ``utils.ParseDurationWithNanosecs`` in CGRateS: a bare number is
taken as base units (``"60"`` is 60 ns for voice, 60 units for data), anything else
is Go's ``time.ParseDuration`` syntax (``"1m20s"``, ``"2.5s"``, ``"100ms"``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

__all__ = [
    "NANOSECOND",
    "MICROSECOND",
    "MILLISECOND",
    "SECOND",
    "MINUTE",
    "HOUR",
    "parse_duration",
    "to_units",
    "format_duration",
]

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "µs": MICROSECOND,  # U+00B5 micro sign, accepted by Go
    "μs": MICROSECOND,  # U+03BC greek mu, accepted by Go
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
# Longer unit names first so that "ms" is not read as "m" followed by "s".
_COMPONENT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_BARE_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def parse_duration(text: str) -> int:
    """Parse a CGRateS duration string into integer base units (ns for time).

    >>> parse_duration("1m20s") == 80 * SECOND
    True
    >>> parse_duration("60")   # bare number: base units, as in CGRateS
    60
    >>> parse_duration("")     # CGRateS treats an empty field as zero
    0

    Fractions are truncated towards zero at nanosecond resolution, which is what
    Go's ``time.ParseDuration`` does (``"2.5ns"`` is 2 ns).
    """
    if not isinstance(text, str):
        raise TypeError(f"duration must be a string, not {type(text).__name__}")
    s = text.strip()
    if s == "":
        return 0
    if _BARE_NUMBER.fullmatch(s):
        return int(Decimal(s))  # int() truncates towards zero, like Go
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":  # Go accepts a lone "0" without unit
        return 0
    total = Decimal(0)
    pos = 0
    for match in _COMPONENT.finditer(s):
        if match.start() != pos:
            break
        try:
            total += Decimal(match.group(1)) * _UNITS[match.group(2)]
        except InvalidOperation:  # pragma: no cover - regex guarantees digits
            raise ValueError(f"invalid duration {text!r}") from None
        pos = match.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"invalid duration {text!r}")
    return sign * int(total)


def to_units(usage: int | timedelta | str) -> int:
    """Convert a usage given by a caller into integer base units.

    * ``int``: already base units (ns for voice, units for data/SMS);
    * ``timedelta``: converted exactly to nanoseconds;
    * ``str``: parsed with :func:`parse_duration`.

    Floats are refused on purpose: a float usage would make "exact" billing depend
    on binary rounding.
    """
    if isinstance(usage, bool):
        raise TypeError("usage must be an int, a timedelta or a duration string")
    if isinstance(usage, int):
        return usage
    if isinstance(usage, timedelta):
        return (
            usage.days * 86_400 + usage.seconds
        ) * SECOND + usage.microseconds * MICROSECOND
    if isinstance(usage, str):
        return parse_duration(usage)
    raise TypeError(
        f"usage must be an int, a timedelta or a duration string, not {type(usage).__name__}"
    )


def format_duration(units: int) -> str:
    """Render base units the way Go prints a ``time.Duration`` (``1m20s``, ``150ms``).

    Only used for human-readable messages and reprs.
    """
    if units == 0:
        return "0s"
    sign = "-" if units < 0 else ""
    n = abs(units)
    if n < SECOND:
        for unit, size in (("ms", MILLISECOND), ("µs", MICROSECOND)):
            if n >= size:
                return f"{sign}{_trim(Decimal(n) / size)}{unit}"
        return f"{sign}{n}ns"
    hours, rest = divmod(n, HOUR)
    minutes, rest = divmod(rest, MINUTE)
    seconds = _trim(Decimal(rest) / SECOND)
    out = sign
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + f"{seconds}s"


def _trim(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text
