"""The foreign-payment page and API as an operator uses them (B2 takes a payment for HQ's account)."""

import pytest
from django.test import override_settings
from django.urls import reverse

from tarifa.federation import services as federation
from tarifa.interbranch.models import ForeignPayment
from tarifa.ledger.tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def branch_b2():
    federation.create_node(actor="test", code="HQ", name="Branch HQ", base_url="http://hq.test")
    with override_settings(TARIFA_NODE_CODE="B2", TARIFA_NODE_ROLE="branch"):
        yield


def test_the_page_takes_a_payment_and_shows_it_pending_then_an_error_stays_on_the_form(make_user, staff_client):
    acc = factories.account()
    user = make_user("interbranch.add_foreignpayment", "interbranch.view_foreignpayment")
    web = staff_client(user)
    assert web.get(reverse("interbranch:take_payment")).status_code == 200
    response = web.post(reverse("interbranch:take_payment"), {
        "account": acc.number.lower(), "amount": "12.50", "currency": "USD", "channel": "bank_transfer",
        "payer": "Olga", "idempotency_key": "0" * 32})
    fp = ForeignPayment.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("interbranch:foreignpayment_detail",
                                                                         args=[fp.pk])
    assert (fp.account_number, str(fp.amount), fp.channel, fp.status) == (acc.number, "12.500000", "bank_transfer",
                                                                          "pending")
    page = web.get(response["Location"]).content.decode()
    assert fp.number in page and "Pending at branch HQ" in page

    bad = web.post(reverse("interbranch:take_payment"), {
        "account": "QQ-A0000001", "amount": "1.00", "currency": "USD", "channel": "cash", "idempotency_key": "1" * 32})
    assert bad.status_code == 400 and "No active branch" in bad.content.decode()
    assert ForeignPayment.objects.count() == 1


def test_the_api_takes_a_payment_once_per_idempotency_key_and_checks_permissions(make_user, api):
    acc = factories.account()
    clerk = api(make_user("interbranch.add_foreignpayment", "interbranch.view_foreignpayment"))
    body = {"account": acc.number, "amount": "9.00", "currency": "USD", "channel": "cash"}
    first = clerk.post("/api/v1/foreign-payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="api-1")
    assert first.status_code == 201, first.json()
    assert first.json()["status"] == "pending" and first.json()["owner_branch"] == "HQ"
    again = clerk.post("/api/v1/foreign-payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="api-1")
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert ForeignPayment.objects.count() == 1
    missing = clerk.post("/api/v1/foreign-payments/", body, format="json")
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "idempotency_key_required"
    viewer = api(make_user("interbranch.view_foreignpayment"))
    denied = viewer.post("/api/v1/foreign-payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="api-2")
    assert denied.status_code == 403
    refund = clerk.post(f"/api/v1/foreign-payments/{first.json()['id']}/refund/", {}, format="json")
    assert refund.status_code == 403  # refunding needs its own permission
    assert viewer.get("/api/v1/foreign-payments/").json()["count"] == 1
