"""The built-in TEST card provider (issue 10, item 12): a hosted page served by Tarifa itself whose
outcomes drive the real signed webhook over HTTP (loopback, the live server) — approved, declined,
no answer (the checkout expires) — idempotent, refusing altered or expired links."""

import datetime as dt
import json
import urllib.parse
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from tarifa.kernel.clock import now, travel_to
from tarifa.kernel.errors import DomainError
from tarifa.payments import services
from tarifa.payments.gateways.reference import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tarifa.payments.models import CardCheckout, Payment

from .conftest import balance

pytestmark = pytest.mark.django_db(transaction=True)
CARD = {"expiry": "12/39", "cvc": "123", "holder": "Maria Garcia"}


@pytest.fixture
def gateway():
    return services.create_gateway(actor="test", code="TESTCARD", name="Test card provider (TEST)", kind="card",
                                   adapter="test", currency="USD")[0]


@pytest.fixture
def checkout(live_server, gateway, account, key):
    def make(amount="25.00", acc=None, save_card=False):
        acc = acc or account()
        notify = live_server.url + reverse("api:payments-gateway-webhook", args=[gateway.code])
        return services.start_card_checkout(actor="test", account=acc, amount=amount, gateway=gateway,
                                            notify_url=notify, return_url=f"{live_server.url}/back/",
                                            save_card=save_card, idempotency_key=key("chk"))

    return make


def hosted(url):
    """The hosted page's path and query (the link points at the live server)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path}?{parts.query}"


def pay(url, number):
    return Client().post(hosted(url), {"number": number, **CARD})


def test_the_checkout_link_is_tarifas_own_signed_test_page(checkout, live_server):
    chk = checkout()
    assert chk.redirect_url.startswith(f"{live_server.url}/payments/test-card-provider/checkout/?")
    assert "example.com" not in chk.redirect_url and "sig=" in chk.redirect_url
    page = Client().get(hosted(chk.redirect_url))
    assert page.status_code == 200
    html = page.content.decode()
    assert "TEST PAYMENT PAGE" in html and "25.00 USD" in html and "4242 4242 4242 4242" in html


def test_an_approved_card_posts_the_signed_webhook_and_the_payment_is_applied_once(checkout):
    chk = checkout(amount="25.00")
    acc = chk.billing_account
    answer = pay(chk.redirect_url, "4242 4242 4242 4242")
    assert answer.status_code == 200
    html = answer.content.decode()
    assert 'data-outcome="approved"' in html
    chk.refresh_from_db()
    assert chk.state == "applied" and chk.provider_txn_id == f"TEST-{chk.pk}"
    payment = Payment.objects.get(pk=chk.payment_id)
    assert (payment.channel, payment.amount, payment.gateway.code) == ("card", Decimal("25"), "TESTCARD")
    assert payment.number in html and payment.payer == "VISA •••• 4242 (TEST)"
    assert balance(acc) == Decimal("25")
    # The payer pays the same link again: the provider sends the same transaction; credited once.
    again = pay(chk.redirect_url, "4242424242424242")
    assert "nothing was charged twice" in again.content.decode()
    assert balance(acc) == Decimal("25") and Payment.objects.filter(billing_account=acc).count() == 1


def test_the_same_signed_webhook_twice_credits_once(live_server, checkout, gateway):
    import urllib.request

    chk = checkout(amount="10.00")
    body = json.dumps({"event": "payment.succeeded", "order": str(chk.pk), "txn_id": "T-1", "amount": "10.00",
                       "currency": "USD"}).encode()
    ts = str(int(now().timestamp()))
    answers = []
    for _ in range(2):
        request = urllib.request.Request(
            live_server.url + reverse("api:payments-gateway-webhook", args=["TESTCARD"]), data=body, method="POST",
            headers={"Content-Type": "application/json", TIMESTAMP_HEADER: ts,
                     SIGNATURE_HEADER: f"sha256={sign(gateway.hmac_secret, ts, body)}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answers.append(json.loads(response.read()))
    assert [a["replayed"] for a in answers] == [False, True]
    assert answers[0]["payment"] == answers[1]["payment"]
    assert balance(chk.billing_account) == Decimal("10")


def test_a_declined_card_fails_the_checkout_and_books_nothing(checkout):
    chk = checkout()
    html = pay(chk.redirect_url, "4000 0000 0000 0002").content.decode()
    assert 'data-outcome="declined"' in html and "card declined" in html
    chk.refresh_from_db()
    assert chk.state == "failed" and "card declined" in chk.failure_reason and chk.payment_id is None
    assert balance(chk.billing_account) == 0


def test_no_answer_leaves_the_checkout_waiting_until_it_expires(checkout):
    chk = checkout()
    html = pay(chk.redirect_url, "4000 0000 0000 0119").content.decode()
    assert 'data-outcome="no_answer"' in html
    chk.refresh_from_db()
    assert chk.state == "created"
    assert services.expire_checkouts() == 0  # not yet
    with travel_to(now() + dt.timedelta(minutes=31)):
        assert services.expire_checkouts() == 1
        expired = Client().get(hosted(chk.redirect_url))
        assert expired.status_code == 410 and 'data-outcome="expired"' in expired.content.decode()
        assert Client().post(hosted(chk.redirect_url), {"number": "4242424242424242", **CARD}).status_code == 410
    chk.refresh_from_db()
    assert chk.state == "expired" and "no answer" in chk.failure_reason
    assert balance(chk.billing_account) == 0 and not Payment.objects.filter(billing_account=chk.billing_account).exists()


def test_an_altered_link_or_a_bad_card_number_sends_nothing(checkout):
    chk = checkout(amount="25.00")
    altered = hosted(chk.redirect_url).replace("amount=25.00", "amount=2500.00")
    assert Client().get(altered).status_code == 403
    assert Client().post(altered, {"number": "4242424242424242", **CARD}).status_code == 403
    bad = pay(chk.redirect_url, "4242 4242 4242 4241")
    assert bad.status_code == 400 and "Luhn" in bad.content.decode()
    chk.refresh_from_db()
    assert chk.state == "created" and balance(chk.billing_account) == 0


def test_switched_off_the_provider_refuses_checkouts_and_its_page_is_gone(settings, checkout, gateway, account, key):
    chk = checkout()
    settings.TARIFA_TEST_CARD_PROVIDER = False
    assert Client().get(hosted(chk.redirect_url)).status_code == 404
    with pytest.raises(DomainError) as err:
        services.start_card_checkout(actor="test", account=account(), amount="5.00", gateway=gateway,
                                     notify_url="http://127.0.0.1/x", idempotency_key=key("off"))
    assert err.value.code == "gateway_inactive"
    assert CardCheckout.objects.count() == 1
