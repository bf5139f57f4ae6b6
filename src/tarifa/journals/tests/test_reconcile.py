"""The centre's side: batches and checkpoints shipped through the stream protocol and stored, their
continuity verified; reconciliation per day and branch pair finding exactly the missing and extra
entries and a changed copy; findings as work items, reported to the branches, cleared when fixed;
`tarifa federation reconcile --date D` (JSON, exit 1 on a mismatch)."""

import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command

from tarifa.journals import services
from tarifa.journals.models import Mismatch, ReceivedCheckpoint, ReceivedEntry, ReceivedHead
from tarifa.kernel.clock import travel_to
from tarifa.kernel.errors import PermissionDenied

from .nodes import as_node, deliver, key_of, register

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 11, 2)
NOON = dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC)


@pytest.fixture
def federation():
    register("C", role="centre")
    key_of("C", "centre")
    key_of("A1")
    key_of("B1")


def record(branch, kind, reference, amount, currency="USD", counterparty=None):
    with as_node(branch):
        return services.record_entry(kind=kind, reference=reference, amount=amount, currency=currency,
                                     counterparty=counterparty)


def seal_and_ship(*branches):
    for branch in branches:
        with as_node(branch):
            services.seal_all()
            services.make_due_checkpoints()
        deliver(branch, "C")


def reconcile(day=DAY):
    with as_node("C", "centre"):
        return services.reconcile(day)


def found(report):
    return sorted((m["code"], m["branch"], m["counterparty"], m["reference"]) for m in report["mismatches"])


def test_shipped_journals_are_stored_at_the_centre_and_reconcile_clean(federation):
    with travel_to(NOON) as clock:
        record("B1", "taken_for", "B1-P-1", "10", counterparty="A1")
        record("B1", "local", "B1-P-2", "3.30", currency="EUR")
        record("A1", "applied_from", "B1-P-1", "10", counterparty="B1")
        seal_and_ship("A1", "B1")
        clock.add_days(1)
        seal_and_ship("A1", "B1")  # the checkpoints of DAY
        report = reconcile()
    assert report["ok"] and report["mismatches"] == []
    assert report["branches"]["B1"] == {"entries": 2, "last_seq": 2, "chain_ok": True, "checkpoint_ok": True}
    assert ReceivedHead.objects.get(branch="A1").last_seq == 1
    checkpoint = ReceivedCheckpoint.objects.get(branch="B1", date=DAY)
    assert checkpoint.signature_ok and checkpoint.body["sums"] == {"EUR": "3.300000", "USD": "10.000000"}
    # Batches come again (a relay resent after a lost answer: the stream answers a duplicate) — stored once.
    assert ReceivedEntry.objects.filter(branch="B1").count() == 2


def test_reconciliation_finds_exactly_the_missing_extra_and_different_entries_and_clears_them_when_fixed(federation):
    with travel_to(NOON) as clock:
        for ref, amount in [("B1-P-1", "10"), ("B1-P-2", "5"), ("B1-P-3", "7")]:
            record("B1", "taken_for", ref, amount, counterparty="A1")
        record("A1", "applied_from", "B1-P-1", "10", counterparty="B1")
        record("A1", "applied_from", "B1-P-2", "5.01", counterparty="B1")  # another amount
        record("A1", "applied_from", "B1-P-9", "4", counterparty="B1")  # B1 never said it took it
        record("A1", "taken_for", "A1-P-1", "2", counterparty="B1")  # in flight: not applied at B1 yet
        clock.add_days(1)
        seal_and_ship("A1", "B1")
        report = reconcile()
        assert not report["ok"]
        assert found(report) == [("amount_differs", "A1", "B1", "B1-P-2"),
                                 ("missing_at_owner", "A1", "B1", "B1-P-3"),
                                 ("missing_at_owner", "B1", "A1", "A1-P-1"),
                                 ("missing_at_taker", "B1", "A1", "B1-P-9")]
        differs = next(m for m in report["mismatches"] if m["code"] == "amount_differs")
        assert differs["details"] == {"taken": "5.00 USD", "applied": "5.01 USD"}
        # Reported to both branches concerned, as their work items.
        deliver("C", "A1", sender_role="centre", receiver_role="branch")
        deliver("C", "B1", sender_role="centre", receiver_role="branch")
        assert Mismatch.objects.filter(reported_by="C").count() == 4 * 3  # the centre's, a copy at each branch
        assert Mismatch.objects.filter(node="A1").count() == Mismatch.objects.filter(node="B1").count() == 4

        # The message in flight arrives, the missing application is made, B1 journals what it took.
        record("B1", "applied_from", "A1-P-1", "2", counterparty="A1")
        record("A1", "applied_from", "B1-P-3", "7", counterparty="B1")
        with as_node("B1"):
            entry = services.record_entry(kind="taken_for", reference="B1-P-9", amount="4", currency="USD",
                                          counterparty="A1", occurred_at=NOON)
        assert entry.occurred_at.date() == DAY
        seal_and_ship("A1", "B1")
        again = reconcile()
    assert found(again) == [("amount_differs", "A1", "B1", "B1-P-2")]
    cleared = Mismatch.objects.filter(reported_by="C", status="cleared")
    assert cleared.count() == 3  # at the centre; the branches' copies once the news is delivered
    deliver("C", "A1", sender_role="centre", receiver_role="branch")
    deliver("C", "B1", sender_role="centre", receiver_role="branch")
    assert cleared.count() == 3 * 3


