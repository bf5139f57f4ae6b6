"""accept_payment / reverse_payment / refund_payment: the operator's story and every refusal."""

from decimal import Decimal

import pytest

from tarifa.kernel.errors import DomainError
from tarifa.kernel.models import DomainEvent
from tarifa.ledger import services as ledger
from tarifa.ledger.models import Transfer
from tarifa.payments import services
from tarifa.payments.models import Payment, Refund

from .conftest import balance


def counts():
    return (Payment.objects.count(), Transfer.objects.count(), DomainEvent.objects.count(), Refund.objects.count())


def test_a_bank_transfer_credits_the_account_and_debits_the_bank(account, key):
    acc = account()
    payment = services.accept_payment(actor="test", account=acc, amount="25.50", channel="bank_transfer",
                                      idempotency_key=key(), external_reference="invoice 7", payer="M. Garcia")
    assert payment.number.startswith("HQ-P") and payment.status == "applied" and not payment.replayed
    assert balance(acc) == Decimal("25.50")
    t = payment.transfer
    assert (t.kind, t.debit_account.code, t.credit_account_id, t.tags) == (
        "payment", "bank", acc.ledger_account_id, {"channel": "bank_transfer"})
    assert t.reference_type == "payments.payment" and t.reference_id == str(payment.pk)
    event = DomainEvent.objects.get(name="payments.payment_received", object_id=str(payment.pk))
    assert event.payload == {"billing_account": str(acc.pk), "billing_account_number": acc.number,
                             "amount": "25.500000", "currency": "USD", "channel": "bank_transfer",
                             "payment": payment.number}


def test_an_account_is_found_by_id_or_number(account, key):
    acc = account()
    services.accept_payment(actor="test", account=str(acc.pk), amount="1", channel="other", idempotency_key=key())
    services.accept_payment(actor="test", account=acc.number.lower(), amount="2", channel="other", idempotency_key=key())
    assert balance(acc) == 3


def test_a_retry_returns_the_first_payment_and_moves_nothing(account, key):
    acc = account()
    k = key()
    first = services.accept_payment(actor="test", account=acc, amount="10", channel="card", idempotency_key=k)
    before = counts()
    again = services.accept_payment(actor="test", account=acc, amount="10.00", channel="card", idempotency_key=k)
    assert again.pk == first.pk and again.replayed
    assert counts() == before and balance(acc) == 10


@pytest.mark.parametrize("change", [{"amount": "11"}, {"channel": "cash"}, {"other_account": True}])
def test_the_same_key_for_another_payment_is_refused(account, key, change):
    acc = account()
    k = key()
    services.accept_payment(actor="test", account=acc, amount="10", channel="card", idempotency_key=k)
    before = counts()
    args = {"amount": "10", "channel": "card", "account": acc}
    if change.pop("other_account", False):
        args["account"] = account()
    args.update(change)
    with pytest.raises(DomainError) as exc:
        services.accept_payment(actor="test", idempotency_key=k, **args)
    assert exc.value.code == "idempotency_conflict" and exc.value.status == 409
    assert counts() == before


@pytest.mark.parametrize("amount, code", [
    ("0", "amount_zero"), ("0.00", "amount_zero"), ("-5", "amount_negative"), ("10.001", "amount_too_precise"),
    ("1.5e-3", "invalid_amount"), ("ten", "invalid_amount"), ("", "invalid_amount"), ("1,00", "invalid_amount"),
    ("NaN", "invalid_amount"), ("Infinity", "invalid_amount"), (10.5, "invalid_amount"),
    ("1e20", "invalid_amount"), ("1" * 20, "amount_too_large"),
])
def test_bad_amounts_are_refused_with_their_code_and_nothing_written(account, key, amount, code):
    acc = account()
    before = counts()
    with pytest.raises(DomainError) as exc:
        services.accept_payment(actor="test", account=acc, amount=amount, channel="cash", idempotency_key=key())
    assert exc.value.code == code, exc.value.message
    assert exc.value.status == 400
    assert counts() == before and balance(acc) == 0


def test_a_currency_with_no_minor_unit_refuses_cents(account, key):
    acc = account(currency="JPY")
    with pytest.raises(DomainError) as exc:
        services.accept_payment(actor="test", account=acc, amount="100.5", channel="cash", idempotency_key=key())
    assert exc.value.code == "amount_too_precise"
    services.accept_payment(actor="test", account=acc, amount="100", channel="cash", idempotency_key=key())


