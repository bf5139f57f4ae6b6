"""The global search (top bar and GET /api/v1/search/?q=): finds a customer by name, numbers of
customers/accounts/subscriptions/payments, phone numbers in any notation, e-mail; results grouped by
kind and linked; a kind the caller may not view is never shown (issue 10)."""

import datetime as dt

import pytest

from tarifa.crm import services as crm
from tarifa.kernel.clock import travel_to
from tarifa.subscriptions import services as subs

from .helpers import DAY, make_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    with travel_to(DAY):
        w = make_world()
        w["carla"] = crm.create_customer(actor="test", kind="individual", first_name="Carla", last_name="Searchable",
                                         contacts=[{"kind": "email", "value": "carla@example.org"},
                                                   {"kind": "phone", "value": "+1 555 0777 123"}])
        w["dial"] = subs.create_subscription(actor="test", billing_account=w["prepaid"], tariff=w["tariffs"]["MOB"],
                                             phone_number="+15550199001")
    with travel_to(dt.datetime(2024, 3, 20, 12, 0, tzinfo=dt.UTC)):
        yield w


def kinds(body):
    return {g["kind"]: [r["text"] for r in g["results"]] for g in body["groups"]}


def test_finds_by_name_number_phone_in_another_notation_and_email(world, admin_user, api):
    http = api(admin_user)
    carla, account, dial = world["carla"], world["prepaid"], world["dial"]

    assert carla.number in " ".join(kinds(http.get("/api/v1/search/", {"q": "carla searchable"}).json())["customers"])
    assert kinds(http.get("/api/v1/search/", {"q": "carla@example.org"}).json())["customers"] == [str(carla)]
    assert kinds(http.get("/api/v1/search/", {"q": carla.number}).json())["customers"] == [str(carla)]
    assert kinds(http.get("/api/v1/search/", {"q": "555-0777-123"}).json())["customers"] == [str(carla)]
    assert kinds(http.get("/api/v1/search/", {"q": account.number}).json())["billing_accounts"] == [account.number]
    # the subscription's phone +15550199001, typed in another notation
    found = http.get("/api/v1/search/", {"q": "555-0199-001"}).json()
    assert kinds(found)["subscriptions"] == [str(dial)]
    result = found["groups"][[g["kind"] for g in found["groups"]].index("subscriptions")]["results"][0]
    assert result["url"] == f"/subscriptions/subscription/{dial.pk}/"
    assert kinds(http.get("/api/v1/search/", {"q": "(555) 0199 001"}).json())["subscriptions"] == [str(dial)]


def test_results_the_caller_may_not_view_are_never_shown(world, make_user, api, staff_client):
    dial = world["dial"]
    customers_only = make_user("crm.view_customer", username="frontdesk", password=None)

    body = api(customers_only).get("/api/v1/search/", {"q": "555-0199-001"}).json()
    assert "subscriptions" not in kinds(body)
    body = api(customers_only).get("/api/v1/search/", {"q": world["prepaid"].number}).json()
    assert body["groups"] == []
    page = staff_client(customers_only).get("/search/", {"q": "555-0199-001"}).content.decode()
    assert dial.number not in page and "Nothing found." in page

    # the page: grouped results, linked; one result goes straight to the record
    admin = staff_client(make_user("crm.view_customer", "subscriptions.view_subscription",
                                   "ledger.view_billingaccount", username="boss", password=None))
    page = admin.get("/search/", {"q": world["prepaid"].number, "go": "0"}).content.decode()
    assert 'data-kind="billing_accounts"' in page and f'/ledger/billingaccount/{world["prepaid"].pk}/' in page
    response = admin.get("/search/", {"q": "555-0199-001"})
    assert response.status_code == 302 and response["Location"] == f"/subscriptions/subscription/{dial.pk}/"
    assert api(customers_only).get("/api/v1/search/").json()["groups"] == []


def test_the_search_needs_a_login(client, api):
    assert api().get("/api/v1/search/", {"q": "carla"}).status_code == 401
    assert client.get("/search/", {"q": "carla"}).status_code == 302
