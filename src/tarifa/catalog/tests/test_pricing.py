"""Pure price arithmetic (no database)."""

import datetime as dt
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tarifa.catalog import pricing


@given(fee=st.decimals(min_value=0, max_value=100000, places=6, allow_nan=False),
       year=st.integers(2000, 2100), month=st.integers(1, 12))
def test_day_shares_of_a_month_add_up_to_the_fee_exactly(fee, year, month):
    first = dt.date(year, month, 1)
    n = pricing.days_in_month(first)
    total = sum(pricing.day_share(fee, first.replace(day=d)) for d in range(1, n + 1))
    assert total == pricing.q6(fee)
    assert pricing.share_of_days(fee, first, first.replace(day=n)) == pricing.q6(fee)


def test_recurring_amounts_by_rule():
    day = dt.date(2025, 1, 15)
    assert pricing.recurring_amount("day", "by_day", Decimal("0.5"), day) == Decimal("0.500000")
    assert pricing.recurring_amount("month", "by_day", Decimal("31"), day) == Decimal("1.000000")
    assert pricing.recurring_amount("month", "none", Decimal("31"), day) == Decimal("31.000000")
    assert pricing.period_key("month", "none", day) == "2025-01"
    assert pricing.period_key("month", "by_day", day) == "2025-01-15"


def test_price_table():
    table = pricing.PriceTable([(dt.date(2025, 1, 15), "b"), (dt.date(2025, 1, 1), "a")])
    assert table.value_on(dt.date(2024, 12, 31)) is None
    assert table.value_on(dt.date(2025, 1, 14)) == "a"
    assert table.value_on(dt.date(2025, 1, 15)) == "b"


def test_taxes_inclusive_and_exclusive():
    net, lines = pricing.taxes_for(Decimal("120"), [pricing.TaxRate("VAT", Decimal(20), True)])
    assert net == Decimal("100.000000") and lines[0].tax == Decimal("20.000000")
    net, lines = pricing.taxes_for(Decimal("100"), [pricing.TaxRate("LEVY", Decimal(2), False)])
    assert net == Decimal(100) and lines[0].tax == Decimal("2.000000")
    amount = Decimal("10.01")
    net, lines = pricing.taxes_for(amount, [pricing.TaxRate("A", Decimal(7), True), pricing.TaxRate("B", Decimal(13), True)])
    assert net + sum(line.tax for line in lines) == amount
