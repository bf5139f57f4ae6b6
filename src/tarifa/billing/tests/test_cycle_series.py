"""A bill cycle's invoice series may not take a series that numbers other records."""

import pytest

from tarifa.billing import services
from tarifa.kernel.errors import ValidationFailed

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("series", ["P", "S", "SH", "CN"])
def test_a_cycle_cannot_number_invoices_in_another_records_series(series):
    with pytest.raises(ValidationFailed) as err:
        services.create_cycle(actor="test", code=f"X{series}", name="X", day_of_month=1, series=series)
    assert err.value.code == "reserved_series"


def test_a_cycle_may_use_a_free_series_or_the_invoice_one():
    assert services.create_cycle(actor="test", code="FREE", name="Free", day_of_month=1, series="INV").series == "INV"
    cycle = services.create_cycle(actor="test", code="DEF", name="Default", day_of_month=1, series="I")
    with pytest.raises(ValidationFailed):
        services.update_cycle(cycle, actor="test", series="P")
