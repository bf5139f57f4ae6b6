"""{{ amount|money:currency }}: an exact amount, shown with at least the currency's minor digits
(12.500000 USD → 12.50; 0.004 USD stays 0.004 — the ledger is exact, the screen does not round)."""

from decimal import Decimal

from django import template

from tarifa.kernel.money import CURRENCIES

register = template.Library()


@register.filter
def money(amount, currency=""):
    if amount is None or amount == "":
        return ""
    amount = Decimal(amount)
    minor = CURRENCIES.get(currency, 2)
    exponent = amount.normalize().as_tuple().exponent
    places = max(minor, -exponent if isinstance(exponent, int) else 0)
    return f"{amount:,.{places}f}"
