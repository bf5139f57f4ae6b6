"""Two (ten) operators at once, on real PostgreSQL connections: one wins."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from tarifa.inventory import services
from tarifa.inventory.models import Device, Move, Reservation
from tarifa.kernel.errors import DomainError

THREADS = 10


def race(worker, n=THREADS):
    barrier = threading.Barrier(n)
    results, errors, lock = [], [], threading.Lock()

    def run(i):
        try:
            barrier.wait()
            outcome = worker(i)
            with lock:
                results.append(outcome)
        except DomainError as exc:
            with lock:
                errors.append(exc.code)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion
            with lock:
                errors.append(repr(exc))
        finally:
            connection.close()

    pool = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in pool), "a thread hung (deadlock?)"
    return results, errors


@pytest.mark.django_db(transaction=True)
def test_ten_operators_reserve_one_serial_one_wins(stock):
    services.receive(actor="system", warehouse=stock.warehouse, item=stock.router, serials=["HOT-1"])
    results, errors = race(lambda i: services.reserve(actor="system", reference=f"ticket:{i}", serial="HOT-1"))
    assert len(results) == 1 and errors == ["device_reserved"] * (THREADS - 1), errors
    assert Reservation.objects.filter(state="active").count() == 1


@pytest.mark.django_db(transaction=True)
def test_ten_operators_install_one_serial_one_wins(stock):
    services.receive(actor="system", warehouse=stock.warehouse, item=stock.router, serials=["HOT-2"])
    services.issue(actor="system", serial="HOT-2", warehouse=stock.warehouse, technician_location=stock.van)
    results, errors = race(lambda i: services.install(actor="system", serial="HOT-2", source=stock.van,
                                                      customer=stock.customer, ticket_ref=f"T-{i}"))
    assert len(results) == 1 and errors == ["device_not_here"] * (THREADS - 1), errors
    assert Move.objects.filter(kind="install").count() == 1
    assert Device.objects.get(serial="HOT-2").location.customer_id == stock.customer.pk


@pytest.mark.django_db(transaction=True)
def test_issuing_more_than_on_hand_from_ten_threads(stock):
    services.receive(actor="system", warehouse=stock.warehouse, item=stock.cable, quantity=Decimal("35"))
    results, errors = race(lambda i: services.issue(actor="system", item=stock.cable, quantity=Decimal("10"),
                                                    warehouse=stock.warehouse, technician_location=stock.van))
    assert len(results) == 3 and errors == ["insufficient_stock"] * 7, errors
