"""Property tests (hypothesis): any sequence of payments, retries, reversals, refunds and charges
keeps the ledger's invariants and the payments' own bookkeeping."""

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tarifa.kernel.errors import DomainError
from tarifa.ledger.selectors import check_ledger
from tarifa.payments import services, statement_csv, terminal_protocol
from tarifa.payments.models import Payment

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500"), places=2)
operations = st.lists(st.one_of(
    st.tuples(st.just("pay"), amounts, st.sampled_from(["cash", "bank_transfer", "card", "other"])),
    st.tuples(st.just("retry"), st.integers(0, 30)),
    st.tuples(st.just("reverse"), st.integers(0, 30)),
    st.tuples(st.just("refund"), st.integers(0, 30), amounts),
    st.tuples(st.just("charge"), amounts),
), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(ops=operations)
def test_random_sequences_keep_every_invariant(db, ops):
    from tarifa.ledger.tests import factories

    acc = factories.account(credit_limit="1000000", payment_mode="postpaid")
    made, expected, n = [], Decimal(0), 0
    for op in ops:
        n += 1
        try:
            if op[0] == "pay":
                made.append(services.accept_payment(actor="test", account=acc, amount=op[1], channel=op[2],
                                                    idempotency_key=f"{acc.number}:{n}"))
                expected += op[1]
            elif op[0] == "retry" and made:
                first = made[op[1] % len(made)]
                again = services.accept_payment(actor="test", account=acc, amount=first.amount, channel=first.channel,
                                                idempotency_key=first.idempotency_key)
                assert again.pk == first.pk and again.replayed
            elif op[0] == "reverse" and made:
                p = Payment.objects.get(pk=made[op[1] % len(made)].pk)
                services.reverse_payment(p, actor="test", reason="property")
                expected -= p.amount
            elif op[0] == "refund" and made:
                p = Payment.objects.get(pk=made[op[1] % len(made)].pk)
                services.refund_payment(p, actor="test", amount=op[2], reason="property",
                                        idempotency_key=f"{acc.number}:r{n}")
                expected -= op[2]
            elif op[0] == "charge":
                factories.charge(acc, op[1])
                expected -= op[1]
        except DomainError as exc:
            assert exc.code in {"already_reversed", "not_reversible", "refund_exceeds_payment"}, exc.code
    acc.ledger_account.refresh_from_db()
    assert acc.ledger_account.balance == expected
    for p in Payment.objects.filter(billing_account=acc):
        assert 0 <= p.refunded_amount <= p.amount
        assert (p.status == "reversed") == (p.reversal_transfer_id is not None)
        assert p.refunded_amount == sum(r.amount for r in p.refunds.all())
    assert check_ledger()["ok"]


@given(text=st.text(max_size=200))
def test_statement_references_never_crash_and_are_normalised(text):
    accounts, customers = statement_csv.references(text)
    for number in accounts + customers:
        branch, _, rest = number.partition("-")
        assert branch == branch.upper() and rest[0] in "AC" and rest[1:].isdigit()


@given(value=st.text(max_size=40))
def test_terminal_sums_are_either_exact_decimals_or_refused(value):
    try:
        amount = terminal_protocol.amount({"sum": value})
    except terminal_protocol.ProtocolError as exc:
        assert exc.result == terminal_protocol.BAD_REQUEST
    else:
        assert amount >= 0 and str(amount) == value.strip()


@given(digits=st.integers(min_value=0, max_value=10**12 - 1))
def test_terminal_account_digits_map_to_account_numbers(digits):
    number = terminal_protocol.account_number({"account": str(digits)}, "HQ")
    assert number == f"HQ-A{digits:07d}"


def test_the_protocol_and_statement_readers_are_pure():
    """No ORM, no Django: they are tested and reasoned about alone (ARCHITECTURE.md, pure computations)."""
    import ast
    from pathlib import Path

    for module in (terminal_protocol, statement_csv):
        tree = ast.parse(Path(module.__file__).read_text())
        names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [n for n in names if n.startswith("django") or n.startswith("tarifa")], (module, names)
