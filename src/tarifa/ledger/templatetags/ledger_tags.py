"""The ledger's templates load this library for its historic name; the filters are the shared ones
(tarifa.web.templatetags.units): ``{{ amount|money:currency }}`` in the currency's units (4.03),
``{{ amount|money_exact:currency }}`` the ledger's precise figure (4.032258), e.g. in a title."""

from django import template

from tarifa.web.templatetags.units import money, money_code, money_exact

register = template.Library()
register.filter("money", money)
register.filter("money_code", money_code)
register.filter("money_exact", money_exact)
