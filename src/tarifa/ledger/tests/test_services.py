"""Services: each error code, and nothing written when one is raised."""

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.utils import IntegrityError

from tarifa.audit.selectors import history
from tarifa.kernel.clock import travel_to
from tarifa.kernel.errors import DomainError
from tarifa.ledger import services
from tarifa.ledger.models import (
    BillingAccount,
    Hold,
    LedgerAccount,
    PaymentModeChange,
    Transfer,
)
from tarifa.ledger.selectors import check_ledger, payment_mode_on, transfers_of

from . import factories as f

pytestmark = pytest.mark.usefixtures("ledger_ok")


def snapshot():
    # System accounts the test helpers create on first use (with zero totals) do not count.
    moved = LedgerAccount.objects.exclude(kind="system", debits_posted=0, credits_posted=0, debits_pending=0,
                                          credits_pending=0)
    return (Transfer.objects.count(), Hold.objects.count(),
            sorted(moved.values_list("code", "debits_posted", "credits_posted", "debits_pending",
                                                     "credits_pending")))


def refused(code, func, *args, **kwargs):
    before = snapshot()
    with pytest.raises(DomainError) as err:
        func(*args, **kwargs)
    assert err.value.code == code, err.value.message
    assert snapshot() == before
    return err.value


def test_open_account_numbers_and_ledger_account():
    account = f.account(currency="EUR", payment_mode="postpaid", credit_limit="100")
    assert account.number.startswith("HQ-A")
    assert account.ledger_account.code == f"customer:{account.number}"
    assert account.ledger_account.currency == "EUR" and account.credit_limit == Decimal("100")
    assert list(account.mode_changes.values_list("from_mode", "to_mode")) == [("", "postpaid")]


@pytest.mark.parametrize("kwargs, code", [
    ({"currency": "ZZZ"}, "invalid_currency"),
    ({"payment_mode": "monthly"}, "invalid_payment_mode"),
    ({"credit_limit": "-5"}, "credit_limit_negative"),
    ({"credit_limit": 1.5}, "invalid_amount"),
    ({"credit_limit": "0.0000001"}, "amount_too_precise"),
])
def test_open_account_refusals(kwargs, code):
    customer = f.customer()
    args = {"currency": "USD", **kwargs}
    refused(code, services.open_account, actor="t", customer=customer, **args)
    assert not BillingAccount.objects.exists()


def test_open_account_for_archived_customer_is_refused():
    from tarifa.crm import services as crm

    customer = f.customer()
    crm.archive_customer(customer, actor="t", reason="gone")
    customer.refresh_from_db()
    refused("customer_closed", services.open_account, actor="t", customer=customer, currency="USD")


def test_payment_and_charge_move_the_balance_both_ways():
    account = f.account()
    f.pay(account, "20.00")
    f.charge(account, "7.125")
    assert f.balance(account) == Decimal("12.875")
    cash = f.cash()
    assert (cash.debits_posted, cash.credits_posted) == (Decimal("20"), Decimal("0"))
    assert [t.kind for t in transfers_of(account)] == ["charge", "payment"]


@pytest.mark.parametrize("amount, code", [
    ("0", "amount_not_positive"), ("-1", "amount_not_positive"), (1.0, "invalid_amount"), ("1e400", "invalid_amount"),
    ("1.1234567", "amount_too_precise"), ("100000000000000", "amount_too_large"), ("ten", "invalid_amount"),
])
def test_bad_amounts_write_nothing(amount, code):
    account = f.account()
    refused(code, f.pay, account, amount)


def test_wrong_currency_same_account_bad_kind_missing_key():
    usd, eur = f.account(), f.account(currency="EUR")
    cash = f.cash()
    refused("currency_mismatch", services.post_transfer, actor="t", debit=cash, credit=eur, amount="1",
            currency="USD", kind="payment", idempotency_key="x1")
    refused("currency_mismatch", services.post_transfer, actor="t", debit=cash, credit=usd, amount="1",
            currency="EUR", kind="payment", idempotency_key="x2")
    refused("invalid_currency", services.post_transfer, actor="t", debit=cash, credit=usd, amount="1",
            currency="usd", kind="payment", idempotency_key="x3")
    refused("same_account", services.post_transfer, actor="t", debit=usd, credit=usd, amount="1", currency="USD",
            kind="payment", idempotency_key="x4")
    refused("invalid_kind", services.post_transfer, actor="t", debit=cash, credit=usd, amount="1", currency="USD",
            kind="gift", idempotency_key="x5")
    refused("idempotency_key_required", services.post_transfer, actor="t", debit=cash, credit=usd, amount="1",
            currency="USD", kind="payment", idempotency_key="  ")
    refused("idempotency_key_too_long", services.post_transfer, actor="t", debit=cash, credit=usd, amount="1",
            currency="USD", kind="payment", idempotency_key="k" * 201)
    refused("invalid_tags", services.post_transfer, actor="t", debit=cash, credit=usd, amount="1", currency="USD",
            kind="payment", idempotency_key="x6", tags={"rate": 0.5})


