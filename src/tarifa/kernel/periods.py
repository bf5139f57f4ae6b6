"""Billing periods ("YYYY-MM"): the one parser, used by the API, the UI, the CLI and the services.

A period is a calendar month written `YYYY-MM` with ASCII digits, in the years
`MIN_YEAR`–`MAX_YEAR`: "0267-12" is a typing error, not a period of the year 267, and
"9999-12" would end in the year 10000, which no date can hold.
"""

import re

from .errors import ValidationFailed

MIN_YEAR, MAX_YEAR = 2000, 2099
PATTERN = re.compile(r"(\d{4})-(\d{2})", re.ASCII)


def parse_period(value, *, field: str = "period") -> str:
    text = value.strip() if isinstance(value, str) else ""
    match = PATTERN.fullmatch(text)
    if not match or not 1 <= int(match[2]) <= 12:
        shown = text if len(text) <= 20 else text[:20] + "…"
        raise ValidationFailed(f"{field}: {shown!r} is not a period: expected YYYY-MM.", code="invalid_period",
                               fields={field: ["YYYY-MM, e.g. 2026-10."]})
    if not MIN_YEAR <= int(match[1]) <= MAX_YEAR:
        raise ValidationFailed(f"{field}: {text} is outside {MIN_YEAR}–{MAX_YEAR}.", code="invalid_period",
                               fields={field: [f"A month of the years {MIN_YEAR}–{MAX_YEAR}."]})
    return text
