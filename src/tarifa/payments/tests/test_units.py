"""Money a person reads (messages, memos, the audit trail, receipts) is in the currency's units:
"100.00 USD", never "100.000000" or "1"."""

import pytest

from tarifa.audit.selectors import history
from tarifa.kernel.errors import DomainError
from tarifa.ledger.models import Transfer
from tarifa.payments import services

pytestmark = pytest.mark.django_db


def test_refusals_memos_and_history_show_amounts_in_units(account, desk, cashier, key):
    acc = account()
    gateway = services.create_gateway(actor="test", code="CARDS", name="Cards", kind="card", adapter="simulated",
                                      currency="USD", min_amount="1", max_amount="500")[0]
    with pytest.raises(DomainError) as err:
        services.accept_payment(actor="test", account=acc, amount="0.50", channel="card", gateway=gateway,
                                provider_txn_id="t1", idempotency_key=key())
    assert err.value.message == "The least CARDS accepts is 1.00 USD."

    front = desk()
    carla = cashier(desk=front)
    shift = services.open_shift(actor=carla, desk=front, opening_float="100")
    payment = services.accept_payment(actor=carla, account=acc, amount="25.5", channel="cash", shift=shift,
                                      idempotency_key=key())
    closed = services.close_shift(shift, actor=carla, counted_cash="120")
    memo = Transfer.objects.get(pk=closed.discrepancy_transfer_id).memo
    assert memo == f"Shift {shift.number}: counted 120.00, expected 125.50 USD"
    accepted = [e for e in history(payment) if e.action == "accept"][0]
    assert accepted.changes["amount"] == [None, "25.50"]
    with pytest.raises(DomainError) as err:
        services.hand_over_cash(actor="test", from_desk=front, amount="500", destination="bank",
                                idempotency_key=key())
    assert "holds 20.00 USD on the books" in err.value.message  # 25.50 taken, 5.50 short