def test_idempotent_retry_returns_the_first_transfer_and_other_content_conflicts():
    account = f.account()
    first = f.pay(account, "10", idempotency_key="pay-1")
    assert first.replayed is False
    again = f.pay(account, "10.000", idempotency_key="pay-1")
    assert again.pk == first.pk and again.replayed is True
    refused("idempotency_conflict", f.pay, account, "11", idempotency_key="pay-1")
    refused("idempotency_conflict", f.pay, f.account(), "10", idempotency_key="pay-1")
    refused("idempotency_conflict", services.post_transfer, actor="t", debit=f.cash(), credit=account, amount="10",
            currency="USD", kind="payment", idempotency_key="pay-1", memo="different memo")
    assert f.balance(account) == Decimal("10")


def test_retry_of_an_applied_charge_is_not_refused_for_funds():
    account = f.account()
    f.pay(account, "5")
    f.charge(account, "5", idempotency_key="c-1")
    assert f.charge(account, "5", idempotency_key="c-1").replayed  # not insufficient_funds
    assert f.balance(account) == 0


def test_prepaid_cannot_go_below_minus_credit_limit():
    account = f.account(credit_limit="5")
    f.pay(account, "10")
    f.charge(account, "15")  # down to -5 exactly: allowed
    err = refused("insufficient_funds", f.charge, account, "0.000001")
    assert err.status == 409
    assert f.balance(account) == Decimal("-5")


def test_pending_holds_count_against_prepaid_funds():
    account = f.account()
    f.pay(account, "10")
    services.create_hold(actor="t", debit=account, credit=f.revenue(), amount="8", currency="USD",
                         idempotency_key="h")
    refused("insufficient_funds", f.charge, account, "3")
    f.charge(account, "2")


def test_postpaid_is_limited_only_when_the_caller_asks():
    account = f.account(payment_mode="postpaid", credit_limit="100")
    f.charge(account, "150")
    assert f.balance(account) == Decimal("-150")
    refused("insufficient_funds", f.charge, account, "1", enforce_limit=True)
    prepaid = f.account()
    f.charge(prepaid, "3", enforce_limit=False)
    assert f.balance(prepaid) == Decimal("-3")


def test_closed_account_refuses_movements_but_not_reversals():
    account = f.account()
    payment = f.pay(account, "5")
    f.charge(account, "5")
    services.close_account(account, actor="t", reason="moving")
    refused("account_closed", f.pay, account, "1")
    refused("account_closed", services.create_hold, actor="t", debit=account, credit=f.revenue(), amount="1",
            currency="USD", idempotency_key="h-closed")
    services.reverse_transfer(payment, actor="t", reason="bounced", idempotency_key="rev")
    assert f.balance(account) == Decimal("-5")


def test_close_account_refusals():
    account = f.account()
    f.pay(account, "1")
    refused("balance_not_zero", services.close_account, account, actor="t")
    held = f.account()
    f.pay(held, "2")
    services.create_hold(actor="t", debit=held, credit=f.revenue(), amount="2", currency="USD", idempotency_key="h")
    services.void_hold(Hold.objects.get(idempotency_key="h"), actor="t")
    empty = f.account()
    services.close_account(empty, actor="t")
    refused("account_closed", services.close_account, empty, actor="t")
    refused("account_closed", services.set_credit_limit, empty, actor="t", credit_limit="5")
    refused("account_closed", services.switch_payment_mode, empty, actor="t", payment_mode="postpaid")


def test_holds_pending_blocks_close():
    account = f.account(credit_limit="10")
    services.create_hold(actor="t", debit=account, credit=f.revenue(), amount="2", currency="USD", idempotency_key="h")
    f.pay(account, "2")
    f.charge(account, "2")
    refused("holds_pending", services.close_account, account, actor="t")


