"""Holds are posted, voided or expired exactly once."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tarifa.kernel.clock import travel_to
from tarifa.kernel.errors import DomainError
from tarifa.ledger import services, tasks
from tarifa.ledger.models import Hold, Transfer

from . import factories as f

pytestmark = pytest.mark.usefixtures("ledger_ok")

T0 = timezone.make_aware(dt.datetime(2026, 5, 1, 12, 0))


def hold(account, amount="4", key=None, **kwargs):
    return services.create_hold(actor="t", debit=account, credit=f.revenue(), amount=amount, currency="USD",
                                idempotency_key=key or f.key("hold"), kind="charge", **kwargs)


def totals(account):
    account.ledger_account.refresh_from_db()
    la = account.ledger_account
    return la.balance, la.debits_pending, la.available


def code_of(func, *args, **kwargs):
    with pytest.raises(DomainError) as err:
        func(*args, **kwargs)
    return err.value.code


def test_create_reserves_and_retry_returns_the_same_hold():
    account = f.account()
    f.pay(account, "10")
    h = hold(account, "4", key="h1")
    assert totals(account) == (Decimal("10"), Decimal("4"), Decimal("6"))
    again = hold(account, "4", key="h1")
    assert again.pk == h.pk and again.replayed
    assert code_of(hold, account, "5", key="h1") == "idempotency_conflict"
    assert code_of(hold, account, "7") == "insufficient_funds"
    assert Hold.objects.count() == 1


def test_post_in_full_then_post_again_is_refused_but_a_retry_is_not():
    account = f.account()
    f.pay(account, "10")
    h = hold(account, "4")
    transfer = services.post_hold(h, actor="t", idempotency_key="p1")
    assert transfer.pending_id == h.pk and transfer.amount == Decimal("4") and transfer.kind == "charge"
    assert totals(account) == (Decimal("6"), 0, Decimal("6"))
    assert services.post_hold(h, actor="t", idempotency_key="p1").pk == transfer.pk
    assert code_of(services.post_hold, h, actor="t", idempotency_key="p2") == "hold_not_pending"
    assert code_of(services.void_hold, h, actor="t") == "hold_not_pending"
    h.refresh_from_db()
    assert h.state == "posted" and h.resolved_at is not None
    assert Transfer.objects.filter(pending=h).count() == 1


def test_partial_post_releases_the_rest():
    account = f.account()
    f.pay(account, "10")
    h = hold(account, "4")
    assert code_of(services.post_hold, h, actor="t", idempotency_key="p", amount="4.01") == "amount_exceeds_hold"
    services.post_hold(h, actor="t", idempotency_key="p", amount="1.5")
    assert totals(account) == (Decimal("8.5"), 0, Decimal("8.5"))


def test_void_releases_once_and_is_safe_to_retry():
    account = f.account()
    f.pay(account, "10")
    h = hold(account, "4")
    services.void_hold(h, actor="t", reason="session failed")
    assert totals(account) == (Decimal("10"), 0, Decimal("10"))
    assert services.void_hold(h, actor="t").replayed
    assert code_of(services.post_hold, h, actor="t", idempotency_key="p") == "hold_not_pending"


def test_expired_holds_cannot_be_posted_and_the_job_releases_them():
    account = f.account()
    f.pay(account, "10")
    with travel_to(T0) as clock:
        h = hold(account, "4", expires_at=T0 + dt.timedelta(minutes=5))
        keep = hold(account, "1", expires_at=T0 + dt.timedelta(hours=1))
        clock.add(dt.timedelta(minutes=6))
        assert code_of(services.post_hold, h, actor="t", idempotency_key="late") == "hold_expired"
        assert tasks.expire_holds(timestamp=0) == 1
        assert services.expire_holds() == 0  # nothing twice
    h.refresh_from_db()
    keep.refresh_from_db()
    assert (h.state, keep.state) == ("expired", "pending")
    assert totals(account) == (Decimal("10"), Decimal("1"), Decimal("9"))
    assert code_of(services.void_hold, h, actor="t") == "hold_not_pending"


def test_expire_holds_in_batches_with_an_explicit_as_of():
    account = f.account()
    f.pay(account, "100")
    with travel_to(T0):
        for _ in range(7):
            hold(account, "1", expires_at=T0 + dt.timedelta(minutes=1))
    assert services.expire_holds(as_of=T0, batch_size=3) == 0
    assert services.expire_holds(as_of=T0 + dt.timedelta(minutes=1), batch_size=3) == 7
    assert totals(account)[1] == 0


def test_hold_refusals():
    account = f.account(currency="EUR")
    assert code_of(services.create_hold, actor="t", debit=account, credit=f.revenue("EUR"), amount="1",
                   currency="EUR", idempotency_key="e", expires_at=timezone.now() - dt.timedelta(seconds=1)) \
        == "invalid_expiry"
    assert code_of(services.create_hold, actor="t", debit=account, credit=f.revenue("USD"), amount="1",
                   currency="EUR", idempotency_key="c") == "currency_mismatch"
    assert code_of(services.create_hold, actor="t", debit=account, credit=account, amount="1",
                   currency="EUR", idempotency_key="s") == "same_account"
    assert not Hold.objects.exists()


def test_the_database_refuses_resolving_a_hold_twice():
    account = f.account()
    f.pay(account, "5")
    h = hold(account, "1")
    services.void_hold(h, actor="t")
    with pytest.raises(IntegrityError, match="resolved once"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE ledger_hold SET state = 'posted' WHERE id = %s", [h.pk])
    with pytest.raises(IntegrityError, match="never deleted"), transaction.atomic():
        Hold.objects.filter(pk=h.pk).delete()
