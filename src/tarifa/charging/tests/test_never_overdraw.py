"""Never overdraw: any interleaving of N sessions on one account (Hypothesis), and real threads."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tarifa.kernel import clock
from tarifa.ledger.models import Hold

from .. import services
from ..models import ChargingSession, Reservation
from .helpers import ACTOR, DAY, available, funded_subscriber, ledger_clean, seconds, world

OPS = st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["update", "terminate"]), st.integers(0, 100),
                         st.integers(1, 400)), max_size=25)


def _open_reserved(acc) -> Decimal:
    return sum((r.amount for r in Reservation.objects.filter(billing_account=acc, state="open")), Decimal(0))


@pytest.mark.django_db
def test_any_interleaving_of_sessions_never_overdraws():
    w = world()
    acc, _sub = funded_subscriber(w, "+15550077", funds="7.00")

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(starts=st.lists(st.integers(1, 900), min_size=1, max_size=4), ops=OPS)
    def run(starts, ops):
        with transaction.atomic():
            with clock.travel_to(DAY):
                sessions, grants = [], []
                for i, ask in enumerate(starts):
                    a = services.start(actor=ACTOR, identifier="+15550077", usage_type="voice",
                                       external_id=f"p{i}", destination="4420123", requested=seconds(ask))
                    sessions.append(a.session)
                    grants.append(a.granted if a.ok else 0)
                    assert available(acc) >= 0
                for index, op, percent, ask in ops:
                    if index >= len(sessions):
                        continue
                    used = grants[index] * percent // 100  # an honest client uses at most what it was granted
                    if op == "update":
                        a = services.update(sessions[index], actor=ACTOR, used=used, requested=seconds(ask))
                        grants[index] = a.granted if a.ok else 0
                    else:
                        services.terminate(sessions[index], actor=ACTOR, used=used)
                        grants[index] = 0
                    acc.ledger_account.refresh_from_db()
                    assert available(acc) >= 0
                    assert _open_reserved(acc) <= acc.ledger_account.balance
                    pending = sum((h.amount for h in Hold.objects.filter(debit_account=acc.ledger_account,
                                                                          state="pending")), Decimal(0))
                    assert pending == _open_reserved(acc)
            transaction.set_rollback(True)

    run()


@pytest.mark.django_db(transaction=True)
def test_concurrent_sessions_on_one_account_with_real_threads():
    w = world()
    acc, _sub = funded_subscriber(w, "+15550088", funds="10.00")
    errors, barrier = [], threading.Barrier(6)

    def caller(n):
        try:
            barrier.wait(timeout=30)
            with clock.travel_to(DAY):
                a = services.start(actor=ACTOR, identifier="+15550088", usage_type="voice", external_id=f"t{n}",
                                   destination="4420123", requested=seconds(600))
                granted = a.granted if a.ok else 0
                for _ in range(5):
                    if not a.ok or a.session is None:
                        break
                    a = services.update(a.session, actor=ACTOR, used=granted, requested=seconds(120))
                    granted = a.granted if a.ok else 0
                if a.session:
                    services.terminate(a.session, actor=ACTOR, used=granted)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert available(acc) >= 0
    assert not Hold.objects.filter(state="pending").exists()
    spent = sum((s.charged for s in ChargingSession.objects.filter(billing_account=acc)), Decimal(0))
    assert available(acc) == Decimal("10.00") - spent
    assert spent > Decimal("9")  # the money was used, not refused for nothing
    ledger_clean()
