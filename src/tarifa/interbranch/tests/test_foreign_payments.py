"""Foreign payments on one database playing both branches: B2 takes a payment for an account of HQ
(the accounts' owner here), HQ's handler applies it through the inbox rule, B2 learns the result
through the relay's acknowledgement. Refusals (unknown, closed account) come back and are refunded."""

import uuid
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.test import override_settings

from tarifa.federation import handlers, services as federation
from tarifa.federation.models import InboundMessage, OutboundMessage
from tarifa.interbranch import services
from tarifa.interbranch.models import ForeignPayment, ReceivedPayment
from tarifa.journals.models import JournalEntry
from tarifa.kernel.clock import now
from tarifa.kernel.errors import DomainError
from tarifa.ledger import services as ledger
from tarifa.ledger.tests import factories
from tarifa.payments.models import Payment

pytestmark = pytest.mark.django_db

OWNER, TAKER = "HQ", "B2"


@contextmanager
def as_node(code):
    with override_settings(TARIFA_NODE_CODE=code, TARIFA_NODE_ROLE="branch"):
        yield


@pytest.fixture(autouse=True)
def registry():
    for code in (OWNER, TAKER):
        federation.create_node(actor="test", code=code, name=f"Branch {code}", base_url=f"http://{code.lower()}.test")


def balance(code, currency="USD"):
    return ledger.system_account(code, currency).balance


def take(account, amount="10.00", key=None, **kw):
    with as_node(TAKER):
        return services.take_foreign_payment(actor=kw.pop("actor", "test"), account=account, amount=amount,
                                             channel=kw.pop("channel", "cash"), currency=kw.pop("currency", "USD"),
                                             idempotency_key=key or uuid.uuid4().hex, **kw)


def deliver(fp: ForeignPayment):
    """What the relay and the owner's endpoint do: number, post, apply at the owner, acknowledge at B2."""
    with as_node(TAKER):
        federation.number_messages(OWNER)
        message = OutboundMessage.objects.get(pk=fp.message_id)
    envelope = handlers.Message(message_id=message.id, sender=TAKER, receiver=OWNER, kind=message.kind,
                                stream_seq=message.stream_seq, type=message.type,
                                schema_version=message.schema_version, payload=message.payload,
                                created_at=message.created_at)
    with as_node(OWNER):
        status, body = federation.receive(envelope)
    assert status == 200, body
    with as_node(TAKER):
        federation.acknowledged(message, next_expected=body["next_expected"], result=body["result"])
    fp.refresh_from_db()
    return envelope, body


def test_a_payment_taken_at_b2_is_booked_there_and_sent_in_one_transaction():
    acc = factories.account()
    fp = take(acc.number, "25.00", payer="Ivan")
    assert fp.status == "pending" and fp.owner_branch == OWNER and fp.number.split("-")[1].startswith("FP")
    assert fp.transfer.amount == Decimal("25.00")
    assert (fp.transfer.debit_account.code, fp.transfer.credit_account.code) == ("cash:main", "due_to:HQ")
    assert balance("due_to:HQ") == Decimal("25.00")
    message = OutboundMessage.objects.get(pk=fp.message_id)
    assert (message.receiver, message.kind, message.type) == (OWNER, "payments", "interbranch.foreign_payment")
    assert message.payload == {"payment_id": str(fp.id), "number": fp.number, "account": acc.number,
                               "amount": "25.00", "currency": "USD", "channel": "cash", "payer": "Ivan",
                               "received_at": fp.received_at.isoformat()}
    acc.ledger_account.refresh_from_db()
    assert acc.ledger_account.balance == 0  # nothing moves at the owner until it applies the message


