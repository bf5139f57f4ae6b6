"""Selling, renting and installments of devices through the API and the subscription's screen;
a device returned before it is paid off stops its installments."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from tarifa.inventory import services as inventory
from tarifa.inventory.models import Device
from tarifa.inventory.selectors import check_inventory
from tarifa.kernel.clock import travel_to
from tarifa.ledger.models import Transfer
from tarifa.subscriptions import devices
from tarifa.subscriptions.models import DeviceAgreement

from .helpers import ACTOR, receive_routers, run_events, subscription_and_warehouse

pytestmark = pytest.mark.django_db
MARCH = dt.datetime(2026, 3, 10, 9, tzinfo=dt.timezone.utc)


def fees(sub, fee):
    return sorted((t.tags["period"], t.amount) for t in Transfer.objects.filter(
        reference_id=str(sub.pk), kind="charge", tags__fee=fee))


@pytest.fixture
def setup():
    with travel_to(MARCH):
        sub, warehouse = subscription_and_warehouse()
        receive_routers(warehouse, ["A-1", "A-2", "A-3", "A-4"])
    return sub, warehouse


def test_sale_rent_and_installments_through_the_api(setup, api, admin_user):
    sub, _warehouse = setup
    client = api(admin_user)
    url = f"/api/v1/subscriptions/{sub.pk}/devices/"
    with travel_to(MARCH):
        # Money moves: the key is required, and a retry replays the first answer.
        assert client.post(url, {"serial": "A-1", "agreement": "sale", "amount": "120.00"},
                           format="json").status_code == 400
        sale = client.post(url, {"serial": "A-1", "agreement": "sale", "amount": "120.00"}, format="json",
                           HTTP_IDEMPOTENCY_KEY="sale-1")
        assert sale.status_code == 201, sale.content
        again = client.post(url, {"serial": "A-1", "agreement": "sale", "amount": "120.00"}, format="json",
                            HTTP_IDEMPOTENCY_KEY="sale-1")
        assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
        rent = client.post(url, {"serial": "A-2", "agreement": "rent", "amount": "3.10"}, format="json",
                           HTTP_IDEMPOTENCY_KEY="rent-1")
        assert rent.status_code == 201, rent.content
        # Installments need the months; then 3 of them, the first charged now.
        no_months = client.post(url, {"serial": "A-3", "agreement": "installments", "amount": "90"}, format="json",
                                HTTP_IDEMPOTENCY_KEY="inst-0")
        assert no_months.status_code == 400
        inst = client.post(url, {"serial": "A-3", "agreement": "installments", "amount": "90", "months": 3},
                           format="json", HTTP_IDEMPOTENCY_KEY="inst-1")
        assert inst.status_code == 201, inst.content
        assert inst.json()["installments_left"] == 2
        # A device rented already cannot be rented again: 409.
        twice = client.post(url, {"serial": "A-2", "agreement": "rent", "amount": "3.10"}, format="json",
                            HTTP_IDEMPOTENCY_KEY="rent-2")
        assert twice.status_code == 409
        unknown = client.post(url, {"serial": "NOPE", "agreement": "sale", "amount": "1"}, format="json",
                              HTTP_IDEMPOTENCY_KEY="x-1")
        assert unknown.status_code in (404, 409, 422, 400)
    listed = client.get(url).json()
    assert sorted((a["serial"], a["agreement"]) for a in listed) == [
        ("A-1", "sale"), ("A-2", "rent"), ("A-3", "installments")]
    assert {a["location"] for a in listed} == {Device.objects.get(serial="A-1").location.code}
    assert fees(sub, "device_sale") == [("2026-03-10", Decimal("120.000000"))]
    assert fees(sub, "device_rent") == [("2026-03-10/2026-03-10", Decimal("0.100000"))]
    assert fees(sub, "device_installment") == [("2026-03-10", Decimal("30.000000"))]
    assert DeviceAgreement.objects.count() == 3
    assert check_inventory()["ok"]


def test_a_user_without_the_permission_may_list_but_not_sell(setup, api, make_user):
    sub, _warehouse = setup
    viewer = make_user("subscriptions.view_subscription", "subscriptions.view_deviceagreement",
                       username="viewer")
    client = api(viewer)
    url = f"/api/v1/subscriptions/{sub.pk}/devices/"
    assert client.get(url).status_code == 200
    assert client.post(url, {"serial": "A-1", "agreement": "sale", "amount": "1"}, format="json",
                       HTTP_IDEMPOTENCY_KEY="k").status_code == 403
    assert not DeviceAgreement.objects.exists()


def test_installments_stop_when_the_device_is_returned(setup):
    """The rule (docs/inventory.md): installments due up to the day of return stay charged, none after it."""
    sub, warehouse = setup
    with travel_to(MARCH):
        plan = devices.sell_in_installments(sub, actor=ACTOR, serial="A-4", total=Decimal("120.00"), installments=6)
    devices.charge_device_fees(as_of=dt.date(2026, 4, 20))  # the April installment
    with travel_to(dt.datetime(2026, 5, 5, 9, tzinfo=dt.timezone.utc)):
        inventory.return_device(actor=ACTOR, serial="A-4", to_location=warehouse, condition="used")
        run_events()
    devices.charge_device_fees(as_of=dt.date(2026, 12, 31))
    plan.refresh_from_db()
    assert plan.ended_on == dt.date(2026, 5, 5) and plan.installments_charged == 2
    assert fees(sub, "device_installment") == [("2026-03-10", Decimal("20.000000")),
                                               ("2026-04-10", Decimal("20.000000"))]


def test_rent_a_device_through_the_subscription_form(setup, staff_client, admin_user):
    sub, _warehouse = setup
    client = staff_client(admin_user)
    base = reverse("subscriptions:subscription_detail", args=[sub.pk]).rstrip("/")
    with travel_to(MARCH):
        page = client.get(f"{base}/do/rent-device/")
        assert page.status_code == 200
        bad = client.post(f"{base}/do/rent-device/", {"serial": "NOPE", "amount": "3"})
        assert bad.status_code == 200 and not DeviceAgreement.objects.exists()
        done = client.post(f"{base}/do/rent-device/",
                           {"serial": "A-2", "amount": "3.10"})
        assert done.status_code == 302, done.content[:2000]
        inst = client.post(f"{base}/do/device-installments/",
                           {"serial": "A-3", "amount": "60", "months": "6"})
        assert inst.status_code == 302
    detail = client.get(done["Location"]).content.decode()
    assert 'data-serial="A-2"' in detail and 'data-serial="A-3"' in detail
    assert DeviceAgreement.objects.get(device__serial="A-2").mode == "rent"
    assert fees(sub, "device_installment") == [("2026-03-10", Decimal("10.000000"))]
