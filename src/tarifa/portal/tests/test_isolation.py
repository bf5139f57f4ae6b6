"""The isolation suite: customer A asks every portal page and every portal API endpoint for
customer B's records — by id in the URL, as a list filter, through ordering — and gets 404
(never B's data); anonymous visitors are sent to the login page (pages) or get 401 (API).

The pages and endpoints are read from the URLconfs (tarifa.portal.urls, tarifa.portal.api):
each URL argument names its kind (`<kind>_id`), so a page added there is covered with no
code here — and a kind this suite has no record of fails it until one is added below.
"""

import re
import uuid

import pytest
from django.urls import reverse

from tarifa.aaa.models import Session
from tarifa.billing.models import Invoice
from tarifa.crm.models import Customer
from tarifa.inventory.models import Device, Location
from tarifa.ledger.models import BillingAccount
from tarifa.payments.models import Payment
from tarifa.portal import api as portal_api_module
from tarifa.portal import helpdesk
from tarifa.portal import urls as portal_urls
from tarifa.portal.models import PortalUser
from tarifa.subscriptions.models import Subscription
from tarifa.testing.demo import demo_loaded

from .helpers import portal_api, portal_client

pytestmark = pytest.mark.django_db

PAGES = [(p.name, sorted(p.pattern.converters)) for p in portal_urls.urlpatterns
         if p.name not in portal_urls.STAFF_PAGES | portal_urls.ANONYMOUS_PAGES]
ENDPOINTS = [(p.name, sorted(p.pattern.converters)) for p in portal_api_module.patterns if p.name != "token"]


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    with demo_loaded(django_db_blocker):
        yield


def _objects(customer) -> dict:
    """One record of every kind of `customer` (the demo data, plus what it lacks)."""
    found = {
        "account": BillingAccount.objects.filter(customer=customer).first(),
        "invoice": Invoice.objects.filter(customer=customer).exclude(state="draft").first(),
        "payment": Payment.objects.filter(billing_account__customer=customer).first(),
        "subscription": Subscription.objects.filter(billing_account__customer=customer).first(),
        "session": Session.objects.filter(subscription__billing_account__customer=customer).first(),
        "device": Device.objects.filter(location__kind="customer", location__customer=customer).first(),
    }
    if helpdesk.available():
        found["ticket"] = helpdesk.tickets_for_customer_any(customer).first()
    return found


@pytest.fixture
def two(demo, db):
    maria = Customer.objects.get(first_name="Maria", last_name="Garcia")
    acme = Customer.objects.get(legal_name="Acme Logistics LLC")
    a = PortalUser.objects.get(login="admin@acme-logistics.example")
    b = PortalUser.objects.get(login="maria.garcia@example.com")
    if not Payment.objects.filter(billing_account__customer=acme).exists():
        from tarifa.payments import services as payments

        payments.accept_payment(actor="test", account=BillingAccount.objects.filter(customer=acme).first(),
                                amount="5.00", channel="bank_transfer", idempotency_key="isolation-acme")
    if not Device.objects.filter(location__kind="customer", location__customer=acme).exists():
        from tarifa.inventory import services as inventory

        van = Location.objects.filter(kind="technician").first()
        serial = Device.objects.filter(location=van).order_by("serial").values_list("serial", flat=True).first()
        inventory.install(actor="test", serial=serial, source=van, customer=acme)
    if helpdesk.available():
        for user in (a, b):
            helpdesk.open_request(user, subject="isolation", text="a request of this customer")
    return {"a": a, "b": b, "b_objects": _objects(maria), "a_objects": _objects(acme)}


def _url(kind_args, objects, name, namespace):
    kwargs = {}
    for arg in kind_args:
        kind = arg.removesuffix("_id")
        obj = objects.get(kind)
        assert obj is not None, f"the isolation suite has no record of kind {kind!r}: add one in _objects()"
        kwargs[arg] = obj.pk
    return reverse(f"{namespace}:{name}", kwargs=kwargs)


@pytest.mark.parametrize("name,args", [p for p in PAGES if p[1]], ids=lambda v: str(v))
def test_page_with_another_customers_record_is_404(two, name, args):
    client = portal_client(two["a"])
    url = _url(args, two["b_objects"], name, "portal")
    view = next(p.callback.view_class for p in portal_urls.urlpatterns if p.name == name)
    if hasattr(view, "get"):
        assert client.get(url).status_code == 404, url
    if hasattr(view, "post"):
        assert client.post(url, {"tariff": "x", "until": "2030-01-01", "text": "x"}).status_code == 404, url
    # The same page with A's own record answers (the 404 above is isolation, not a broken page).
    own = _url(args, two["a_objects"], name, "portal")
    if hasattr(view, "get"):
        assert client.get(own).status_code == 200, own


@pytest.mark.parametrize("name,args", PAGES, ids=lambda v: str(v))
def test_anonymous_is_sent_to_login(two, name, args, client):
    url = _url(args, two["b_objects"], name, "portal")
    answer = client.get(url)
    assert answer.status_code == 302 and answer["Location"].startswith(reverse("portal:login")), url


