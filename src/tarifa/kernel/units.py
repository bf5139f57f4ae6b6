"""Quantities as a person reads them (pure functions, no ORM): call time as 1m29s, data in
kB/MB/GB (decimal, 1 MB = 1,000,000 bytes, as the rating units do), flags as Yes/No.
Money is in `tarifa.kernel.money.format_amount`."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.utils.translation import gettext as _


def _decimal(value):
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def format_seconds(seconds) -> str:
    """89 → "1m29s", 3723 → "1h02m03s", 0 → "0s", 1.5 → "1.5s" (whole seconds beyond a minute)."""
    value = _decimal(seconds)
    if value is None:
        return "" if seconds is None else str(seconds)
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value < 60:
        text = format(value.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP).normalize(), "f")
        return f"{sign}{text}s"
    total = int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes:02d}m{secs:02d}s"
    return f"{sign}{minutes}m{secs:02d}s"


def format_bytes(size) -> str:
    """1_500_000 → "1.5 MB", 2_000_000_000 → "2 GB", 512 → "512 B"."""
    value = _decimal(size)
    if value is None:
        return "" if size is None else str(size)
    for unit, factor in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if abs(value) >= factor:
            text = format((value / factor).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP).normalize(), "f")
            return f"{text} {unit}"
    return f"{int(value)} B"


def yes_no(value) -> str:
    if value is None or value == "":
        return ""
    return _("Yes") if value else _("No")
