"""post_transfers_bulk: set-based, all-or-nothing, a re-run posts nothing twice."""

from decimal import Decimal

import pytest

from tarifa.kernel.errors import DomainError
from tarifa.ledger import services
from tarifa.ledger.models import Transfer
from tarifa.ledger.services import BulkTransfer

from . import factories as f

pytestmark = pytest.mark.usefixtures("ledger_ok")


def charges(accounts, amount="1.25", prefix="fee"):
    revenue = f.revenue()
    return [BulkTransfer(a.ledger_account_id, revenue.pk, Decimal(amount), "USD", "charge", f"{prefix}:{a.number}",
                         {"service_type": "internet"}, "ledger.billingaccount", str(a.pk), "daily fee")
            for a in accounts]


def test_bulk_posts_and_a_rerun_posts_nothing_twice():
    accounts = [f.account() for _ in range(5)]
    result = services.post_transfers_bulk(charges(accounts))
    assert (result.staged, result.inserted, result.existing) == (5, 5, 0)
    assert all(f.balance(a) == Decimal("-1.25") for a in accounts)
    assert f.revenue().credits_posted == Decimal("6.25")
    again = services.post_transfers_bulk(charges(accounts) + charges([f.account()], prefix="new"))
    assert (again.inserted, again.existing) == (1, 5)
    assert all(f.balance(a) == Decimal("-1.25") for a in accounts)
    assert Transfer.objects.count() == 6


def test_bulk_from_a_query_never_travels_through_python():
    accounts = [f.account() for _ in range(3)]
    revenue = f.revenue()
    query = """SELECT b.ledger_account_id, %s::uuid, 2.5, b.currency, 'charge', 'q:' || b.number,
                      '{"tariff": "Home"}'::jsonb, '', '', ''
               FROM ledger_billingaccount b WHERE b.number = ANY(%s)"""
    result = services.post_transfers_bulk(query=query, params=[revenue.pk, [a.number for a in accounts]])
    assert result.inserted == 3
    assert Transfer.objects.filter(tags__contains={"tariff": "Home"}).count() == 3


def test_bulk_accepts_dicts_and_short_tuples():
    a = f.account()
    revenue = f.revenue()
    services.post_transfers_bulk([
        {"debit_account_id": a.ledger_account_id, "credit_account_id": revenue.pk, "amount": Decimal("1"),
         "currency": "USD", "kind": "charge", "idempotency_key": "d1"},
        (a.ledger_account_id, revenue.pk, Decimal("2"), "USD", "charge", "d2"),
    ])
    assert f.balance(a) == Decimal("-3")


@pytest.mark.parametrize("change, problem", [
    ({"amount": Decimal("0")}, "amount_not_positive"),
    ({"amount": Decimal("1.0000001")}, "amount_too_precise"),
    ({"currency": "EUR"}, "currency_mismatch"),
    ({"kind": "gift"}, "invalid_kind"),
    ({"idempotency_key": ""}, "idempotency_key_required"),
    ({"credit_account_id": None}, "account_not_found"),
])
def test_one_bad_row_posts_nothing(change, problem):
    accounts = [f.account() for _ in range(3)]
    rows = charges(accounts)
    rows[1] = BulkTransfer(**{**rows[1].__dict__, **change})
    with pytest.raises(DomainError) as err:
        services.post_transfers_bulk(rows)
    assert err.value.code == "bulk_invalid" and problem in err.value.fields["rows"][0]
    assert not Transfer.objects.exists()


def test_same_account_and_closed_accounts_are_refused():
    a = f.account()
    with pytest.raises(DomainError, match="same_account"):
        services.post_transfers_bulk([(a.ledger_account_id, a.ledger_account_id, Decimal(1), "USD", "charge", "x")])
    closed = f.account()
    services.close_account(closed, actor="t")
    with pytest.raises(DomainError, match="account_closed"):
        services.post_transfers_bulk(charges([closed]))


def test_a_key_reused_with_other_content_rolls_the_batch_back():
    accounts = [f.account() for _ in range(3)]
    services.post_transfers_bulk(charges(accounts[:1]))
    with pytest.raises(DomainError) as err:
        services.post_transfers_bulk(charges(accounts[1:]) + charges(accounts[:1], amount="9"))
    assert err.value.code == "idempotency_conflict"
    assert Transfer.objects.count() == 1
    rows = charges(accounts[1:2]) + charges(accounts[1:2], amount="2")  # duplicate key inside one batch
    with pytest.raises(DomainError, match="other content"):
        services.post_transfers_bulk(rows)
    assert Transfer.objects.count() == 1


def test_floats_are_refused():
    a = f.account()
    with pytest.raises(DomainError):
        services.post_transfers_bulk([(a.ledger_account_id, f.revenue().pk, 1.5, "USD", "charge", "fl")])


def test_empty_batch():
    assert services.post_transfers_bulk([]).staged == 0


def test_text_survives_the_copy_stream():
    a = f.account()
    memo = 'tab\there, line\nbreak, back\\slash, "quotes", \\N, ünïcode'
    tags = {"note": 'a\\b\t"c"\n', "n": 3, "ok": True}
    services.post_transfers_bulk([(a.ledger_account_id, f.revenue().pk, "1.5", "USD", "charge", "k\\1\t", tags,
                                   "x.y", "id\n1", memo)])
    t = Transfer.objects.get()
    assert (t.memo, t.tags, t.idempotency_key, t.reference_id, t.amount) == (memo, tags, "k\\1\t", "id\n1",
                                                                            Decimal("1.5"))
