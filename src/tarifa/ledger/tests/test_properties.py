"""Property tests: random sequences of payments, charges, holds, reversals, adjustments and
retries keep every ledger invariant, and every balance equals a plain Python model's."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tarifa.kernel.clock import now
from tarifa.kernel.errors import DomainError
from tarifa.ledger import services
from tarifa.ledger.models import LedgerAccount
from tarifa.ledger.selectors import check_ledger

from . import factories as f

# (payment mode, credit limit) of the three accounts every example starts with.
ACCOUNTS = [("prepaid", Decimal(0)), ("prepaid", Decimal(5)), ("postpaid", Decimal(50))]

amounts = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("60"), places=6)
account_ix = st.integers(0, len(ACCOUNTS) - 1)
pick = st.integers(0, 1000)  # index into the transfers / holds made so far (modulo their count)

operations = st.lists(st.one_of(
    st.tuples(st.just("pay"), account_ix, amounts),
    st.tuples(st.just("charge"), account_ix, amounts),
    st.tuples(st.just("hold"), account_ix, amounts),
    st.tuples(st.just("post"), pick, st.one_of(st.none(), amounts)),
    st.tuples(st.just("void"), pick, st.none()),
    st.tuples(st.just("reverse"), pick, st.none()),
    st.tuples(st.just("adjust"), account_ix, amounts, st.booleans()),
    st.tuples(st.just("retry"), pick, st.none()),
    st.tuples(st.just("expire"), st.none(), st.none()),
), min_size=1, max_size=30)


class Model:
    """What the balances must be: credits − debits posted, and pending debits, per ledger account."""

    def __init__(self):
        self.balance: dict = {}
        self.pending_debits: dict = {}

    def move(self, debit, credit, amount):
        self.balance[debit] = self.balance.get(debit, 0) - amount
        self.balance[credit] = self.balance.get(credit, 0) + amount

    def hold(self, debit, amount):
        self.pending_debits[debit] = self.pending_debits.get(debit, 0) + amount

    def available(self, account_id):
        return self.balance.get(account_id, 0) - self.pending_debits.get(account_id, 0)


def run(ops):
    accounts = [f.account(payment_mode=mode, credit_limit=limit) for mode, limit in ACCOUNTS]
    cash, revenue = f.cash(), f.revenue()
    model = Model()
    transfers, holds, calls = [], [], []
    expired = set()

    def limited(ix, amount):
        mode, limit = ACCOUNTS[ix]
        return mode == "prepaid" and model.available(accounts[ix].ledger_account_id) - amount < -limit

    for op in ops:
        kind = op[0]
        if kind == "pay":
            _, ix, amount = op
            call = dict(actor="p", debit=cash, credit=accounts[ix], amount=amount, currency="USD", kind="payment",
                        idempotency_key=f.key("pay"))
            transfers.append(services.post_transfer(**call))
            calls.append((services.post_transfer, call))
            model.move(cash.pk, accounts[ix].ledger_account_id, amount)
        elif kind == "charge":
            _, ix, amount = op
            call = dict(actor="p", debit=accounts[ix], credit=revenue, amount=amount, currency="USD", kind="charge",
                        idempotency_key=f.key("charge"))
            if limited(ix, amount):
                with pytest.raises(DomainError, match="available"):
                    services.post_transfer(**call)
                continue
            transfers.append(services.post_transfer(**call))
            calls.append((services.post_transfer, call))
            model.move(accounts[ix].ledger_account_id, revenue.pk, amount)
        elif kind == "hold":
            _, ix, amount = op
            call = dict(actor="p", debit=accounts[ix], credit=revenue, amount=amount, currency="USD", kind="charge",
                        idempotency_key=f.key("hold"))
            if limited(ix, amount):
                with pytest.raises(DomainError):
                    services.create_hold(**call)
                continue
            holds.append(services.create_hold(**call))
            calls.append((services.create_hold, call))
            model.hold(accounts[ix].ledger_account_id, amount)
        elif kind in ("post", "void") and holds:
            hold = holds[op[1] % len(holds)]
            hold.refresh_from_db()
            if hold.state != "pending":
                if kind == "void" and hold.state == "voided":
                    assert services.void_hold(hold, actor="p").replayed
                    continue
                with pytest.raises(DomainError) as err:
                    if kind == "post":
                        services.post_hold(hold, actor="p", idempotency_key=f.key("post"))
                    else:
                        services.void_hold(hold, actor="p")
                assert err.value.code == "hold_not_pending"
                continue
            model.pending_debits[hold.debit_account_id] -= hold.amount
            if kind == "void":
                services.void_hold(hold, actor="p")
                continue
            amount = op[2] if op[2] is not None and op[2] <= hold.amount else None
            call = dict(actor="p", idempotency_key=f.key("post"), amount=amount)
            transfers.append(services.post_hold(hold, **call))
            calls.append((lambda hold=hold, **kw: services.post_hold(hold, **kw), call))
            model.move(hold.debit_account_id, hold.credit_account_id, amount or hold.amount)
        elif kind == "reverse" and transfers:
            original = transfers[op[1] % len(transfers)]
            key = f.key("rev")
            if original.kind == "reversal" or any(t.reverses_id == original.pk for t in transfers):
                with pytest.raises(DomainError):
                    services.reverse_transfer(original, actor="p", reason="prop", idempotency_key=key)
                continue
            transfers.append(services.reverse_transfer(original, actor="p", reason="prop", idempotency_key=key))
            model.move(original.credit_account_id, original.debit_account_id, original.amount)
        elif kind == "adjust":
            _, ix, amount, up = op
            signed = amount if up else -amount
            call = dict(actor="p", account=accounts[ix], amount=signed, reason="prop", idempotency_key=f.key("adj"))
            transfers.append(services.adjust(**call))
            calls.append((services.adjust, call))
            model.balance[accounts[ix].ledger_account_id] = model.balance.get(accounts[ix].ledger_account_id, 0) \
                + signed
            adjustments = LedgerAccount.objects.get(code="adjustments", currency="USD").pk
            model.balance[adjustments] = model.balance.get(adjustments, 0) - signed
        elif kind == "retry" and calls:
            func, call = calls[op[1] % len(calls)]
            assert func(**call).replayed
        elif kind == "expire":
            for hold in holds:
                hold.refresh_from_db()
                if hold.state == "pending":
                    model.pending_debits[hold.debit_account_id] -= hold.amount
                    expired.add(hold.pk)
            services.expire_holds(as_of=now() + dt.timedelta(days=2))

    for account in LedgerAccount.objects.all():
        assert account.balance == model.balance.get(account.pk, 0), account.code
        assert account.debits_pending == model.pending_debits.get(account.pk, 0), account.code
    report = check_ledger()
    assert report["ok"], report["problems"]


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(ops=operations)
def test_random_sequences_keep_every_invariant(ops):
    with transaction.atomic():
        run(ops)
        transaction.set_rollback(True)
