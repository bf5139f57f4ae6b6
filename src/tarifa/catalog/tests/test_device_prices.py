"""The device price list: what a device from the warehouse costs to buy, rent or pay off."""

from decimal import Decimal

import pytest

from tarifa.audit.models import AuditEvent
from tarifa.catalog import selectors, services
from tarifa.catalog.models import DevicePrice
from tarifa.kernel.errors import ValidationFailed

pytestmark = pytest.mark.django_db
ACTOR = "test"


@pytest.fixture
def router_price():
    return services.create_device_price(actor=ACTOR, code="RT", name="Router", currency="EUR", sale_price="89.00",
                                        monthly_rent="3.50", installment_total="96.00", installment_months=12)


def test_a_device_price_offers_what_is_not_zero(router_price):
    assert router_price.terms("sale") == (Decimal("89.00"), 0)
    assert router_price.terms("rent") == (Decimal("3.50"), 0)
    assert router_price.terms("installments") == (Decimal("96.00"), 12)
    ont = services.create_device_price(actor=ACTOR, code="ONT", name="ONT", currency="EUR", monthly_rent="2")
    assert ont.terms("sale") == (None, 0) and ont.terms("installments") == (None, 0)
    assert isinstance(ont.sale_price, Decimal)
    assert AuditEvent.objects.filter(object_id=str(ont.pk), action="create").exists()


@pytest.mark.parametrize("fields, field, code", [
    ({"installment_total": "90"}, "installment_months", "installment_months_required"),
    ({"installment_months": 6}, "installment_total", "installment_total_required"),
    ({"installment_total": "90", "installment_months": 121}, "installment_months", "invalid_installment_months"),
    ({"sale_price": "-1"}, "sale_price", "negative_amount"),
    ({"monthly_rent": "1.005"}, "monthly_rent", "amount_too_precise"),
    ({"currency": "XXY"}, "currency", "invalid_currency"),
])
def test_bad_terms_are_field_errors_and_write_nothing(fields, field, code):
    with pytest.raises(ValidationFailed) as err:
        services.create_device_price(actor=ACTOR, code="BAD", name="Bad", **fields)
    assert err.value.code == code and field in err.value.fields
    assert not DevicePrice.objects.exists()


def test_update_keeps_the_code_and_checks_the_merged_terms(router_price):
    with pytest.raises(ValidationFailed) as err:
        services.update_device_price(router_price, actor=ACTOR, code="OTHER")
    assert err.value.code == "code_fixed"
    with pytest.raises(ValidationFailed) as err:
        services.update_device_price(router_price, actor=ACTOR, installment_months=0)
    assert err.value.code == "installment_months_required"
    services.update_device_price(router_price, actor=ACTOR, code="RT", sale_price="99.00")
    router_price.refresh_from_db()
    assert (router_price.code, router_price.sale_price, router_price.installment_months) == ("RT", Decimal("99"), 12)
    assert AuditEvent.objects.filter(object_id=str(router_price.pk), action="update").exists()
    with pytest.raises(ValidationFailed) as err:
        services.create_device_price(actor=ACTOR, code="RT", name="Again")
    assert err.value.code == "duplicate_code"


def test_archived_prices_are_not_offered_for_new_use(router_price):
    assert selectors.device_price_choices() == [("RT", "RT Router")]
    services.archive(router_price, actor=ACTOR, reason="discontinued")
    assert selectors.device_price_choices() == []
    assert selectors.device_price("RT").archived_at is not None  # still found: items refer to it


