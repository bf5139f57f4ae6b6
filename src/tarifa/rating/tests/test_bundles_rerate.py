"""Bundles (free units consumed in time order, across imports) and re-rating (only the
difference is booked, with a trace of old and new costs)."""

import datetime as dt
from decimal import Decimal

import pytest

from tarifa.kernel.clock import travel_to
from tarifa.ledger.models import Transfer
from tarifa.rating import services, usage
from tarifa.rating.models import BundleCounter, RatedUsage, RerateLine

from .helpers import ACTOR, DAY, balance, csv_file, line, make_world

pytestmark = pytest.mark.django_db


def at(day, hour=10):
    return dt.datetime(2024, 3, day, hour, 0, tzinfo=dt.UTC)


@pytest.fixture
def world():
    with travel_to(DAY):
        w = make_world()
        w["bundle"] = services.create_bundle(actor=ACTOR, tariff=w["tariffs"]["MOB"], code="NAT120", name="2 minutes",
                                             usage_type="voice", allowance="2m", period="month",
                                             destinations=["NAT"])
    with travel_to(dt.datetime(2024, 4, 20, 12, 0, tzinfo=dt.UTC)):
        yield w


def imported(*lines):
    return usage.import_file(csv_file(*lines), format="csv", actor="test")


def cost_of(record_id):
    return RatedUsage.objects.get(record_id=record_id).cost


def test_free_minutes_are_used_before_money_across_imports(world):
    """120 s free per month to NAT. Import 1: 45 s + 60 s on the 5th, both free. Import 2: 130 s
    on the 6th: 15 s free, 115 s charged as two whole minutes (0.20, not 0.30). A UK call is
    not covered. In April the allowance starts again."""
    imported(line("b1", "+15550001", "1555", at(5), 45), line("b2", "+15550001", "1555", at(5, 11), 60))
    assert cost_of("b1") == cost_of("b2") == 0
    imported(line("b3", "+15550001", "1555", at(6), 130), line("b4", "+15550001", "4420", at(6), 30))
    b3 = RatedUsage.objects.get(record_id="b3")
    assert b3.free_units == 15 * 10**9 and b3.cost == Decimal("0.2") and b3.bundle == world["bundle"]
    assert cost_of("b4") == Decimal("0.35")
    counter = BundleCounter.objects.get(subscription=world["alice"], bundle=world["bundle"])
    assert counter.period_start == dt.date(2024, 3, 1) and counter.used == 120 * 10**9
    imported(line("b5", "+15550001", "1555", dt.datetime(2024, 4, 2, 9, tzinfo=dt.UTC), 30))
    assert cost_of("b5") == 0
    assert BundleCounter.objects.get(period_start=dt.date(2024, 4, 1)).used == 30 * 10**9


def test_time_order_not_file_order(world):
    """The file lists the 7th before the 6th: the 6th's call takes the free units first."""
    imported(line("late", "+15550001", "1555", at(7), 60), line("early", "+15550001", "1555", at(6), 100))
    assert cost_of("early") == 0
    late = RatedUsage.objects.get(record_id="late")
    assert late.free_units == 20 * 10**9 and late.cost == Decimal("0.1")


def test_bundles_are_per_subscription(world):
    imported(line("a", "+15550001", "1555", at(5), 120), line("b", "+15550002", "1555", at(5), 120))
    assert cost_of("a") == cost_of("b") == 0


MB = 10**6


