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
