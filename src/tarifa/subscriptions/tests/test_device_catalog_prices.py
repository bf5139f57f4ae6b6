"""Device agreements take their amounts from the catalog's device price list (issue 13: "sale price,
monthly rent and installment terms as catalog fees"): the item's catalog_ref names a device price,
a given amount overrides it (and the audit trail says so), neither is an error naming the item.
The warehouse refuses a catalog_ref that names no device price (checked through the hook this
layer registers: inventory and catalog may not import each other)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from tarifa.audit.models import AuditEvent
from tarifa.catalog import services as catalog
from tarifa.catalog.models import DevicePrice
from tarifa.inventory import services as inventory
from tarifa.inventory.models import Device, Item
from tarifa.inventory.selectors import check_inventory
from tarifa.kernel.clock import travel_to
from tarifa.kernel.errors import ValidationFailed
from tarifa.ledger.models import Transfer
from tarifa.subscriptions import devices
from tarifa.subscriptions.models import DeviceAgreement

from .helpers import ACTOR, receive_routers, subscription_and_warehouse

pytestmark = pytest.mark.django_db
MARCH = dt.datetime(2026, 3, 10, 9, tzinfo=dt.timezone.utc)


def fees(sub, fee):
    return sorted((t.tags["period"], t.amount) for t in Transfer.objects.filter(
        reference_id=str(sub.pk), kind="charge", tags__fee=fee))


def price_note(agreement):
    return AuditEvent.objects.get(object_id=str(agreement.pk), action="price").message


@pytest.fixture
def setup():
    with travel_to(MARCH):
        sub, warehouse = subscription_and_warehouse()
        catalog.create_device_price(actor=ACTOR, code="RT-PRICE", name="Router", currency="EUR",
                                    sale_price="120.00", monthly_rent="3.10", installment_total="90.00",
                                    installment_months=3)
        catalog.create_device_price(actor=ACTOR, code="ONT-PRICE", name="ONT", currency="EUR", monthly_rent="2.00")
        receive_routers(warehouse, ["R-1", "R-2", "R-3", "R-4"], catalog_ref="RT-PRICE")
        ont = inventory.create_item(actor=ACTOR, code="ONT", name="G1 ONT", kind=Item.Kind.ONT, currency="EUR",
                                    cost="20", catalog_ref="ONT-PRICE")
        bare = inventory.create_item(actor=ACTOR, code="STB", name="Old box", kind=Item.Kind.STB, currency="EUR")
        inventory.receive(actor=ACTOR, warehouse=warehouse, item=ont, serials=["O-1"])
        inventory.receive(actor=ACTOR, warehouse=warehouse, item=bare, serials=["B-1"])
    return sub, warehouse


def test_sale_rent_and_installments_take_the_catalog_price(setup):
    sub, _warehouse = setup
    with travel_to(MARCH):
        sale = devices.sell_device(sub, actor=ACTOR, serial="R-1")
        rent = devices.rent_device(sub, actor=ACTOR, serial="R-2")
        plan = devices.sell_in_installments(sub, actor=ACTOR, serial="R-3")
    assert (sale.amount, rent.amount, plan.amount, plan.installments) == (
        Decimal("120"), Decimal("3.10"), Decimal("90"), 3)
    assert fees(sub, "device_sale") == [("2026-03-10", Decimal("120.000000"))]
    assert fees(sub, "device_rent") == [("2026-03-10/2026-03-10", Decimal("0.100000"))]  # 3.10 × 1/31
    assert fees(sub, "device_installment") == [("2026-03-10", Decimal("30.000000"))]
    assert "from catalog price RT-PRICE" in price_note(sale)
    assert "from catalog price RT-PRICE" in price_note(plan)
    assert check_inventory()["ok"]


def test_a_given_amount_overrides_the_catalog_and_is_audited_as_such(setup):
    sub, _warehouse = setup
    with travel_to(MARCH):
        sale = devices.start_agreement(sub, actor=ACTOR, serial="R-1", agreement="sale", amount=Decimal("99.00"))
        # Installments: a given total with the catalog's months; given months with the catalog's total.
        plan = devices.start_agreement(sub, actor=ACTOR, serial="R-2", agreement="installments",
                                       amount=Decimal("60.00"))
        plan6 = devices.start_agreement(sub, actor=ACTOR, serial="R-3", agreement="installments", months=6)
    assert fees(sub, "device_sale") == [("2026-03-10", Decimal("99.000000"))]
    assert (plan.amount, plan.installments) == (Decimal("60"), 3)
    assert (plan6.amount, plan6.installments) == (Decimal("90"), 6)
    note = price_note(sale)
    assert "given by the operator, overriding catalog price RT-PRICE (120" in note
    assert "overriding catalog price RT-PRICE" in price_note(plan6)


@pytest.mark.parametrize("serial, mode, why", [
    ("B-1", "sale", "it has no catalog price"),
    ("O-1", "sale", "its catalog price ONT-PRICE offers no sale price"),
    ("O-1", "installments", "its catalog price ONT-PRICE offers no installment terms"),
])
def test_no_price_and_no_amount_is_an_error_naming_the_item_and_writes_nothing(setup, serial, mode, why):
    sub, warehouse = setup
    with travel_to(MARCH), pytest.raises(ValidationFailed) as err:
        devices.start_agreement(sub, actor=ACTOR, serial=serial, agreement=mode)
    assert err.value.code == "no_catalog_price"
    item = Device.objects.get(serial=serial).item
    assert f"{item} ({item.code})" in err.value.message and why in err.value.message
    assert "amount" in err.value.fields
    assert not DeviceAgreement.objects.exists()
    assert Device.objects.get(serial=serial).location == warehouse  # not installed either
    assert not Transfer.objects.filter(tags__fee__startswith="device").exists()


def test_installments_with_a_total_but_no_months_anywhere_ask_for_the_months(setup):
    sub, _warehouse = setup
    with travel_to(MARCH), pytest.raises(ValidationFailed) as err:
        devices.start_agreement(sub, actor=ACTOR, serial="B-1", agreement="installments", amount=Decimal("50"))
    assert err.value.code == "no_catalog_price" and "months" in err.value.fields


def test_an_archived_or_foreign_currency_price_is_not_used(setup):
    sub, _warehouse = setup
    price = catalog.update_device_price(DevicePrice.objects.get(code="RT-PRICE"), actor=ACTOR, currency="USD")
    with travel_to(MARCH), pytest.raises(ValidationFailed) as err:
        devices.sell_device(sub, actor=ACTOR, serial="R-1")
    assert "is in USD, the subscription pays in EUR" in err.value.message
    catalog.update_device_price(price, actor=ACTOR, currency="EUR")
    catalog.archive(price, actor=ACTOR, reason="discontinued")
    with travel_to(MARCH), pytest.raises(ValidationFailed) as err:
        devices.sell_device(sub, actor=ACTOR, serial="R-1")
    assert "RT-PRICE is archived" in err.value.message
    with travel_to(MARCH):  # an amount still sells it
        assert devices.sell_device(sub, actor=ACTOR, serial="R-1", price=Decimal("10")).amount == Decimal("10")


def test_unknown_catalog_ref_is_refused_by_the_service_the_api_and_the_form(setup, api, admin_user, staff_client):
    with pytest.raises(ValidationFailed) as err:
        inventory.create_item(actor=ACTOR, code="X", name="X", kind=Item.Kind.ROUTER, currency="EUR",
                              catalog_ref="NO-SUCH")
    assert err.value.code == "unknown_catalog_ref" and "catalog_ref" in err.value.fields
    router = Item.objects.get(code="RT")
    with pytest.raises(ValidationFailed):
        inventory.update_item(router, actor=ACTOR, name=router.name, catalog_ref="NO-SUCH")
    router.refresh_from_db()
    assert router.catalog_ref == "RT-PRICE"
    client = api(admin_user)
    r = client.post("/api/v1/inventory/items/", {"code": "X", "name": "X", "kind": "router", "currency": "EUR",
                                                 "catalog_ref": "NO-SUCH"}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_catalog_ref"
    assert "catalog_ref" in r.json()["error"]["fields"]
    r = client.post("/api/v1/inventory/items/", {"code": "X", "name": "X", "kind": "router", "currency": "EUR",
                                                 "catalog_ref": "ONT-PRICE"}, format="json")
    assert r.status_code == 201 and r.json()["catalog_ref"] == "ONT-PRICE"
    # A PATCH of the name keeps the reference.
    r = client.patch(f"/api/v1/inventory/items/{router.pk}/", {"name": "Router 2"}, format="json")
    assert r.status_code == 200 and r.json()["catalog_ref"] == "RT-PRICE"
    # An archived price: refused for a new item, kept by the item that has it.
    ont_price = DevicePrice.objects.get(code="ONT-PRICE")
    catalog.archive(ont_price, actor=ACTOR, reason="gone")
    with pytest.raises(ValidationFailed) as err:
        inventory.create_item(actor=ACTOR, code="Z", name="Z", kind=Item.Kind.ONT, currency="EUR",
                              catalog_ref="ONT-PRICE")
    assert err.value.code == "archived"
    ont = Item.objects.get(code="ONT")
    inventory.update_item(ont, actor=ACTOR, name="G1 ONT v2", catalog_ref="ONT-PRICE")
    # The screen: the catalog price is a pick from the price list; anything else is a field error.
    c = staff_client(admin_user)
    form = c.get("/inventory/item/add/").context["form"]
    assert [code for code, _label in form.fields["catalog_ref"].choices] == ["", "RT-PRICE"]
    r = c.post("/inventory/item/add/", {"code": "W", "name": "W", "kind": "router", "tracking": "serial",
                                        "unit": "piece", "cost": "1", "currency": "EUR", "catalog_ref": "NO-SUCH"})
    assert r.status_code == 200 and "catalog_ref" in r.context["form"].errors
    r = c.post("/inventory/item/add/", {"code": "W", "name": "W", "kind": "router", "tracking": "serial",
                                        "unit": "piece", "cost": "1", "currency": "EUR", "catalog_ref": "RT-PRICE"})
    assert r.status_code == 302 and Item.objects.get(code="W").catalog_ref == "RT-PRICE"


def test_the_api_defaults_to_the_catalog_price(setup, api, admin_user):
    sub, _warehouse = setup
    client = api(admin_user)
    url = f"/api/v1/subscriptions/{sub.pk}/devices/"
    with travel_to(MARCH):
        sale = client.post(url, {"serial": "R-1", "agreement": "sale"}, format="json", HTTP_IDEMPOTENCY_KEY="s1")
        assert sale.status_code == 201, sale.content
        assert sale.json()["amount"] == "120.000000"
        inst = client.post(url, {"serial": "R-2", "agreement": "installments", "amount": None}, format="json",
                           HTTP_IDEMPOTENCY_KEY="i1")
        assert inst.status_code == 201, inst.content
        assert (inst.json()["amount"], inst.json()["installments"]) == ("90.000000", 3)
        override = client.post(url, {"serial": "R-3", "agreement": "rent", "amount": "5.00"}, format="json",
                               HTTP_IDEMPOTENCY_KEY="r1")
        assert override.status_code == 201 and override.json()["amount"] == "5.000000"
        missing = client.post(url, {"serial": "B-1", "agreement": "rent"}, format="json",
                              HTTP_IDEMPOTENCY_KEY="r2")
        assert missing.status_code == 400
        error = missing.json()["error"]
        assert error["code"] == "no_catalog_price" and "Old box (STB)" in error["message"]
    assert DeviceAgreement.objects.count() == 3


def test_the_forms_prefill_the_catalog_price_and_an_empty_amount_takes_it(setup, staff_client, admin_user):
    sub, _warehouse = setup
    client = staff_client(admin_user)
    base = reverse("subscriptions:subscription_detail", args=[sub.pk]).rstrip("/")
    with travel_to(MARCH):
        page = client.get(f"{base}/do/device-installments/?serial=R-1")
        form = page.context["form"]
        assert form["amount"].value() == "90.00" and form["months"].value() == 3
        assert "RT-PRICE" in str(form.fields["amount"].help_text)
        assert 'hx-get="' in page.content.decode()  # the serial asks for its price when it changes
        rent_form = client.get(f"{base}/do/rent-device/?serial=R-1").context["form"]
        assert rent_form["amount"].value() == "3.10"
        none = client.get(f"{base}/do/sell-device/?serial=O-1").context["form"]
        assert none["amount"].value() is None and "no catalog price" in str(none.fields["amount"].help_text)
        done = client.post(f"{base}/do/sell-device/", {"serial": "R-1", "amount": ""})
        assert done.status_code == 302, done.content[:2000]
        refused = client.post(f"{base}/do/sell-device/", {"serial": "B-1", "amount": ""})
        assert refused.status_code == 200 and "amount" in refused.context["form"].errors
    assert fees(sub, "device_sale") == [("2026-03-10", Decimal("120.000000"))]


def test_selling_needs_the_permission(setup, api, make_user):
    sub, _warehouse = setup
    client = api(make_user("subscriptions.view_subscription", "subscriptions.view_deviceagreement", username="v"))
    r = client.post(f"/api/v1/subscriptions/{sub.pk}/devices/", {"serial": "R-1", "agreement": "sale"},
                    format="json", HTTP_IDEMPOTENCY_KEY="p1")
    assert r.status_code == 403
    assert not DeviceAgreement.objects.exists()