def test_the_owner_applies_it_once_against_due_from_and_b2_shows_its_payment_number():
    acc = factories.account()
    fp = take(acc.number, "25.00")
    envelope, body = deliver(fp)
    assert body["status"] == "applied"
    payment = Payment.objects.get(number=body["result"]["payment"])
    assert payment.billing_account == acc and payment.amount == Decimal("25.00")
    assert payment.debit_account.code == "due_from:B2" and payment.external_reference == fp.number
    assert payment.idempotency_key == f"interbranch:B2:{fp.id}"
    acc.ledger_account.refresh_from_db()
    assert acc.ledger_account.balance == Decimal("25.00")
    assert balance("due_from:B2") == Decimal("-25.00")  # an asset: debits over credits
    received = ReceivedPayment.objects.get(sender=TAKER, remote_id=fp.id)
    assert (received.payment, received.remote_number, received.billing_account) == (payment, fp.number, acc)
    assert (fp.status, fp.remote_payment_number) == ("applied", payment.number)
    # Both journals: B2's taking and HQ's applying, matched by B2's receipt number.
    entries = {(e.branch, e.kind): e for e in JournalEntry.objects.filter(reference=fp.number)}
    assert set(entries) == {(TAKER, "taken_for"), (OWNER, "applied_from")}
    assert entries[(TAKER, "taken_for")].counterparty == OWNER and entries[(OWNER, "applied_from")].payment == payment
    assert entries[(TAKER, "taken_for")].amount == entries[(OWNER, "applied_from")].amount == Decimal("25.00")

    # The same message posted again: the stored answer, nothing applied twice.
    with as_node(OWNER):
        status, again = federation.receive(envelope)
    assert (status, again["status"], again["result"]) == (200, "duplicate", body["result"])
    # The result hook again (a relay that lost the answer): nothing changes.
    with as_node(TAKER):
        services.record_result(OutboundMessage.objects.get(pk=fp.message_id), body["result"])
    # The handler itself called twice (a replayed inbox): the same payment.
    with as_node(OWNER):
        assert services.apply_received_payment(sender=TAKER, payload=envelope.payload)["payment"] == payment.number
    acc.ledger_account.refresh_from_db()
    assert acc.ledger_account.balance == Decimal("25.00")
    assert Payment.objects.filter(billing_account=acc).count() == 1 and ReceivedPayment.objects.count() == 1
    assert JournalEntry.objects.filter(reference=fp.number).count() == 2
    fp.refresh_from_db()
    assert fp.status == "applied"


@pytest.mark.parametrize("case", ["unknown", "closed", "currency"])
def test_a_refusal_comes_back_the_money_is_owed_to_the_payer_and_refunded_once(case, make_user):
    acc = factories.account(currency="EUR" if case == "currency" else "USD")
    number = {"unknown": f"{OWNER}-A9999999"}.get(case, acc.number)
    if case == "closed":
        ledger.close_account(acc, actor="test", reason="moved away")
    fp = take(number, "7.50")
    _envelope, body = deliver(fp)
    code = {"unknown": "account_not_found", "closed": "account_closed", "currency": "currency_mismatch"}[case]
    assert body["status"] == "applied" and body["result"]["refused"]["code"] == code
    assert (fp.status, fp.refusal_code) == ("refused", code)
    assert fp.refusal_message
    assert not Payment.objects.filter(idempotency_key=f"interbranch:B2:{fp.id}").exists()
    assert not ReceivedPayment.objects.exists()
    # Not owed to HQ any more (due-to at B2 agrees with due-from at HQ), but to the payer.
    assert balance("due_to:HQ") == 0 and balance("interbranch_refunds") == Decimal("7.50")
    assert balance("cash:main") == Decimal("-7.50")
    # B2's journal: the taking and its reversal (nothing at HQ).
    assert sorted(JournalEntry.objects.filter(reference=fp.number).values_list("branch", "kind", "amount")) == [
        (TAKER, "taken_for", Decimal("7.50")), (TAKER, "taken_for_reversal", Decimal("-7.50"))]

    clerk = make_user("interbranch.view_foreignpayment")
    with pytest.raises(DomainError) as refused:
        services.refund_foreign_payment(fp, actor=clerk)
    assert refused.value.code == "permission_denied"
    fp = services.refund_foreign_payment(fp, actor="test", reason="paid back at the desk")
    assert (fp.status, fp.refund_reason) == ("refunded", "paid back at the desk")
    assert balance("interbranch_refunds") == 0 and balance("cash:main") == 0
    with pytest.raises(DomainError) as twice:
        services.refund_foreign_payment(fp, actor="test")
    assert twice.value.code == "not_refundable"


def test_an_applied_or_pending_payment_is_not_refunded():
    acc = factories.account()
    fp = take(acc.number)
    with pytest.raises(DomainError) as pending:
        services.refund_foreign_payment(fp, actor="test")
    assert pending.value.code == "not_refundable"
    deliver(fp)
    with pytest.raises(DomainError) as applied:
        services.refund_foreign_payment(fp, actor="test")
    assert applied.value.code == "not_refundable"


