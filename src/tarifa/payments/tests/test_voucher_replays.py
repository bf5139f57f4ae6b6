"""Voucher redemption retried with one Idempotency-Key (issue 11): concurrent replays return the
first payment (201, the same number), never 409 voucher_used, and never count as failed attempts
(so they never lead to 429 voucher_throttled). Real threads, real HTTP, real PostgreSQL."""

import datetime as dt
import json
import threading
import urllib.error
import urllib.request

import pytest
from django.db import connection

from tarifa.kernel.clock import today
from tarifa.kernel.errors import DomainError
from tarifa.payments import services
from tarifa.payments.models import Payment, VoucherAttempt

from .conftest import balance

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 8


def sold_batch(count=2):
    batch, cards = services.generate_batch(actor="test", count=count, nominal="10.00", currency="USD",
                                           expires_on=today() + dt.timedelta(days=30))
    services.sell_batch(batch, actor="test", paid_via="dealer", sold_to="Corner Shop")
    return [code for _serial, code in cards]


def test_concurrent_replays_of_one_key_through_the_api_return_the_first_payment(live_server, account, make_user):
    from tarifa.identity import services as identity

    acc = account()
    codes = sold_batch()
    user = make_user("payments.redeem_voucher", "payments.view_voucher", username="kiosk", password=None)
    token = identity.issue_token(actor=user, user=user, name="kiosk")[1]
    barrier = threading.Barrier(THREADS)
    answers, crashes = [], []

    def redeem():
        body = json.dumps({"account": acc.number, "code": codes[0]}).encode()
        request = urllib.request.Request(f"{live_server.url}/api/v1/vouchers/redeem/", data=body, method="POST",
                                         headers={"Content-Type": "application/json", "Idempotency-Key": "scratch-1",
                                                  "Authorization": f"Bearer {token}"})
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                answers.append((response.status, json.loads(response.read())["number"]))
        except urllib.error.HTTPError as exc:
            answers.append((exc.code, json.loads(exc.read())["error"]["code"]))
        except Exception as exc:  # noqa: BLE001 - reported below
            crashes.append(repr(exc))

    threads = [threading.Thread(target=redeem) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not crashes, crashes
    assert len(answers) == THREADS
    numbers = {number for status, number in answers}
    assert {status for status, _n in answers} == {201}, answers
    assert len(numbers) == 1
    assert Payment.objects.filter(billing_account=acc).count() == 1 and balance(acc) == 10
    outcomes = list(VoucherAttempt.objects.filter(billing_account_id=acc.pk).values_list("outcome", flat=True))
    assert set(outcomes) <= {"redeemed", "replayed"} and outcomes.count("redeemed") == 1
    # a replay after that still answers the first result
    body = json.dumps({"account": acc.number, "code": codes[0]}).encode()
    request = urllib.request.Request(f"{live_server.url}/api/v1/vouchers/redeem/", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Idempotency-Key": "scratch-1",
                                              "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert (response.status, json.loads(response.read())["number"]) == (201, numbers.pop())


def test_concurrent_replays_through_the_service_and_a_replay_is_never_throttled(account):
    acc = account()
    codes = sold_batch()
    barrier = threading.Barrier(THREADS)
    results = []

    def redeem():
        barrier.wait()
        try:
            payment = services.redeem_voucher(actor="test", account=acc, code=codes[0], idempotency_key="k-1",
                                              ip="10.0.0.9")
            results.append(payment.number)
        except DomainError as exc:
            results.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=redeem) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == THREADS and len(set(results)) == 1 and results[0].startswith("HQ-P"), results
    assert not VoucherAttempt.objects.exclude(outcome__in=["redeemed", "replayed"]).exists()
    # five wrong codes throttle the account; a replay of the key that succeeded still answers the first payment
    for i in range(5):
        with pytest.raises(DomainError):
            services.redeem_voucher(actor="test", account=acc, code=f"0000-0000-0000-000{i}", ip="10.0.0.9")
    with pytest.raises(DomainError) as err:
        services.redeem_voucher(actor="test", account=acc, code=codes[1], ip="10.0.0.9")
    assert err.value.code == "voucher_throttled"
    again = services.redeem_voucher(actor="test", account=acc, code=codes[0], idempotency_key="k-1", ip="10.0.0.9")
    assert again.number == results[0] and again.replayed
    assert balance(acc) == 10