def test_api_create_list_update_and_archive(admin_user, api):
    client = api(admin_user)
    r = client.post("/api/v1/device-prices/", {"code": "STB", "name": "Set-top box", "currency": "EUR",
                                                "sale_price": "79.00", "monthly_rent": "4.00",
                                                "installment_total": "84.00", "installment_months": 6},
                    format="json")
    assert r.status_code == 201, r.json()
    body = r.json()
    assert (body["sale_price"], body["installment_months"], body["archived_at"]) == ("79.000000", 6, None)
    r = client.post("/api/v1/device-prices/", {"code": "BAD", "name": "x", "installment_total": "10"},
                    format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "installment_months_required"
    assert "installment_months" in r.json()["error"]["fields"]
    r = client.post("/api/v1/device-prices/", {"code": "BAD", "name": "x", "sale_price": 10.5}, format="json")
    assert r.status_code == 400  # a JSON number is not an amount
    listed = client.get("/api/v1/device-prices/").json()
    assert [p["code"] for p in listed["results"]] == ["STB"]
    r = client.patch(f"/api/v1/device-prices/{body['id']}/", {"monthly_rent": "4.50"}, format="json")
    assert r.status_code == 200 and r.json()["monthly_rent"] == "4.500000" and r.json()["sale_price"] == "79.000000"
    r = client.delete(f"/api/v1/device-prices/{body['id']}/")
    assert r.status_code == 200 and r.json()["archived_at"] is not None


def test_api_refuses_writes_without_the_permission(make_user, api):
    client = api(make_user("catalog.view_deviceprice", username="viewer"))
    assert client.get("/api/v1/device-prices/").status_code == 200
    r = client.post("/api/v1/device-prices/", {"code": "X", "name": "x", "sale_price": "1.00"}, format="json")
    assert r.status_code == 403
    assert not DevicePrice.objects.exists()
    assert api(make_user("crm.view_customer", username="other")).get("/api/v1/device-prices/").status_code == 403


def test_screens_list_create_and_edit(router_price, make_user, staff_client):
    from tarifa.testing.forms import initial_post_data

    c = staff_client(make_user("catalog.view_deviceprice", "catalog.add_deviceprice", "catalog.change_deviceprice",
                               password=None))
    r = c.get("/catalog/deviceprice/")
    assert r.status_code == 200 and b"RT" in r.content
    assert c.get(f"/catalog/deviceprice/{router_price.pk}/").status_code == 200
    form = c.get("/catalog/deviceprice/add/").context["form"]
    r = c.post("/catalog/deviceprice/add/", initial_post_data(form, code="ONT", name="Fibre ONT", currency="EUR",
                                                              monthly_rent="2.00"))
    assert r.status_code == 302, r.context["form"].errors
    ont = DevicePrice.objects.get(code="ONT")
    assert (ont.monthly_rent, ont.sale_price, ont.installment_months) == (Decimal("2"), Decimal(0), 0)
    r = c.post("/catalog/deviceprice/add/", initial_post_data(form, code="BAD", name="Bad", currency="EUR",
                                                              installment_total="50"))
    assert r.status_code == 200 and "installment_months" in r.context["form"].errors
    form = c.get(f"/catalog/deviceprice/{router_price.pk}/edit/").context["form"]
    assert "code" not in form.fields
    r = c.post(f"/catalog/deviceprice/{router_price.pk}/edit/", initial_post_data(form, sale_price="95.00"))
    assert r.status_code == 302, r.context["form"].errors
    router_price.refresh_from_db()
    assert router_price.sale_price == Decimal("95")
    viewer = staff_client(make_user("catalog.view_deviceprice", username="v2", password=None))
    assert viewer.get("/catalog/deviceprice/add/").status_code == 403


def test_device_prices_travel_in_the_catalog_file(router_price):
    from tarifa.catalog.exchange import export_catalog, import_catalog

    data = export_catalog()
    assert data["device_prices"] == [{"code": "RT", "name": "Router", "currency": "EUR", "sale_price": "89.000000",
                                      "monthly_rent": "3.500000", "installment_total": "96.000000",
                                      "installment_months": 12, "description": "", "archived": False}]
    assert import_catalog(data, actor=ACTOR)["device_prices"] == {"created": 0, "updated": 0, "unchanged": 1}
    services.update_device_price(router_price, actor=ACTOR, sale_price="1.00")
    data["device_prices"].append({**data["device_prices"][0], "code": "ONT", "archived": True})
    assert import_catalog(data, actor=ACTOR)["device_prices"] == {"created": 1, "updated": 1, "unchanged": 0}
    router_price.refresh_from_db()
    assert router_price.sale_price == Decimal("89")
    assert DevicePrice.objects.get(code="ONT").archived_at is not None