def test_reversal_mirrors_once_and_a_reversal_is_not_reversed():
    account = f.account()
    payment = f.pay(account, "10")
    reversal = services.reverse_transfer(payment, actor="t", reason="duplicate", idempotency_key="r1")
    assert (reversal.debit_account_id, reversal.credit_account_id) == (payment.credit_account_id,
                                                                       payment.debit_account_id)
    assert reversal.amount == payment.amount and reversal.kind == "reversal" and reversal.memo == "duplicate"
    assert services.reverse_transfer(payment, actor="t", reason="duplicate", idempotency_key="r1").pk == reversal.pk
    refused("already_reversed", services.reverse_transfer, payment, actor="t", reason="again", idempotency_key="r2")
    refused("not_reversible", services.reverse_transfer, reversal, actor="t", reason="undo", idempotency_key="r3")
    refused("reason_required", services.reverse_transfer, f.pay(account, "1"), actor="t", reason=" ",
            idempotency_key="r4")
    assert f.balance(account) == Decimal("1")


def test_reversal_may_take_an_account_below_its_limit():
    account = f.account()
    payment = f.pay(account, "10")
    f.charge(account, "10")
    services.reverse_transfer(payment, actor="t", reason="chargeback", idempotency_key="r")
    assert f.balance(account) == Decimal("-10")


def test_permissions_are_checked_for_user_actors(make_user):
    clerk = make_user("ledger.view_billingaccount")
    account = f.account()
    payment = f.pay(account, "3")
    other = f.account(account.customer)
    refused("permission_denied", services.adjust, actor=clerk, account=account, amount="1", reason="x",
            idempotency_key="a")
    refused("permission_denied", services.transfer_between_accounts, actor=clerk, source=account, target=other,
            amount="1", reason="x", idempotency_key="b")
    refused("permission_denied", services.reverse_transfer, payment, actor=clerk, reason="x", idempotency_key="c")
    refused("permission_denied", services.close_account, account, actor=clerk)
    refused("permission_denied", services.switch_payment_mode, account, actor=clerk, payment_mode="postpaid")
    boss = make_user("ledger.adjust")
    services.adjust(actor=boss, account=account, amount="1", reason="x", idempotency_key="a")


def test_adjust_both_directions_against_the_adjustments_account():
    account = f.account()
    up = services.adjust(actor="t", account=account, amount="4.5", reason="goodwill", idempotency_key="a1")
    down = services.adjust(actor="t", account=account, amount="-10", reason="correction", idempotency_key="a2")
    adjustments = LedgerAccount.objects.get(code="adjustments", currency="USD")
    assert up.debit_account_id == adjustments.pk and down.credit_account_id == adjustments.pk
    assert f.balance(account) == Decimal("-5.5")  # not limited: the operator decided
    refused("amount_zero", services.adjust, actor="t", account=account, amount="0", reason="x", idempotency_key="a3")
    refused("reason_required", services.adjust, actor="t", account=account, amount="1", reason="",
            idempotency_key="a4")
    assert "adjust" in {event.action for event in history(account)}


def test_transfer_between_accounts_rules():
    source = f.account()
    target = f.account(source.customer)
    f.pay(source, "10")
    services.transfer_between_accounts(actor="t", source=source, target=target, amount="10", reason="merge",
                                       idempotency_key="m1")
    assert (f.balance(source), f.balance(target)) == (0, Decimal("10"))
    credit = f.account(source.customer, payment_mode="postpaid", credit_limit="100")
    refused("insufficient_funds", services.transfer_between_accounts, actor="t", source=credit, target=target,
            amount="1", reason="credit is not moved", idempotency_key="m2")
    refused("not_same_customer", services.transfer_between_accounts, actor="t", source=target, target=f.account(),
            amount="1", reason="x", idempotency_key="m3")
    refused("currency_mismatch", services.transfer_between_accounts, actor="t", source=target,
            target=f.account(source.customer, currency="EUR"), amount="1", reason="x", idempotency_key="m4")
    refused("same_account", services.transfer_between_accounts, actor="t", source=target, target=target,
            amount="1", reason="x", idempotency_key="m5")


def test_switch_payment_mode_history_is_effective_from_the_switch_date():
    import datetime as dt

    from django.utils import timezone

    with travel_to(timezone.make_aware(dt.datetime(2026, 3, 1, 10))) as clock:
        account = f.account()
        clock.add_days(14)
        services.switch_payment_mode(account, actor="t", payment_mode="postpaid", reason="contract signed")
        clock.add_days(10)
        services.switch_payment_mode(account, actor="t", payment_mode="prepaid")
    assert payment_mode_on(account, dt.date(2026, 2, 28)) is None
    assert payment_mode_on(account, dt.date(2026, 3, 14)) == "prepaid"
    assert payment_mode_on(account, dt.date(2026, 3, 15)) == "postpaid"
    assert payment_mode_on(account, dt.date(2026, 3, 25)) == "prepaid"
    assert PaymentModeChange.objects.filter(billing_account=account).count() == 3
    refused("payment_mode_unchanged", services.switch_payment_mode, account, actor="t", payment_mode="prepaid")
    refused("invalid_payment_mode", services.switch_payment_mode, account, actor="t", payment_mode="free")