def test_a_refused_foreign_payment_nets_to_nothing_and_an_application_reversed_at_the_owner_is_found(federation):
    with travel_to(NOON) as clock:
        record("B1", "taken_for", "B1-P-1", "10", counterparty="A1")
        record("B1", "taken_for_reversal", "B1-P-1", "10", counterparty="A1")  # A1 refused it; B1 refunds
        record("B1", "taken_for", "B1-P-2", "6", counterparty="A1")
        record("A1", "applied_from", "B1-P-2", "6", counterparty="B1")
        record("A1", "applied_from_reversal", "B1-P-2", "6", counterparty="B1")  # A1 reversed it alone
        clock.add_days(1)
        seal_and_ship("A1", "B1")
        report = reconcile()
    assert found(report) == [("missing_at_owner", "A1", "B1", "B1-P-2")]
    assert report["mismatches"][0]["details"] == {"taken": "6.00 USD", "applied": "0.00 USD"}


def test_a_changed_or_missing_copy_at_the_centre_is_a_chain_and_checkpoint_mismatch(federation):
    with travel_to(NOON) as clock:
        for n in range(4):
            record("B1", "local", f"B1-P-{n}", "10")
        seal_and_ship("B1")
        clock.add_days(1)
        seal_and_ship("B1")
        assert reconcile()["ok"]
        ReceivedEntry.objects.filter(branch="B1", seq=3).update(amount=Decimal("1000"))
        report = reconcile()
        assert found(report) == [("checkpoint_mismatch", "B1", "", ""), ("hash_mismatch", "B1", "", "3")]
        assert "sums" in report["mismatches"][0]["details"]["message"]
        ReceivedEntry.objects.filter(branch="B1", seq=3).update(amount=Decimal("10"))
        ReceivedEntry.objects.filter(branch="B1", seq=2).delete()
        report = reconcile()
    assert found(report) == [("chain_broken", "B1", "", "3"), ("chain_gap", "B1", "", "2"),
                             ("checkpoint_mismatch", "B1", "", "")]


def test_a_missing_checkpoint_or_a_forged_signature_is_reported(federation):
    with travel_to(NOON) as clock:
        record("B1", "local", "B1-P-1", "10")
        with as_node("B1"):
            services.seal_all()
        deliver("B1", "C")
        clock.add_days(1)
        assert found(reconcile()) == [("checkpoint_missing", "B1", "", "")]  # A1 has no journal yet
        with as_node("B1"):
            checkpoint = services.make_checkpoint(DAY)
        forged = {**checkpoint.body, "sums": {"USD": "1.000000"}}
        with as_node("C", "centre"):
            assert services.store_checkpoint(sender="B1", payload={"body": forged, "key_id": checkpoint.key_id,
                                                                   "signature": checkpoint.signature}) == {
                "stored": True, "signature_ok": False}
        report = reconcile()
    codes = {(m["code"], m["branch"]) for m in report["mismatches"]}
    assert ("bad_signature", "B1") in codes and ("checkpoint_mismatch", "B1") in codes


def test_a_branch_may_not_send_another_branch_journal_and_only_the_centre_reconciles(federation, make_user):
    from tarifa.kernel.errors import ValidationFailed

    with as_node("C", "centre"), pytest.raises(ValidationFailed):
        services.store_batch(sender="A1", payload={"branch": "B1", "entries": []})
    with as_node("B1"), pytest.raises(services.NotCentre):
        services.reconcile(DAY)
    with as_node("C", "centre"), pytest.raises(PermissionDenied):
        services.reconcile(DAY, actor=make_user("journals.view_mismatch"))


def test_the_reconcile_command_prints_json_and_exits_1_on_a_mismatch(federation):
    with travel_to(NOON) as clock:
        record("B1", "taken_for", "B1-P-1", "10", counterparty="A1")
        clock.add_days(1)
        seal_and_ship("A1", "B1")
        out = io.StringIO()
        with as_node("C", "centre"), pytest.raises(SystemExit) as exited:
            call_command("federation", "reconcile", "--date", DAY.isoformat(), stdout=out)
        assert exited.value.code == 1
        report = json.loads(out.getvalue())
        assert [(m["code"], m["reference"]) for m in report["mismatches"]] == [("missing_at_owner", "B1-P-1")]
        record("A1", "applied_from", "B1-P-1", "10", counterparty="B1")
        seal_and_ship("A1")
        out = io.StringIO()
        with as_node("C", "centre"):
            call_command("federation", "reconcile", "--date", DAY.isoformat(), stdout=out)
    assert json.loads(out.getvalue())["ok"] is True
