"""Concurrency against the real PostgreSQL: threads with their own connections.

No deadlock (fixed lock order), no lost update (totals updated under the row lock), no
double application of a key (the key is checked after the lock, inserted ON CONFLICT).
"""

import random
import threading
from decimal import Decimal

import pytest
from django.db import connection

from tarifa.kernel.errors import DomainError
from tarifa.ledger import services
from tarifa.ledger.models import Transfer
from tarifa.ledger.selectors import check_ledger

from . import factories as f

THREADS = 10


def in_threads(work_items, worker, threads=THREADS):
    """Split `work_items` over `threads` threads started together; returns (results, errors)."""
    barrier = threading.Barrier(threads)
    results, errors = [], []
    lock = threading.Lock()

    def run(items):
        try:
            barrier.wait()
            for item in items:
                try:
                    outcome = worker(item)
                    with lock:
                        results.append(outcome)
                except DomainError as exc:
                    with lock:
                        errors.append(exc.code)
        except Exception as exc:  # noqa: BLE001 - reported below, with the thread's traceback lost
            with lock:
                errors.append(repr(exc))
        finally:
            connection.close()

    chunks = [work_items[i::threads] for i in range(threads)]
    pool = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in pool), "a thread hung (deadlock?)"
    return results, errors


@pytest.mark.django_db(transaction=True)
def test_50_payments_from_10_threads_with_retried_keys():
    account = f.account()
    cash = f.cash()
    rng = random.Random(7)
    distinct = [(f"pay-{i}", Decimal(rng.randint(1, 100_000)) / 100) for i in range(40)]
    retries = rng.sample(distinct, 10)  # the same key and body sent again, from another thread
    items = distinct + retries
    rng.shuffle(items)
    assert len(items) == 50

    def pay(item):
        key, amount = item
        return services.post_transfer(actor="thread", debit=cash, credit=account, amount=amount, currency="USD",
                                      kind="payment", idempotency_key=key, tags={"channel": "cash"})

    results, errors = in_threads(items, pay)
    assert errors == []
    assert len(results) == 50
    assert sum(1 for t in results if t.replayed) == 10
    expected = sum(amount for _key, amount in distinct)
    assert f.balance(account) == expected
    assert Transfer.objects.count() == 40
    assert sorted(Transfer.objects.values_list("idempotency_key", flat=True)) == sorted(k for k, _a in distinct)
    report = check_ledger()
    assert report["ok"], report["problems"]
    assert Decimal(report["moved"]["USD"]) == expected


@pytest.mark.django_db(transaction=True)
def test_concurrent_charges_never_overdraw_a_prepaid_account():
    account = f.account()
    f.pay(account, "10")
    revenue = f.revenue()

    def charge(i):
        return services.post_transfer(actor="thread", debit=account, credit=revenue, amount="1", currency="USD",
                                      kind="charge", idempotency_key=f"c-{i}")

    results, errors = in_threads(list(range(30)), charge)
    assert len(results) == 10 and errors == ["insufficient_funds"] * 20
    assert f.balance(account) == 0
    assert check_ledger()["ok"]


@pytest.mark.django_db(transaction=True)
def test_crossing_movements_and_a_bulk_batch_do_not_deadlock():
    """A→B and B→A transfers, holds, payments and a bulk batch over the same accounts at once."""
    customer = f.customer()
    a, b = f.account(customer), f.account(customer)
    f.pay(a, "1000")
    f.pay(b, "1000")
    revenue, cash = f.revenue(), f.cash()

    def work(i):
        kind = i % 5
        if kind == 0:
            return services.transfer_between_accounts(actor="t", source=a, target=b, amount="1", reason="x",
                                                      idempotency_key=f"ab-{i}")
        if kind == 1:
            return services.transfer_between_accounts(actor="t", source=b, target=a, amount="1", reason="x",
                                                      idempotency_key=f"ba-{i}")
        if kind == 2:
            hold = services.create_hold(actor="t", debit=a if i % 2 else b, credit=revenue, amount="2",
                                        currency="USD", idempotency_key=f"h-{i}")
            return services.post_hold(hold, actor="t", idempotency_key=f"hp-{i}", amount="1")
        if kind == 3:
            return services.post_transfer(actor="t", debit=cash, credit=b if i % 2 else a, amount="3",
                                          currency="USD", kind="payment", idempotency_key=f"p-{i}")
        return services.post_transfers_bulk([
            (a.ledger_account_id, revenue.pk, Decimal("0.5"), "USD", "charge", f"bulk-a-{i}"),
            (b.ledger_account_id, revenue.pk, Decimal("0.5"), "USD", "charge", f"bulk-b-{i}"),
        ])

    results, errors = in_threads(list(range(100)), work)
    assert errors == []
    assert len(results) == 100
    report = check_ledger()
    assert report["ok"], report["problems"]
    # 20 each of: a→b, b→a (cancel out); holds posting 1 from a or b (10 each);
    # payments of 3 (10 each); bulk 0.5 from each (20 batches).
    assert f.balance(a) == 1000 - 10 + 30 - 10
    assert f.balance(b) == 1000 - 10 + 30 - 10
