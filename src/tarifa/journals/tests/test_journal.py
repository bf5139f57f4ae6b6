"""The branch's payment journal: record_entry (idempotent, validated), entries from payments' domain events,
the sealer (gap-free numbers and a hash chain, also under concurrent writers and sealers on real threads),
a changed entry caught by the chain, daily checkpoints signed with the node's key."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction

from tarifa.journals import chain, handlers, services
from tarifa.journals.models import Checkpoint, JournalEntry, JournalHead, SealedBatch
from tarifa.kernel import events
from tarifa.kernel.clock import travel_to
from tarifa.kernel.errors import Conflict, ValidationFailed
from tarifa.kernel.models import DomainEvent

from .nodes import as_node, key_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def branch():
    with as_node("B1"):
        yield "B1"


def entries(branch="B1"):
    return list(JournalEntry.objects.filter(branch=branch).order_by("seq"))


def test_record_entry_is_idempotent_on_kind_and_reference_and_refuses_a_different_replay(branch):
    first = services.record_entry(kind="taken_for", reference="B1-P-1", amount="10.50", currency="USD",
                                  counterparty="A1")
    again = services.record_entry(kind="taken_for", reference="B1-P-1", amount=Decimal("10.5"), currency="USD",
                                  counterparty="a1")
    assert again.pk == first.pk and again.replayed and not first.replayed
    with pytest.raises(Conflict) as caught:
        services.record_entry(kind="taken_for", reference="B1-P-1", amount="11", currency="USD", counterparty="A1")
    assert caught.value.code == "journal_entry_conflict"
    # Another kind under the same reference is another entry (a reversal), stored negative.
    reversal = services.record_entry(kind="taken_for_reversal", reference="B1-P-1", amount="10.50", currency="USD",
                                     counterparty="A1")
    assert reversal.amount == Decimal("-10.50")
    assert JournalEntry.objects.count() == 2


@pytest.mark.parametrize("kwargs, field", [
    ({"kind": "gift"}, "kind"),
    ({"amount": "0"}, "amount"),
    ({"amount": "-5"}, "amount"),
    ({"amount": "0.0000001"}, "amount"),
    ({"currency": "XXX"}, "currency"),
    ({"reference": " "}, "reference"),
    ({"counterparty": ""}, "counterparty"),
    ({"counterparty": "B1"}, "counterparty"),
    ({"kind": "local", "counterparty": "A1"}, "counterparty"),
])
def test_bad_input_is_refused_with_the_field_and_nothing_written(branch, kwargs, field):
    args = {"kind": "taken_for", "reference": "R1", "amount": "5", "currency": "USD", "counterparty": "A1"} | kwargs
    with pytest.raises(ValidationFailed) as caught:
        services.record_entry(**args)
    assert field in caught.value.fields
    assert JournalEntry.objects.count() == 0


@pytest.fixture
def journal_events():
    handlers.connect()
    yield
    for name, func in [("payments.payment_received", handlers.on_payment_received),
                       ("payments.payment_reversed", handlers.on_payment_reversed),
                       ("payments.payment_refunded", handlers.on_payment_refunded)]:
        events._handlers[name].remove(func)


def handle_events():
    for event in DomainEvent.objects.filter(handled_at__isnull=True, name__startswith="payments.").order_by("id"):
        events.handle(event)


def test_local_payments_reversals_and_refunds_enter_the_journal_from_their_domain_events(branch, journal_events):
    from tarifa.ledger.tests import factories
    from tarifa.payments import services as payments

    account = factories.account(currency="USD")
    kept = payments.accept_payment(actor="test", account=account, amount="30", channel="bank_transfer",
                                   idempotency_key="j-1")
    undone = payments.accept_payment(actor="test", account=account, amount="12.25", channel="bank_transfer",
                                     idempotency_key="j-2")
    handle_events()
    payments.reverse_payment(undone, actor="test", reason="wrong account")
    refund = payments.refund_payment(kept, actor="test", amount="5", reason="asked", idempotency_key="j-3")
    handle_events()
    handle_events()  # nothing new: the handlers ran once per event
    got = sorted((e.kind, e.reference, e.amount, e.payment_id) for e in JournalEntry.objects.all())
    assert got == sorted([("local", kept.number, Decimal("30"), kept.pk),
                          ("local", undone.number, Decimal("12.25"), undone.pk),
                          ("local_reversal", undone.number, Decimal("-12.25"), undone.pk),
                          ("local_refund", refund.number, Decimal("-5"), kept.pk)])
    # Running a handler again (an event retried after a later handler failed) writes nothing new.
    handlers.on_payment_received(DomainEvent.objects.filter(name="payments.payment_received").first())
    assert JournalEntry.objects.count() == 4


def test_a_payment_applied_from_another_branch_gets_no_local_entry(branch, journal_events):
    from tarifa.ledger.tests import factories
    from tarifa.payments import services as payments

    account = factories.account(currency="USD")
    with transaction.atomic():  # what interbranch does at the owner: the payment and its applied_from entry
        payment = payments.accept_payment(actor="test", account=account, amount="8", channel="other",
                                          idempotency_key="f-1")
        services.record_entry(kind="applied_from", reference="A1-P-77", amount="8", currency="USD",
                              counterparty="A1", payment=payment)
    handle_events()
    payments.reverse_payment(payment, actor="test", reason="bounced")
    handle_events()
    got = sorted((e.kind, e.reference, e.amount, e.counterparty) for e in JournalEntry.objects.all())
    assert got == [("applied_from", "A1-P-77", Decimal("8"), "A1"),
                   ("applied_from_reversal", "A1-P-77", Decimal("-8"), "A1")]


def test_the_sealer_numbers_entries_gap_free_and_chains_their_hashes(branch):
    for n in range(5):
        services.record_entry(kind="local", reference=f"P-{n}", amount=n + 1, currency="EUR")
    assert services.seal(limit=3) == 3
    assert services.seal() == 2
    assert services.seal() == 0
    rows = entries()
    assert [e.seq for e in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == chain.GENESIS
    assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, 5))
    assert services.verify_own_chain() == []
    assert JournalHead.objects.get(branch="B1").head_hash == rows[-1].hash
    assert list(SealedBatch.objects.order_by("first_seq").values_list("first_seq", "last_seq")) == [(1, 3), (4, 5)]


def test_a_changed_entry_is_caught_by_the_chain(branch):
    for n in range(4):
        services.record_entry(kind="local", reference=f"P-{n}", amount="10", currency="EUR")
    services.seal_all()
    JournalEntry.objects.filter(branch="B1", seq=2).update(amount=Decimal("100"))  # tampered behind the services
    problems = services.verify_own_chain()
    assert [(p["code"], p["seq"]) for p in problems] == [("hash_mismatch", 2)]
    # An entry taken out leaves a gap and a broken link.
    JournalEntry.objects.filter(branch="B1", seq=2).update(amount=Decimal("10"))
    JournalEntry.objects.filter(branch="B1", seq=3).delete()
    assert [(p["code"], p["seq"]) for p in services.verify_own_chain()] == [("chain_gap", 3), ("chain_broken", 4)]


def test_the_daily_checkpoint_states_the_day_and_is_signed_with_the_node_key(branch):
    key = key_of("B1")
    day1 = dt.datetime(2026, 11, 2, 10, tzinfo=dt.UTC)
    with travel_to(day1) as clock:
        services.record_entry(kind="local", reference="P-1", amount="10", currency="EUR")
        services.record_entry(kind="taken_for", reference="P-2", amount="2.5", currency="USD", counterparty="A1")
        services.seal_all()
        with pytest.raises(ValidationFailed):
            services.make_checkpoint(day1.date())  # the day is not over
        clock.add_days(1)
        services.record_entry(kind="local_refund", reference="R-1", amount="4", currency="EUR")
        services.seal_all()
        clock.add_days(2)
        made = services.make_due_checkpoints()
    assert [c.date.isoformat() for c in made] == ["2026-11-02", "2026-11-03", "2026-11-04"]
    first, second, empty = made
    rows = entries()
    assert first.body == {"branch": "B1", "date": "2026-11-02", "first_seq": 1, "last_seq": 2, "count": 2,
                          "sums": {"EUR": "10.000000", "USD": "2.500000"}, "head_hash": rows[1].hash}
    assert (second.body["first_seq"], second.body["last_seq"], second.body["sums"]) == (3, 3, {"EUR": "-4.000000"})
    assert (empty.body["count"], empty.body["last_seq"], empty.body["head_hash"]) == (0, 3, rows[2].hash)
    assert first.key_id == key.key_id
    assert services.verify_checkpoint_signature("B1", first.key_id, first.signature, first.body)
    assert not services.verify_checkpoint_signature("B1", first.key_id, first.signature, {**first.body, "count": 3})
    assert not services.verify_checkpoint_signature("A1", first.key_id, first.signature, first.body)
    with travel_to(day1 + dt.timedelta(days=5)):
        assert services.make_checkpoint(day1.date()).pk == first.pk  # made once
    assert Checkpoint.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_the_sealer_is_gap_free_under_concurrent_writers_and_sealers_on_real_threads():
    writers, per_writer, sealers = 4, 40, 2
    errors, done = [], threading.Event()

    def write(w):
        try:
            for n in range(per_writer):
                with transaction.atomic():
                    services.record_entry(kind="local", reference=f"W{w}-{n}", amount="1.01", currency="EUR")
                    if n % 7 == 0:  # some transactions hold their uncommitted entry while sealers run
                        JournalEntry.objects.filter(reference=f"W{w}-{n}").exists()
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connection.close()

    def seal():
        try:
            while not done.is_set():
                services.seal(limit=7)
            services.seal_all()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    with as_node("B1"):
        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        sealing = [threading.Thread(target=seal) for _ in range(sealers)]
        for t in sealing + threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        for t in sealing:
            t.join()
        services.seal_all()
        assert errors == []
        rows = entries()
        assert [e.seq for e in rows] == list(range(1, writers * per_writer + 1))
        assert services.verify_own_chain() == []
        batches = list(SealedBatch.objects.order_by("first_seq").values_list("first_seq", "last_seq"))
        assert batches[0][0] == 1 and batches[-1][1] == writers * per_writer
        assert all(batches[i][0] == batches[i - 1][1] + 1 for i in range(1, len(batches)))
        assert len(batches) > 1
