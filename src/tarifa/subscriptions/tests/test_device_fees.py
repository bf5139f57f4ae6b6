"""Sale, rent and installments of devices book the right fees; returning a rented device ends
the rent prorated to the day."""

import datetime as dt
from decimal import Decimal

import pytest

from tarifa.inventory import services as inventory
from tarifa.inventory.selectors import check_inventory
from tarifa.kernel.clock import travel_to
from tarifa.ledger.models import Transfer
from tarifa.subscriptions import devices

from .helpers import ACTOR, receive_routers, run_events, subscription_and_warehouse  # noqa: F401

pytestmark = pytest.mark.django_db


def fees(sub, fee):
    return sorted((t.tags["period"], t.amount) for t in Transfer.objects.filter(
        reference_id=str(sub.pk), kind="charge", tags__fee=fee))


@pytest.fixture
def setup():
    with travel_to(dt.datetime(2026, 3, 10, 9, tzinfo=dt.timezone.utc)):
        sub, warehouse = subscription_and_warehouse()
        receive_routers(warehouse, ["SALE-1", "RENT-1", "INST-1"])
    return sub, warehouse


def test_sale_and_rent_book_the_right_fees_with_proration_on_return(setup):
    sub, warehouse = setup
    with travel_to(dt.datetime(2026, 3, 10, 9, tzinfo=dt.timezone.utc)):
        devices.sell_device(sub, actor=ACTOR, serial="SALE-1", price=Decimal("120.00"), source=warehouse)
        rent = devices.rent_device(sub, actor=ACTOR, serial="RENT-1", monthly=Decimal("3.10"), source=warehouse)
    assert fees(sub, "device_sale") == [("2026-03-10", Decimal("120.000000"))]
    assert fees(sub, "device_rent") == [("2026-03-10/2026-03-10", Decimal("0.100000"))]  # 3.10 × 1/31
    # The daily charge runs on through April; the rent is charged once per day, by month.
    devices.charge_device_fees(as_of=dt.date(2026, 3, 31))
    devices.charge_device_fees(as_of=dt.date(2026, 3, 31))  # again: nothing twice
    devices.charge_device_fees(as_of=dt.date(2026, 4, 12))
    # Returned on 15 April: the event ends the rent, April prorated to 15 of 30 days.
    with travel_to(dt.datetime(2026, 4, 15, 9, tzinfo=dt.timezone.utc)):
        inventory.return_device(actor=ACTOR, serial="RENT-1", to_location=warehouse, condition="used")
        run_events()
    devices.charge_device_fees(as_of=dt.date(2026, 5, 31))  # nothing after the return
    rent.refresh_from_db()
    assert rent.ended_on == dt.date(2026, 4, 15)
    assert fees(sub, "device_rent") == [
        ("2026-03-10/2026-03-10", Decimal("0.100000")), ("2026-03-11/2026-03-31", Decimal("2.100000")),
        ("2026-04-01/2026-04-12", Decimal("1.240000")), ("2026-04-13/2026-04-15", Decimal("0.310000"))]
    # 22 of March's 31 days and 15 of April's 30: 2.20 + 1.55.
    assert sum(a for _p, a in fees(sub, "device_rent")) == Decimal("3.75")
    assert check_inventory()["ok"]


def test_installments_book_n_monthly_fees(setup):
    sub, warehouse = setup
    with travel_to(dt.datetime(2026, 3, 10, 9, tzinfo=dt.timezone.utc)):
        plan = devices.sell_in_installments(sub, actor=ACTOR, serial="INST-1", total=Decimal("100.00"),
                                            installments=3, source=warehouse)
    devices.charge_device_fees(as_of=dt.date(2026, 6, 30))
    devices.charge_device_fees(as_of=dt.date(2026, 7, 30))
    plan.refresh_from_db()
    assert fees(sub, "device_installment") == [("2026-03-10", Decimal("33.330000")),
                                               ("2026-04-10", Decimal("33.330000")),
                                               ("2026-05-10", Decimal("33.340000"))]
    assert plan.installments_charged == 3 and plan.ended_on == dt.date(2026, 6, 30)


def test_rent_proration_is_per_calendar_month():
    assert devices.rent_charges(Decimal("28"), dt.date(2026, 2, 20), dt.date(2026, 3, 1)) == [
        (dt.date(2026, 2, 20), dt.date(2026, 2, 28), Decimal("9.000000")),
        (dt.date(2026, 3, 1), dt.date(2026, 3, 1), Decimal("0.903226"))]