def test_set_credit_limit():
    account = f.account()
    services.set_credit_limit(account, actor="t", credit_limit="25")
    account.refresh_from_db()
    assert account.credit_limit == Decimal("25")
    refused("credit_limit_negative", services.set_credit_limit, account, actor="t", credit_limit="-1")


def test_system_accounts_are_get_or_create_and_codes_are_checked():
    a = services.system_account("cash:DESK9", "USD", name="Desk 9")
    assert services.system_account("cash:DESK9", "USD").pk == a.pk
    assert services.system_account("cash:DESK9", "EUR").pk != a.pk
    for bad in ("customer:HQ-A1", "Cash", "cash:", "cash desk", ""):
        refused("invalid_account_code", services.system_account, bad, "USD")


def test_lock_accounts_orders_customers_before_system_accounts():
    account = f.account()
    cash = f.cash()
    with transaction.atomic():
        locked = services.lock_accounts(cash, account)
    assert list(locked) == [account.ledger_account_id, cash.pk]


def test_register_customer_opens_the_first_account(settings):
    settings.TARIFA_DEFAULT_CURRENCY = "EUR"
    customer = services.register_customer(actor="t", kind="individual", first_name="Grace", last_name="Hopper")
    (account,) = customer.billing_accounts.all()
    assert (account.currency, account.payment_mode) == ("EUR", "prepaid")
    with pytest.raises(DomainError):
        services.register_customer(actor="t", kind="individual", first_name="No", last_name="Account",
                                   currency="XXX")
    from tarifa.crm.models import Customer

    assert not Customer.objects.filter(first_name="No").exists()


def test_transfers_are_append_only_in_the_database():
    account = f.account()
    payment = f.pay(account, "1")
    for sql in ("UPDATE ledger_transfer SET amount = 2 WHERE id = %s", "DELETE FROM ledger_transfer WHERE id = %s"):
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [payment.pk])
    with pytest.raises(IntegrityError), transaction.atomic():
        Transfer.objects.filter(pk=payment.pk).update(memo="edited")
    payment.refresh_from_db()
    assert payment.amount == Decimal("1") and payment.memo == ""


def test_database_refuses_a_transfer_in_another_currency_than_its_accounts():
    account = f.account()
    with pytest.raises(IntegrityError), transaction.atomic():
        Transfer.objects.create(debit_account=f.cash(), credit_account=account.ledger_account, amount=1,
                                currency="EUR", kind="payment", idempotency_key="raw")


def test_check_reports_offenders():
    """Totals edited behind the services' back are named by the check."""
    account = f.account()
    f.pay(account, "5")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE ledger_ledgeraccount SET credits_posted = credits_posted + 1 WHERE id = %s",
                           [account.ledger_account_id])
        report = check_ledger()
        transaction.set_rollback(True)
    assert not report["ok"]
    names = {p["check"] for p in report["problems"]}
    assert names == {"account_totals", "debits_equal_credits"}
    assert any(p.get("account") == f"{account.ledger_account.code} USD" for p in report["problems"])


def test_database_refuses_transfers_to_missing_accounts_and_deleting_accounts():
    account = f.account()
    with pytest.raises(IntegrityError, match="does not exist in its currency"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("""INSERT INTO ledger_transfer (id, branch, debit_account_id, credit_account_id, amount,
                              currency, kind, tags, reference_type, reference_id, idempotency_key, memo, actor,
                              created_at)
                              VALUES (ledger_uuid7(), 'HQ', gen_random_uuid(), %s, 1, 'USD', 'payment', '{}', '', '',
                              'orphan', '', '', now())""", [account.ledger_account_id])
    with pytest.raises(IntegrityError, match="never deleted"), transaction.atomic():
        LedgerAccount.objects.filter(pk=f.cash().pk).delete()
    with pytest.raises(IntegrityError, match="never change"), transaction.atomic():
        LedgerAccount.objects.filter(pk=account.ledger_account_id).update(currency="EUR")
