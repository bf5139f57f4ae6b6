"""Concurrency against real PostgreSQL: 50 payments to one account from 10 threads at once, some
with retried keys — exactly the right balance, exactly one transfer per distinct key. Through the
service, and through the HTTP API (Idempotency-Key) on a live server."""

import json
import random
import threading
import urllib.error
import urllib.request
from decimal import Decimal

import pytest
from django.db import connection

from tarifa.kernel.errors import DomainError
from tarifa.ledger.models import Transfer
from tarifa.payments import services
from tarifa.payments.models import Payment

from .conftest import balance

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 10
CALLS = 50
DISTINCT = 40


def plan(seed=7):
    """50 calls: 40 distinct keys, 10 of them sent twice, shuffled; amount depends on the key."""
    rng = random.Random(seed)
    keys = [f"key-{i:02d}" for i in range(DISTINCT)]
    calls = keys + rng.sample(keys, CALLS - DISTINCT)
    rng.shuffle(calls)
    amounts = {k: Decimal(f"{i + 1}.{i:02d}") for i, k in enumerate(keys)}
    return calls, amounts


def run_threads(work, calls):
    barrier = threading.Barrier(THREADS)
    results, failures = [], []
    chunks = [calls[i::THREADS] for i in range(THREADS)]

    def worker(chunk):
        barrier.wait()
        try:
            for key in chunk:
                results.append((key, work(key)))
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    assert len(results) == CALLS
    return results


def assert_applied_once(acc, amounts):
    transfers = Transfer.objects.filter(credit_account_id=acc.ledger_account_id, kind="payment")
    assert transfers.count() == DISTINCT
    keys = list(transfers.values_list("idempotency_key", flat=True))
    assert len(set(keys)) == DISTINCT
    assert Payment.objects.filter(billing_account=acc).count() == DISTINCT
    assert balance(acc) == sum(amounts.values())


def test_fifty_payments_from_ten_threads_through_the_service(account):
    acc = account()
    calls, amounts = plan()

    def pay(key):
        payment = services.accept_payment(actor="test", account=acc.pk, amount=amounts[key], channel="bank_transfer",
                                          idempotency_key=key)
        return payment.number

    results = run_threads(pay, calls)
    by_key = {}
    for key, number in results:
        by_key.setdefault(key, set()).add(number)
    assert all(len(numbers) == 1 for numbers in by_key.values())  # a retry got the first payment
    assert_applied_once(acc, amounts)


def test_card_payments_from_ten_threads_spread_over_the_clearing_rows_and_the_ledger_holds(account):
    """The card channel's `clearing:card` is spread over several ledger rows (a payment's row by
    its key, so a retry lands on the same one); numbers come from a sequence: unique, no lock."""
    from tarifa.ledger.models import LedgerAccount
    from tarifa.ledger.selectors import check_ledger, spread_balance
    from tarifa.ledger.services import SPREAD_ROWS

    accounts = [account(), account()]
    calls, amounts = plan(seed=5)

    def pay(key):
        payment = services.accept_payment(actor="test", account=accounts[int(key[-1]) % 2].pk,
                                          amount=amounts[key], channel="card", idempotency_key=key)
        return payment.number, payment.debit_account_id

    results = run_threads(pay, calls)
    by_key = {}
    for key, answer in results:
        by_key.setdefault(key, set()).add(answer)
    assert len(by_key) == DISTINCT and all(len(a) == 1 for a in by_key.values())  # a retry: the same payment
    numbers = [n for answers in by_key.values() for n, _row in answers]
    assert len(set(numbers)) == DISTINCT and all(n.startswith("HQ-P") for n in numbers)
    rows = {row for answers in by_key.values() for _n, row in answers}
    codes = set(LedgerAccount.objects.filter(pk__in=rows).values_list("code", flat=True))
    assert len(rows) > 1 and all(c == "clearing:card" or c.startswith("clearing:card~") for c in codes)
    assert len(rows) <= SPREAD_ROWS
    for payment in Payment.objects.all():  # every transfer debits the row its payment names
        assert payment.transfer.debit_account_id == payment.debit_account_id
    assert spread_balance("clearing:card", "USD") == -sum(amounts.values())
    assert sum(balance(a) for a in accounts) == sum(amounts.values())
    assert check_ledger()["ok"]


def test_fifty_payments_from_ten_threads_through_the_api(live_server, account, make_user):
    from tarifa.identity import services as identity

    acc = account()
    user = make_user("payments.add_payment", "payments.view_payment", username="integration")
    token = identity.issue_token(actor=user, user=user, name="load")[1]
    calls, amounts = plan(seed=11)

    def pay(key):
        body = json.dumps({"account": str(acc.pk), "amount": f"{amounts[key]}", "channel": "card"}).encode()
        request = urllib.request.Request(f"{live_server.url}/api/v1/payments/", data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {token}", "Idempotency-Key": key})
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())["number"]

    results = run_threads(pay, calls)
    assert {status for _key, (status, _n) in results} == {201}
    by_key = {}
    for key, (_status, number) in results:
        by_key.setdefault(key, set()).add(number)
    assert len(by_key) == DISTINCT and all(len(n) == 1 for n in by_key.values())
    assert_applied_once(acc, amounts)


def test_concurrent_reversals_and_refunds_of_one_payment_book_at_most_once(account):
    acc = account()
    payment = services.accept_payment(actor="test", account=acc, amount="100", channel="bank_transfer",
                                      idempotency_key="p")
    outcomes = []

    def act(i):
        try:
            if i % 2:
                services.reverse_payment(payment, actor="test", reason=f"r{i}")
                outcomes.append("reversed")
            else:
                services.refund_payment(payment, actor="test", amount="30", reason=f"f{i}", idempotency_key=f"f{i}")
                outcomes.append("refunded")
        except DomainError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=act, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    payment.refresh_from_db()
    refunds = outcomes.count("refunded")
    assert outcomes.count("reversed") <= 1
    if payment.status == "reversed":
        assert refunds == 0 and balance(acc) == 0
    else:
        assert refunds <= 3 and payment.refunded_amount == 30 * refunds
        assert balance(acc) == 100 - 30 * refunds
    assert set(outcomes) <= {"reversed", "refunded", "already_reversed", "not_reversible", "refund_exceeds_payment"}