def test_wrong_currency_unknown_and_closed_accounts_and_bad_channels(account, key):
    acc = account()
    closed = account()
    ledger.close_account(closed, actor="test")
    before = counts()
    cases = [
        ({"account": acc, "currency": "EUR"}, "currency_mismatch", 400),
        ({"account": acc, "currency": "XXX"}, "invalid_currency", 400),
        ({"account": "HQ-A9999999"}, "account_not_found", 400),
        ({"account": "7d1c3c1e-0000-7000-8000-000000000000"}, "account_not_found", 400),
        ({"account": closed}, "account_closed", 409),
        ({"account": acc, "channel": "bitcoin"}, "invalid_channel", 400),
        ({"account": acc, "idempotency_key": ""}, "idempotency_key_required", 400),
        ({"account": acc, "idempotency_key": "x" * 191}, "idempotency_key_too_long", 400),
        ({"account": acc, "provider_txn_id": "T1"}, "gateway_required", 400),
    ]
    for extra, code, status in cases:
        args = {"amount": "10", "channel": "cash", "idempotency_key": key(), **extra}
        with pytest.raises(DomainError) as exc:
            services.accept_payment(actor="test", **args)
        assert (exc.value.code, exc.value.status) == (code, status), extra
    assert counts() == before


def test_reversal_books_the_mirror_once_and_emits_an_event(account, key, make_user):
    acc = account()
    payment = services.accept_payment(actor="test", account=acc, amount="40", channel="bank_transfer",
                                      idempotency_key=key())
    clerk = make_user("payments.reverse")
    reversed_ = services.reverse_payment(payment, actor=clerk, reason="paid to the wrong account")
    assert reversed_.status == "reversed" and reversed_.reversal_transfer.reverses_id == payment.transfer_id
    assert balance(acc) == 0
    assert DomainEvent.objects.filter(name="payments.payment_reversed", object_id=str(payment.pk)).count() == 1
    with pytest.raises(DomainError) as exc:
        services.reverse_payment(payment, actor=clerk, reason="again")
    assert exc.value.code == "already_reversed"


def test_reversal_needs_the_permission_and_a_reason(account, key, make_user):
    acc = account()
    payment = services.accept_payment(actor="test", account=acc, amount="40", channel="bank_transfer",
                                      idempotency_key=key())
    with pytest.raises(DomainError) as exc:
        services.reverse_payment(payment, actor=make_user("payments.view_payment"), reason="x")
    assert exc.value.code == "permission_denied"
    with pytest.raises(DomainError) as exc:
        services.reverse_payment(payment, actor="test", reason="  ")
    assert exc.value.code == "reason_required"
    assert balance(acc) == 40


def test_refunds_never_exceed_what_was_paid(account, key, make_user):
    acc = account()
    payment = services.accept_payment(actor="test", account=acc, amount="30", channel="bank_transfer",
                                      idempotency_key=key())
    clerk = make_user("payments.refund")
    first = services.refund_payment(payment, actor=clerk, amount="10", reason="overpaid", idempotency_key=key())
    assert first.transfer.kind == "refund" and first.transfer.credit_account.code == "bank"
    assert balance(acc) == 20
    with pytest.raises(DomainError) as exc:
        services.refund_payment(payment, actor=clerk, amount="20.01", reason="too much", idempotency_key=key())
    assert exc.value.code == "refund_exceeds_payment"
    services.refund_payment(payment, actor=clerk, amount="20", reason="rest", idempotency_key=key())
    payment.refresh_from_db()
    assert payment.refunded_amount == 30 and balance(acc) == 0
    with pytest.raises(DomainError) as exc:
        services.refund_payment(payment, actor=clerk, amount="0.01", reason="more", idempotency_key=key())
    assert exc.value.code == "refund_exceeds_payment"
    with pytest.raises(DomainError) as exc:
        services.reverse_payment(payment, actor="test", reason="undo")
    assert exc.value.code == "not_reversible"


def test_a_refund_needs_permission_and_does_not_refund_spent_money(account, key, make_user):
    from tarifa.ledger.tests import factories

    acc = account()
    payment = services.accept_payment(actor="test", account=acc, amount="30", channel="bank_transfer",
                                      idempotency_key=key())
    with pytest.raises(DomainError) as exc:
        services.refund_payment(payment, actor=make_user("payments.view_payment"), amount="1", reason="x",
                                idempotency_key=key())
    assert exc.value.code == "permission_denied"
    factories.charge(acc, "25")
    with pytest.raises(DomainError) as exc:
        services.refund_payment(payment, actor="test", amount="10", reason="x", idempotency_key=key())
    assert exc.value.code == "insufficient_funds"
    k = key()
    refund = services.refund_payment(payment, actor="test", amount="5", reason="x", idempotency_key=k)
    again = services.refund_payment(payment, actor="test", amount="5", reason="x", idempotency_key=k)
    assert again.pk == refund.pk and again.replayed and balance(acc) == 0
