"""The one display rule for amounts and usage a person reads."""

from decimal import Decimal

from django.template import Context, Template

from tarifa.kernel.money import format_amount
from tarifa.kernel.units import format_bytes, format_seconds, yes_no


def test_amounts_in_the_currencys_units_rounded_half_up():
    assert format_amount(Decimal("4.032258"), "USD") == "4.03 USD"
    assert format_amount(Decimal("1.6338000000"), "USD", code=False) == "1.63"
    assert format_amount(Decimal("0.005"), "USD") == "0.01 USD"  # half-up
    assert format_amount(Decimal("-0.004"), "USD") == "0.00 USD"  # no "-0.00"
    assert format_amount(Decimal("1234567.891"), "EUR") == "1,234,567.89 EUR"
    assert format_amount(Decimal("1234567.891"), "EUR", grouping=False, code=False) == "1234567.89"
    assert format_amount(Decimal("12.5"), "JPY") == "13 JPY"
    assert format_amount(Decimal("1.2345"), "KWD") == "1.235 KWD"
    assert format_amount(Decimal("4.5"), "") == "4.50"
    assert format_amount(None, "USD") == ""


def test_durations_and_data_sizes():
    assert format_seconds(89) == "1m29s"
    assert format_seconds(3723) == "1h02m03s"
    assert format_seconds(0) == "0s"
    assert format_seconds(Decimal("1.5")) == "1.5s"
    assert format_bytes(1_500_000) == "1.5 MB"
    assert format_bytes(2 * 10**9) == "2 GB"
    assert format_bytes(512) == "512 B"
    assert yes_no(True) == "Yes" and yes_no(False) == "No" and yes_no(None) == ""


def test_template_filters_are_builtin():
    out = Template("{{ a|money:'USD' }}|{{ a|money_code:'USD' }}|{{ a|money_exact:'USD' }}|{{ s|duration }}|"
                   "{{ ns|duration_ns }}|{{ b|data_size }}|{{ f|yes_no }}").render(Context(
                       {"a": Decimal("4.032258"), "s": 89, "ns": 89 * 10**9, "b": 2_500_000, "f": False}))
    assert out == "4.03|4.03 USD|4.032258|1m29s|1m29s|2.5 MB|No"