def test_a_retry_with_the_same_key_returns_the_first_payment_and_another_body_is_a_conflict():
    acc = factories.account()
    first = take(acc.number, "10.00", key="k-1")
    again = take(acc.number, "10.00", key="k-1")
    assert again.pk == first.pk and again.replayed
    with pytest.raises(DomainError) as conflict:
        take(acc.number, "11.00", key="k-1")
    assert conflict.value.code == "idempotency_conflict"
    assert ForeignPayment.objects.count() == 1 and OutboundMessage.objects.count() == 1
    assert balance("due_to:HQ") == Decimal("10.00")


def test_bad_requests_are_refused_and_nothing_is_written(make_user):
    acc = factories.account()
    cases = [
        (dict(account=acc.number), "not_foreign", OWNER),  # HQ's own account taken at HQ
        (dict(account="ZZ-A0000001"), "unknown_branch", "B2"),
        (dict(account="A0000001"), "branch_required", "B2"),
        (dict(account=""), "account_required", "B2"),
        (dict(account=acc.number, amount="0"), "amount_zero", "B2"),
        (dict(account=acc.number, amount="1.001"), "amount_too_precise", "B2"),
        (dict(account=acc.number, channel="voucher"), "invalid_channel", "B2"),
        (dict(account=acc.number, channel="pigeon"), "invalid_channel", "B2"),
        (dict(account=acc.number, actor=make_user("interbranch.view_foreignpayment")), "permission_denied", "B2"),
    ]
    for kwargs, code, node in cases:
        kwargs = {"amount": "5.00", "channel": "cash", "actor": "test", **kwargs}
        with as_node(node), pytest.raises(DomainError) as exc:
            services.take_foreign_payment(currency="USD", idempotency_key=uuid.uuid4().hex, **kwargs)
        assert exc.value.code == code, (kwargs, exc.value.as_dict())
    assert not ForeignPayment.objects.exists() and not OutboundMessage.objects.exists()
    assert balance("due_to:HQ") == 0


def test_a_standalone_installation_takes_no_foreign_payment():
    acc = factories.account()
    with override_settings(TARIFA_NODE_ROLE="standalone", TARIFA_NODE_CODE=TAKER), pytest.raises(DomainError) as exc:
        services.take_foreign_payment(actor="test", account=acc.number, amount="5.00", channel="cash", currency="USD",
                                      idempotency_key="k")
    assert exc.value.code == "federation_disabled"
    assert not ForeignPayment.objects.exists() and balance("due_to:HQ") == 0


def test_cash_taken_by_a_cashier_goes_to_the_desk_of_the_open_shift(make_user):
    from tarifa.payments import services as payments

    desk = payments.create_cash_desk(actor="test", code="FRONT", name="Front", currency="USD")
    cashier = make_user("payments.operate_cash_desk", "interbranch.add_foreignpayment", username="carla")
    payments.update_cash_desk(desk, actor="test", cashiers=[cashier])
    shift = payments.open_shift(actor=cashier, desk=desk, opening_float="0")
    acc = factories.account()
    fp = take(acc.number, "30.00", actor=cashier)
    assert fp.desk == desk and fp.debit_account == desk.ledger_account and fp.actor == "carla"
    assert payments.expected_cash(shift) == Decimal("30.00")  # the drawer holds it at closing


def test_a_suspended_subscriber_is_resumed_by_a_payment_taken_at_another_branch():
    import datetime as dt

    from tarifa.kernel import clock
    from tarifa.subscriptions import daily
    from tarifa.subscriptions import services as subs
    from tarifa.subscriptions.tests.helpers import make_catalog, run_events

    with clock.travel_to(dt.datetime(2025, 1, 15, 9, tzinfo=dt.UTC)) as c:
        tariffs = make_catalog()
        acc = factories.account(currency="EUR")
        ledger.adjust(actor="test", account=acc, amount="7.00", reason="opening", idempotency_key="open")
        sub = subs.create_subscription(actor="test", billing_account=acc, tariff=tariffs["NET-31"], login="olga",
                                       activate=True)
        run_events()
        for _ in range(2):
            c.add_days(1)
            daily.run(as_of=c.today(), actor="test")
        sub.refresh_from_db()
        assert sub.status == "suspended"
        fp = take(acc.number, "20.00", currency="EUR")
        deliver(fp)
        assert fp.status == "applied"
        run_events()  # what the owner's worker does within seconds
        sub.refresh_from_db()
        assert sub.status == "active"


def test_the_handler_and_the_hook_are_registered_with_federation():
    assert handlers.get("interbranch.foreign_payment").version == 1
    assert handlers.result_hook("interbranch.foreign_payment") is services.record_result
    assert InboundMessage.objects.count() == 0 and now()