def test_a_data_bundle_is_used_before_money_across_imports(world):
    """1 GB (10^9 bytes) free per month; data costs 0.01 per MB (10^6 bytes), whole MBs.
    Import 1: 600 MB on the 5th (free), then 500.5 MB on the 6th: the 400 MB left are free, the
    other 100.5 MB are charged as 101 MB = 1.01. Import 2 goes on from the counter: 2.5 MB on
    the 7th is all charged (3 MB = 0.03). The voice bundle is not touched; re-rating changes
    nothing. April starts again."""
    data = services.create_bundle(actor=ACTOR, tariff=world["tariffs"]["MOB"], code="DATA1G", name="1 GB",
                                  usage_type="data", allowance="1GB", period="month")
    assert data.allowance == 10**9
    before = balance(world["prepaid"])
    imported(line("d1", "+15550001", "", at(5), 600 * MB, kind="data"),
             line("d2", "+15550001", "", at(6), 500 * MB + MB // 2, kind="data"))
    assert cost_of("d1") == 0 and RatedUsage.objects.get(record_id="d1").free_units == 600 * MB
    d2 = RatedUsage.objects.get(record_id="d2")
    assert (d2.free_units, d2.cost, d2.bundle) == (400 * MB, Decimal("1.01"), data)
    imported(line("d3", "+15550001", "", at(7), 2 * MB + MB // 2, kind="data"))
    d3 = RatedUsage.objects.get(record_id="d3")
    assert (d3.free_units, d3.cost, d3.bundle) == (0, Decimal("0.03"), None)
    counter = BundleCounter.objects.get(subscription=world["alice"], bundle=data)
    assert (counter.period_start, counter.used) == (dt.date(2024, 3, 1), 10**9)
    assert not BundleCounter.objects.filter(bundle=world["bundle"]).exists()
    assert balance(world["prepaid"]) == before - Decimal("1.04")
    # Re-rating March gives the free bytes back and spends them again in the same order.
    run = usage.rerate(actor="test", date_from=at(1, 0), date_to=dt.datetime(2024, 4, 1, tzinfo=dt.UTC))
    assert (run.records, run.changed) == (3, 0)
    assert BundleCounter.objects.get(subscription=world["alice"], bundle=data).used == 10**9
    imported(line("d4", "+15550001", "", dt.datetime(2024, 4, 2, 9, tzinfo=dt.UTC), 5 * MB, kind="data"))
    assert cost_of("d4") == 0
    assert BundleCounter.objects.get(bundle=data, period_start=dt.date(2024, 4, 1)).used == 5 * MB


def test_an_sms_bundle_covers_100_messages_the_101st_is_charged(world):
    """100 SMS free per month at 0.05 each otherwise. Import 1: 99 messages on the 5th. Import 2
    lists the 6th's 11:00 message before the 10:00 one: the 10:00 one is the 100th (free), the
    11:00 one the 101st (0.05); a two-part message after them is charged for both parts."""
    sms = services.create_bundle(actor=ACTOR, tariff=world["tariffs"]["MOB"], code="SMS100", name="100 SMS",
                                 usage_type="sms", allowance="100", period="month")
    before = balance(world["prepaid"])
    first = imported(*(line(f"s{i}", "+15550001", "", at(5, 8) + dt.timedelta(minutes=i), 1, kind="sms")
                       for i in range(1, 100)))
    assert (first.read, first.rated) == (99, 99)
    assert set(RatedUsage.objects.values_list("cost", flat=True)) == {Decimal(0)}
    imported(line("s101", "+15550001", "", at(6, 11), 1, kind="sms"),
             line("s100", "+15550001", "", at(6, 10), 1, kind="sms"),
             line("s102", "+15550001", "", at(6, 12), 2, kind="sms"))
    s100, s101 = RatedUsage.objects.get(record_id="s100"), RatedUsage.objects.get(record_id="s101")
    assert (s100.free_units, s100.cost, s100.bundle) == (1, 0, sms)
    assert (s101.free_units, s101.cost, s101.bundle) == (0, Decimal("0.05"), None)
    assert cost_of("s102") == Decimal("0.1")
    assert BundleCounter.objects.get(subscription=world["alice"], bundle=sms).used == 100
    assert balance(world["prepaid"]) == before - Decimal("0.15")


def test_an_sms_record_crossing_the_allowance_is_partly_free(world):
    """A three-part message when one free message is left: one part free, two charged (0.10)."""
    sms = services.create_bundle(actor=ACTOR, tariff=world["tariffs"]["MOB"], code="SMS2", name="2 SMS",
                                 usage_type="sms", allowance="2", period="month")
    imported(line("m1", "+15550001", "", at(5), 1, kind="sms"))
    imported(line("m2", "+15550001", "", at(6), 3, kind="sms"))
    m2 = RatedUsage.objects.get(record_id="m2")
    assert (m2.free_units, m2.cost, m2.bundle) == (1, Decimal("0.1"), sms)


def test_rerate_books_only_the_difference(world):
    """National minutes go from 0.10 to 0.12 after the fact. Re-rating March charges the prepaid
    account the difference only, once; the postpaid records change for the invoice; each
    changed record has a trace line."""
    services.archive_record(world["bundle"], actor=ACTOR)
    imported(line("r1", "+15550001", "1555", at(5), 90), line("r2", "+15550001", "4420", at(5), 30),
             line("r3", "+15550002", "1555", at(5), 60))
    assert cost_of("r1") == Decimal("0.2") and cost_of("r3") == Decimal("0.1")
    before = balance(world["prepaid"])
    services.update_rate(world["rates"]["R_MIN"], actor=ACTOR, slots=[
        {"price": "0.12", "rate_unit": "60s", "rate_increment": "60s"}])
    run = usage.rerate(actor="test", date_from=at(1, 0), date_to=dt.datetime(2024, 4, 1, tzinfo=dt.UTC))
    assert (run.records, run.changed, run.unratable) == (3, 2, 0)
    assert run.old_total == Decimal("0.3") and run.new_total == Decimal("0.36") and run.difference == Decimal("0.06")
    assert cost_of("r1") == Decimal("0.24") and cost_of("r3") == Decimal("0.12") and cost_of("r2") == Decimal("0.35")
    diff = Transfer.objects.get(idempotency_key__startswith=f"rerate:{run.pk}:")
    assert diff.amount == Decimal("0.04") and diff.kind == "charge"
    assert balance(world["prepaid"]) == before - Decimal("0.04")
    lines = {ln.record.record_id: (ln.old_cost, ln.new_cost) for ln in RerateLine.objects.filter(run=run)}
    assert lines == {"r1": (Decimal("0.2"), Decimal("0.24")), "r3": (Decimal("0.1"), Decimal("0.12"))}
    assert RerateLine.objects.get(record__record_id="r1").transfer == diff
    again = usage.rerate(actor="test", date_from=at(1, 0), date_to=dt.datetime(2024, 4, 1, tzinfo=dt.UTC))
    assert (again.changed, again.transfers) == (0, 0)
    services.update_rate(world["rates"]["R_MIN"], actor=ACTOR, slots=[
        {"price": "0.05", "rate_unit": "60s", "rate_increment": "60s"}])
    cheaper = usage.rerate(actor="test", date_from=at(1, 0), date_to=dt.datetime(2024, 4, 1, tzinfo=dt.UTC),
                           billing_account=world["prepaid"])
    assert (cheaper.records, cheaper.changed) == (2, 1)
    refund = Transfer.objects.get(idempotency_key__startswith=f"rerate:{cheaper.pk}:")
    assert refund.kind == "adjustment" and refund.amount == Decimal("0.14")
    assert balance(world["prepaid"]) == before - Decimal("0.04") + Decimal("0.14")
    assert cost_of("r3") == Decimal("0.12")  # another account: not in this run


def test_rerate_reallocates_bundles(world):
    """Re-rating gives back the free units the records used and spends them again."""
    imported(line("q1", "+15550001", "1555", at(5), 100), line("q2", "+15550001", "1555", at(6), 60))
    assert cost_of("q1") == 0 and cost_of("q2") == Decimal("0.1")
    run = usage.rerate(actor="test", date_from=at(1, 0), date_to=dt.datetime(2024, 4, 1, tzinfo=dt.UTC))
    assert run.changed == 0
    assert BundleCounter.objects.get(subscription=world["alice"]).used == 120 * 10**9


def test_counts_add_up_property():
    """Hypothesis: any mix of good, bad and repeated lines — read = rated + rejected + duplicates."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    kinds = st.sampled_from(["ok", "ok", "dup", "bad_time", "short", "negative", "nobody", "norate"])

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(kinds, max_size=25))
    def check(plan):
        from django.db import transaction

        with transaction.atomic():
            with travel_to(DAY):
                make_world()
            lines = []
            for i, kind in enumerate(plan):
                rid = f"p{i}" if kind != "dup" else "p0"
                lines.append({"ok": line(rid, "+15550001", "1555", at(5), i + 1),
                              "dup": line(rid, "+15550001", "1555", at(5), 3),
                              "bad_time": f"{rid},sw,+15550001,1555,voice,never,5\n",
                              "short": f"{rid},sw\n",
                              "negative": line(rid, "+15550001", "1555", at(5), -3),
                              "nobody": line(rid, "+19990000", "1555", at(5), 3),
                              "norate": line(rid, "+15550001", "7777", at(5), 3)}[kind])
            batch = imported(*lines)
            assert batch.read == len(plan) == batch.rated + batch.rejected + batch.duplicates
            transaction.set_rollback(True)

    check()
