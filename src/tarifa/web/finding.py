"""Helpers for apps' finders (web/search.py): numbers and phone numbers as people type them."""

import re

from django.db.models import F, Func, Q, Value

_DIGITS = re.compile(r"\D")
PHONE_QUERY = re.compile(r"^\+?[\d\s().\-/]{5,}$")


def number_filter(field: str, query: str) -> Q:
    """A human number ("HQ-I0000012") typed whole, or its end ("I0000012", "0000012", "12" with 3+ chars)."""
    query = query.strip()
    cond = Q(**{f"{field}__iexact": query})
    if len(query) >= 3 and any(c.isdigit() for c in query):
        cond |= Q(**{f"{field}__iendswith": query})
    return cond


def phone_digits(query: str) -> str | None:
    """The digits of a query that looks like a phone number (5+ digits, any notation), else None."""
    if not PHONE_QUERY.match(query.strip()):
        return None
    digits = _DIGITS.sub("", query)
    return digits if len(digits) >= 5 else None


def digits_of(field: str):
    """An expression: the field's digits only (for matching phone numbers in any notation)."""
    return Func(F(field), Value(r"\D"), Value(""), Value("g"), function="regexp_replace")


def phone_filter(queryset, field: str, query: str):
    """Records whose phone `field` ends with the query's digits ("555-0199-001" finds +15550199001),
    or none when the query is not a phone number. A leading 0 (trunk prefix) is dropped."""
    digits = phone_digits(query)
    if digits is None:
        return queryset.none()
    digits = digits.lstrip("0") or digits
    return queryset.exclude(**{field: ""}).annotate(_digits=digits_of(field)).filter(_digits__endswith=digits)