@pytest.mark.parametrize("name", ["invoices", "payments"])
def test_list_filter_with_another_customers_account_is_404(two, name):
    client = portal_client(two["a"])
    other = two["b_objects"]["account"]
    assert client.get(reverse(f"portal:{name}"), {"account": str(other.pk)}).status_code == 404
    assert client.get(reverse(f"portal:{name}"), {"account": "not-an-id"}).status_code == 404


@pytest.mark.parametrize("name", [p[0] for p in PAGES if not p[1]])
def test_lists_never_show_another_customers_records(two, name):
    client = portal_client(two["a"])
    for sort in ("", "customer__number", "-billing_account__customer", "number"):
        answer = client.get(reverse(f"portal:{name}"), {"sort": sort} if sort else {})
        assert answer.status_code == 200
        text = answer.content.decode()
        for obj in two["b_objects"].values():
            assert str(obj.pk) not in text
            number = getattr(obj, "number", "")
            assert not number or not re.search(rf"\b{re.escape(number)}\b", text), (name, number)


# The API ------------------------------------------------------------------------------------------

def _call(client, name, url):
    if name in ("change_tariff",):
        return client.post(url, {"tariff": "NET-500"}, format="json")
    if name == "voucher_redeem":
        return client.post(url, {"account": "", "code": "x"}, format="json")
    return client.get(url)


@pytest.mark.parametrize("name,args", [e for e in ENDPOINTS if e[1]], ids=lambda v: str(v))
def test_api_with_another_customers_record_is_404(two, name, args):
    client = portal_api(two["a"])
    url = _url(args, two["b_objects"], name, "portal_api")
    answer = _call(client, name, url)
    assert answer.status_code == 404, (url, answer.content[:200])
    assert answer.json()["error"]["code"] == "not_found"


def test_every_kind_of_the_scope_is_isolated(two):
    """Scope.get, the one lookup by id, answers 404 for B's record of every kind (sessions and
    devices included, whether or not a URL takes them) and finds A's own."""
    from django.http import Http404

    from tarifa.portal.scope import Scope

    scope = Scope(two["a"])
    for kind in Scope.KINDS:
        theirs, own = two["b_objects"].get(kind), two["a_objects"].get(kind)
        if kind in ("department", "portal_user"):
            continue  # B's have their own tests (business customers only)
        assert theirs is not None and own is not None, f"no sample of kind {kind!r}: add one in _objects()"
        with pytest.raises(Http404):
            scope.get(kind, theirs.pk)
        assert scope.get(kind, own.pk).pk == own.pk


def test_sessions_and_devices_lists_stay_in_scope(two):
    client = portal_api(two["a"])
    b = two["b_objects"]
    text = client.get(reverse("portal_api:devices")).content.decode()
    assert str(b["device"].pk) not in text and b["device"].serial not in text
    assert str(two["a_objects"]["device"].pk) in text
    assert client.get(reverse("portal_api:devices"), {"subscription": str(b["subscription"].pk)}).status_code == 404
    own = client.get(reverse("portal_api:sessions", kwargs={"subscription_id": two["a_objects"]["session"].subscription_id}))
    assert own.status_code == 200 and str(two["a_objects"]["session"].pk) in own.content.decode()
    page = portal_client(two["a"]).get(reverse("portal:services")).content.decode()
    assert b["device"].serial not in page and two["a_objects"]["device"].serial in page


@pytest.mark.parametrize("name", ["invoices", "payments", "subscriptions"])
def test_api_filters_and_ordering_stay_in_scope(two, name):
    client = portal_api(two["a"])
    url = reverse(f"portal_api:{name}")
    assert client.get(url, {"account": str(two["b_objects"]["account"].pk)}).status_code == 404
    assert client.get(url, {"account": str(uuid.uuid4())}).status_code == 404
    assert client.get(url, {"ordering": "billing_account__customer__number"}).status_code == 400
    assert client.get(url, {"customer": str(two["b"].customer_id)}).status_code == 400
    rows = client.get(url).json()["results"]
    b_ids = {str(o.pk) for o in two["b_objects"].values()}
    assert not b_ids & {r["id"] for r in rows}


def test_api_voucher_to_another_customers_account_is_404(two):
    client = portal_api(two["a"])
    answer = client.post(reverse("portal_api:voucher_redeem"),
                         {"account": str(two["b_objects"]["account"].pk), "code": "0000-0000"}, format="json")
    assert answer.status_code == 404


@pytest.mark.parametrize("name,args", ENDPOINTS, ids=lambda v: str(v))
def test_api_anonymous_and_staff_tokens_are_401(two, name, args, api, admin_user):
    url = _url(args, two["b_objects"], name, "portal_api")
    from rest_framework.test import APIClient

    assert _call(APIClient(), name, url).status_code == 401
    assert _call(api(admin_user), name, url).status_code == 401, "a staff token opens the portal API"


def test_portal_token_is_refused_by_the_staff_api(two):
    client = portal_api(two["a"])
    assert client.get("/api/v1/customers/").status_code == 401
    assert client.get("/api/v1/portal-users/").status_code == 401


def test_portal_session_does_not_open_staff_screens(two):
    client = portal_client(two["a"])
    answer = client.get("/customers/")
    assert answer.status_code in (302, 404)
    assert client.get(reverse("portal:home")).status_code == 200
    staff = client.get("/crm/customer/")
    assert staff.status_code == 302 and "/login/" in staff["Location"]
