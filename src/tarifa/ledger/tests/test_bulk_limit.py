"""post_transfers_bulk(enforce_limit=…): an account's rows are posted only while they fit its limit."""

from decimal import Decimal

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tarifa.ledger import services
from tarifa.ledger.models import Transfer
from tarifa.ledger.selectors import check_ledger
from tarifa.ledger.services import BulkTransfer

from . import factories as f

pytestmark = pytest.mark.usefixtures("ledger_ok")


def row(acc, amount, key, **tags):
    return BulkTransfer(acc.ledger_account_id, f.revenue().pk, Decimal(amount), "USD", "charge", key, tags or None)


def refused_keys():
    with connection.cursor() as cursor:
        cursor.execute("SELECT idempotency_key FROM ledger_bulk_refused ORDER BY running")
        return [r[0] for r in cursor.fetchall()]


def test_without_the_option_nothing_is_checked_as_before():
    prepaid = f.account()
    result = services.post_transfers_bulk([row(prepaid, "3", "a")])
    assert (result.inserted, result.refused) == (1, 0)
    assert f.balance(prepaid) == Decimal("-3")


def test_a_prepaid_account_is_charged_while_its_rows_fit_in_the_order_given():
    acc = f.account(credit_limit="5")
    f.pay(acc, "2.00")  # may go to −5: 7.00 to spend
    rows = [row(acc, "3", "k1", n="2"), row(acc, "4", "k2", n="1"), row(acc, "1", "k3", n="3"),
            row(acc, "0.5", "k4", n="4")]
    with transaction.atomic():
        result = services.post_transfers_bulk(rows, enforce_limit=None, order_by="s.tags->>'n'")
        # In order n: 4 (k2) and 3 (k1) fit exactly (−5.00); 1 (k3) does not, nor does any
        # later row of the account, even one small enough (k4): a prefix is posted.
        assert (result.staged, result.inserted, result.existing, result.refused) == (4, 2, 0, 2)
        assert refused_keys() == ["k3", "k4"]
    assert f.balance(acc) == Decimal("-5")
    assert set(Transfer.objects.filter(debit_account=acc.ledger_account).values_list(
        "idempotency_key", flat=True)) == {"k1", "k2"}
    # A re-run: the posted keys exist (not counted against the limit), the rest is refused again.
    again = services.post_transfers_bulk(rows, enforce_limit=None, order_by="s.tags->>'n'")
    assert (again.inserted, again.existing, again.refused) == (0, 2, 2)
    assert f.balance(acc) == Decimal("-5")


def test_pending_holds_count_and_extra_credit_lowers_the_floor():
    acc = f.account()
    f.pay(acc, "10")
    services.create_hold(actor="t", debit=acc, credit=f.revenue(), amount="4", currency="USD",
                         idempotency_key=f.key("hold"))
    result = services.post_transfers_bulk([row(acc, "7", "x1")], enforce_limit=None)
    assert result.refused == 1  # 10 − 4 held = 6 available
    extra = "SELECT ledger_account_id, %(credit)s::numeric FROM ledger_billingaccount WHERE number = %(number)s"
    result = services.post_transfers_bulk([row(acc, "7", "x1")], enforce_limit=None, extra_credit=extra,
                                          params={"credit": Decimal("1"), "number": acc.number})
    assert (result.inserted, result.refused) == (1, 0)
    assert f.balance(acc) == Decimal("3")


def test_postpaid_accounts_are_limited_only_when_asked_and_system_accounts_never():
    postpaid = f.account(payment_mode="postpaid", credit_limit="1")
    result = services.post_transfers_bulk([row(postpaid, "2", "p1")], enforce_limit=None)
    assert (result.inserted, result.refused) == (1, 0)
    result = services.post_transfers_bulk([row(postpaid, "2", "p2")], enforce_limit=True)
    assert result.refused == 1
    cash = f.cash()
    result = services.post_transfers_bulk([(cash.pk, f.revenue().pk, Decimal("9"), "USD", "charge", "c1")],
                                          enforce_limit=True)
    assert (result.inserted, result.refused) == (1, 0)


def test_one_account_refused_does_not_stop_the_others():
    poor, rich = f.account(), f.account()
    f.pay(rich, "5")
    result = services.post_transfers_bulk([row(poor, "1", "poor"), row(rich, "1", "rich")], enforce_limit=None)
    assert (result.inserted, result.refused) == (1, 1)
    assert (f.balance(poor), f.balance(rich)) == (Decimal("0"), Decimal("4"))


# --- property --------------------------------------------------------------------------------------

money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("20"), places=2)
accounts = st.lists(st.tuples(st.sampled_from(["prepaid", "postpaid"]),
                              st.decimals(min_value=0, max_value=10, places=2),  # credit limit
                              st.decimals(min_value=0, max_value=30, places=2)),  # paid in
                    min_size=1, max_size=3)
charges = st.lists(st.tuples(st.integers(0, 2), money), min_size=1, max_size=12)


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(accounts=accounts, charges=charges)
def test_no_prepaid_account_ends_below_its_limit_and_what_fits_is_posted(accounts, charges):
    with transaction.atomic():
        made = []
        for mode, limit, paid in accounts:
            acc = f.account(payment_mode=mode, credit_limit=limit)
            if paid:
                f.pay(acc, paid)
            made.append((acc, mode, limit, paid))
        rows = [row(made[ix % len(made)][0], amount, f"p{n:02d}") for n, (ix, amount) in enumerate(charges)]
        result = services.post_transfers_bulk(rows, enforce_limit=None)
        for acc, mode, limit, paid in made:
            mine = [r.amount for r in rows if r.debit_account_id == acc.ledger_account_id]  # in key order
            spent = Decimal(0)
            for amount in mine:
                if mode == "postpaid" or paid - spent - amount >= -limit:
                    spent += amount
                else:
                    break  # a prefix: nothing after the first refusal
            assert f.balance(acc) == paid - spent
            if mode == "prepaid":
                assert f.balance(acc) >= -limit
        assert result.inserted + result.refused == len(rows)
        assert check_ledger()["ok"]
        transaction.set_rollback(True)
