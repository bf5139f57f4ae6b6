from decimal import Decimal

import pytest

from tarifa.kernel.errors import ValidationFailed
from tarifa.kernel.ids import uuid7, uuid7_time_ms
from tarifa.kernel.money import parse_amount, round_minor
from tarifa.kernel.numbering import next_number


def test_uuid7_ids_are_time_ordered_and_unique():
    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(i.version == 7 for i in ids)
    assert uuid7_time_ms(ids[-1]) >= uuid7_time_ms(ids[0])


@pytest.mark.parametrize("raw", [1.5, "abc", "NaN", "1e400000", "0.0000001", True])
def test_parse_amount_refuses_floats_and_malformed(raw):
    with pytest.raises(ValidationFailed):
        parse_amount(raw)


@pytest.mark.parametrize("raw", ["1e1000000", "1E2", "1e2", "5_000", "5,000", "\uff11\uff10", "\u0661", "+5", ".5",
                                 "5.", "1 000", "-", "", "0x10", "Infinity", "-NaN", "1" * 30, "9" * 15,
                                 Decimal("1e1000000"), Decimal("Infinity"), Decimal("1" * 30), None, [], {}])
def test_parse_amount_takes_plain_decimal_strings_only(raw):
    """Exponents, separators and non-ASCII digits were accepted (5_000 → 5000); 1e1000000 and
    30-digit strings raised decimal.Overflow / InvalidOperation (500)."""
    with pytest.raises(ValidationFailed) as err:
        parse_amount(raw)
    assert err.value.code in {"invalid_amount", "amount_too_large"}
    assert list(err.value.fields) == ["amount"]


@pytest.mark.parametrize("raw,expected", [("10", "10"), ("-4.50", "-4.5"), (" 7.25 ", "7.25"), (12, "12"),
                                          ("99999999999999.999999", "99999999999999.999999"),
                                          ("0.1000000000", "0.1"), (Decimal("1E+2"), "100"), ("007", "7")])
def test_parse_amount_accepts_plain_decimals(raw, expected):
    assert parse_amount(raw) == Decimal(expected)


def test_parse_amount_keeps_the_places_it_was_asked_for():
    assert parse_amount("0.000000000123", places=12) == Decimal("0.000000000123")
    with pytest.raises(ValidationFailed) as err:
        parse_amount("0.0000001")
    assert err.value.code == "amount_too_precise"


def test_parse_amount_accepts_decimal_strings():
    assert parse_amount("10.50") == Decimal("10.500000")
    with pytest.raises(ValidationFailed) as err:
        parse_amount("0", positive=True)
    assert err.value.code == "amount_not_positive"


def test_round_minor_uses_currency_minor_unit():
    assert round_minor(Decimal("1.005"), "USD") == Decimal("1.01")
    assert round_minor(Decimal("100.5"), "JPY") == Decimal("101")
    assert round_minor(Decimal("1.0005"), "KWD") == Decimal("1.001")


@pytest.mark.django_db
def test_numbers_are_sequential_per_series_and_prefixed_with_branch():
    assert next_number("C") == "HQ-C0000001"
    assert next_number("C") == "HQ-C0000002"
    assert next_number("INV", width=5) == "HQ-INV00001"
