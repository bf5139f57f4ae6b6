"""Units a person reads, available in every template without ``{% load %}`` (a builtin library,
see settings.TEMPLATES): money in the currency's units, durations, data sizes, yes/no.

    {{ amount|money:currency }}       4,032.26        (rounded half-up to the minor unit)
    {{ amount|money_code:currency }}  4,032.26 USD
    {{ amount|money_exact:currency }} 4032.258064     (the ledger's precise figure, e.g. in a title=)
    {{ seconds|duration }}            1m29s
    {{ nanoseconds|duration_ns }}     1m29s
    {{ bytes|data_size }}             1.5 MB
    {{ flag|yes_no }}                 Yes / No
"""

from decimal import Decimal, InvalidOperation

from django import template

from tarifa.kernel.money import CURRENCIES, format_amount
from tarifa.kernel.units import format_bytes, format_seconds, yes_no as _yes_no

register = template.Library()


@register.filter
def money(amount, currency=""):
    """The amount in the currency's units, without the code: "4.03"."""
    return format_amount(amount, currency, code=False)


@register.filter
def money_code(amount, currency=""):
    """The amount in the currency's units with its code: "4.03 USD"."""
    return format_amount(amount, currency)


@register.filter
def money_exact(amount, currency=""):
    """The precise amount (ledger screens, tooltips): at least the minor digits, no trailing zeros beyond."""
    if amount is None or amount == "":
        return ""
    try:
        amount = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return str(amount)
    minor = CURRENCIES.get(currency, 2)
    exponent = amount.normalize().as_tuple().exponent
    places = max(minor, -exponent if isinstance(exponent, int) else 0)
    return f"{amount:.{places}f}"


@register.filter
def readable(value):
    """A dict as a definition list, a list as a comma list or a table (never "{'…': …}")."""
    from tarifa.web.display import _structure

    return _structure(value)


@register.filter
def duration(seconds):
    return format_seconds(seconds)


@register.filter
def duration_ns(nanoseconds):
    if nanoseconds is None or nanoseconds == "":
        return ""
    return format_seconds(Decimal(int(nanoseconds)) / 10**9)


@register.filter
def data_size(size):
    return format_bytes(size)


@register.filter
def yes_no(value):
    return _yes_no(value)
