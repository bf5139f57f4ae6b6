"""Online card payments end to end over loopback: our live server, a fake provider (a real HTTP
server thread) serving the hosted checkout and sending the signed webhook; forged and stale
webhooks refused with nothing written; automatic top-ups from the stored card."""

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal

import pytest

from tarifa.kernel.models import DomainEvent
from tarifa.ledger.models import Transfer
from tarifa.payments import services
from tarifa.payments.models import AutoPayRun, CardCheckout, Payment, StoredPaymentMethod

from .conftest import balance
from .fake_provider import FakeProvider

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "s3cret-shared-with-the-provider"


@pytest.fixture
def provider():
    with FakeProvider(SECRET) as fake:
        yield fake


@pytest.fixture
def gateway(db, provider):
    gw, _issued = services.create_gateway(actor="test", code="CARDREF", name="Reference cards", kind="card",
                                          adapter="reference", currency="USD", api_url=provider.url,
                                          hmac_secret=SECRET, min_amount="1.00", max_amount="1000.00")
    return gw


def call(method, url, *, token=None, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(), response.geturl()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), url


@pytest.fixture
def token(make_user):
    from tarifa.identity import services as identity

    user = make_user("payments.add_cardcheckout", "payments.view_cardcheckout", username="portal")
    return identity.issue_token(actor=user, user=user, name="portal")[1]


def start(live_server, token, account, amount="25.00", key="chk-1", save_card=False):
    status, body, _url = call("POST", f"{live_server.url}/api/v1/card-checkouts/", token=token,
                              headers={"Idempotency-Key": key},
                              body={"account": account.number, "amount": amount, "gateway": "CARDREF",
                                    "return_url": f"{live_server.url}/healthz", "save_card": save_card})
    assert status == 201, body
    return json.loads(body)


def state():
    return (Payment.objects.count(), Transfer.objects.count(), DomainEvent.objects.count(),
            CardCheckout.objects.exclude(state="created").count())


def test_a_card_payment_end_to_end(live_server, provider, gateway, token, account):
    acc = account()
    checkout = start(live_server, token, acc, save_card=True)
    assert checkout["state"] == "created" and checkout["redirect_url"].startswith(f"{provider.url}/checkout?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(checkout["redirect_url"]).query))
    assert query["notify_url"] == f"{live_server.url}/api/v1/gateways/CARDREF/webhook/"

    # The customer's browser: the provider's page, then "Pay".
    status, page, _url = call("GET", checkout["redirect_url"])
    assert status == 200 and "Pay 25.00 USD" in page
    form = urllib.parse.urlencode({"order": checkout["id"], "card": "4242424242424242"}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{provider.url}/checkout/confirm", data=form), timeout=30) as r:
        assert r.geturl() == f"{live_server.url}/healthz"  # back at the merchant

    assert provider.webhooks[0][0] == 200 and provider.webhooks[0][1]["status"] == "applied"
    done = CardCheckout.objects.get(pk=checkout["id"])
    assert done.state == "applied" and done.payment.gateway == gateway
    assert (done.payment.channel, done.payment.provider_txn_id, done.payment.amount) == ("card", "PRV-1", Decimal("25"))
    assert done.payment.transfer.debit_account.code == "clearing:CARDREF"
    assert balance(acc) == Decimal("25")
    assert StoredPaymentMethod.objects.get(billing_account=acc).label == "VISA •••• 4242"

    # The provider retries its webhook: same answer, nothing twice.
    before = state()
    event = {"event": "payment.succeeded", "order": checkout["id"], "txn_id": "PRV-1", "amount": "25.00",
             "currency": "USD"}
    status, answer = provider.send_webhook(query["notify_url"], event)
    assert status == 200 and answer["replayed"] and answer["payment"] == done.payment.number
    assert state() == before


def test_forged_and_stale_webhooks_are_refused_and_write_nothing(live_server, provider, gateway, token, account):
    acc = account()
    checkout = start(live_server, token, acc)
    url = f"{live_server.url}/api/v1/gateways/CARDREF/webhook/"
    event = {"event": "payment.succeeded", "order": checkout["id"], "txn_id": "EVIL-1", "amount": "25.00",
             "currency": "USD"}
    before = state()
    status, answer = provider.send_webhook(url, event, secret="guessed-secret")
    assert status == 401 and answer["error"]["code"] == "invalid_signature"
    status, answer = provider.send_webhook(url, event, ts=str(int(time.time()) - 3600))
    assert status == 401 and answer["error"]["code"] == "stale_webhook"
    status, body, _ = call("POST", url, body=event)  # no signature at all
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_signature"
    status, answer = provider.send_webhook(url, {**event, "amount": "2500.00"})
    assert status == 409 and answer["error"]["code"] == "checkout_mismatch"
    status, answer = provider.send_webhook(url, {**event, "order": "not-ours"})
    assert status == 404 and answer["error"]["code"] == "checkout_not_found"
    status, answer = provider.send_webhook(f"{live_server.url}/api/v1/gateways/NOPE/webhook/", event)
    assert status == 404 and answer["error"]["code"] == "gateway_not_found"
    assert state() == before and balance(acc) == 0


def test_a_declined_card_fails_the_checkout(live_server, provider, gateway, token, account):
    acc = account()
    checkout = start(live_server, token, acc)
    call("GET", checkout["redirect_url"])
    form = urllib.parse.urlencode({"order": checkout["id"], "card": "4000000000000002"}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{provider.url}/checkout/confirm", data=form), timeout=30).close()
    done = CardCheckout.objects.get(pk=checkout["id"])
    assert done.state == "failed" and done.failure_reason == "card declined" and balance(acc) == 0


def test_starting_a_checkout_validates_like_a_payment(live_server, gateway, token, account):
    acc = account()
    for amount, code in [("0.50", "amount_too_small"), ("1000.01", "amount_too_large"), ("1.001", "amount_too_precise")]:
        status, body, _ = call("POST", f"{live_server.url}/api/v1/card-checkouts/", token=token,
                               headers={"Idempotency-Key": f"bad-{amount}"},
                               body={"account": acc.number, "amount": amount, "gateway": "CARDREF"})
        assert status == 400 and json.loads(body)["error"]["code"] == code
    assert CardCheckout.objects.count() == 0


def test_automatic_payment_from_the_stored_card_once_a_day(live_server, provider, gateway, token, account):
    from tarifa.ledger.tests import factories

    acc = account()
    checkout = start(live_server, token, acc, amount="10.00", save_card=True)
    call("GET", checkout["redirect_url"])
    form = urllib.parse.urlencode({"order": checkout["id"], "card": "4242424242424242"}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{provider.url}/checkout/confirm", data=form), timeout=30).close()
    method = StoredPaymentMethod.objects.get(billing_account=acc)
    agreement = services.create_agreement(actor="test", billing_account=acc, payment_method=method, threshold="5.00",
                                          amount="20.00")
    assert services.run_autopay()["due"] == 0  # balance 10 is not below 5
    factories.charge(acc, "8.00")
    summary = services.run_autopay()
    assert summary["succeeded"] == 1 and provider.charge_calls == 1
    run = AutoPayRun.objects.get(agreement=agreement)
    assert run.state == "succeeded" and run.payment.provider_txn_id.startswith("CHG-")
    assert balance(acc) == Decimal("22.00")
    factories.charge(acc, "20.00")  # below the level again the same day: no second top-up
    assert services.run_autopay()["skipped"] == 1 and provider.charge_calls == 1
    assert balance(acc) == Decimal("2.00")
