"""Semi-online billing: the CDR of a call charged online is matched, not charged twice; the
difference between the CDR's rated cost and what the session charged is booked as a correction.

Voice to 44… costs 0.05 connect + 0.60 a minute by the second (0.01 a second).
"""

import datetime as dt
from decimal import Decimal

import pytest

from tarifa.kernel import clock
from tarifa.ledger.models import Hold, Transfer
from tarifa.ledger.selectors import check_ledger
from tarifa.rating import usage
from tarifa.rating.models import UsageRecord
from tarifa.rating.tests.helpers import csv_file, line

from .. import services
from ..models import CallMatch, ChargingSession
from .helpers import ACTOR, DAY, available, seconds, world

pytestmark = pytest.mark.django_db

LATER = DAY + dt.timedelta(minutes=10)  # the CDR file comes after the call


def online_call(external_id, *, used_s, at=DAY, number="15550001", destination="tel:+4420123", close=True):
    with clock.travel_to(at):
        a = services.start(actor=ACTOR, identifier=number, usage_type="voice", external_id=external_id,
                           destination=destination, requested=seconds(300), started_at=at)
        assert a.result_code == 2001, a
        session = ChargingSession.objects.get(pk=a.session)
        if close:
            services.terminate(session, actor=ACTOR, used=seconds(used_s), request_number=1)
        else:
            services.update(session, actor=ACTOR, used=seconds(used_s), requested=seconds(300), request_number=1)
    session.refresh_from_db()
    return session


def import_cdrs(*lines):
    with clock.travel_to(LATER):
        return usage.import_file(csv_file(*lines), format="csv", actor=ACTOR, file_name="switch.cdr")


def cdr(record_id, used_s, *, start=DAY, subject="+15550001", destination="4420123"):
    return line(record_id, subject, destination, start, used_s)


def assert_ledger_ok():
    report = check_ledger()
    assert report["ok"], report["problems"]


def test_cdr_of_a_call_charged_online_is_charged_once():
    w = world()
    session = online_call("call-1", used_s=120)
    assert session.charged == Decimal("1.25")  # 0.05 + 120 × 0.01
    after_online = available(w["prepaid"])
    batch = import_cdrs(cdr("cdr-1", 120, start=DAY + dt.timedelta(seconds=2)))
    assert (batch.read, batch.rated, batch.charged_online) == (1, 1, 1)
    assert batch.charged == 0 and batch.transfers == 0
    record = UsageRecord.objects.get(record_id="cdr-1")
    assert record.cost == Decimal("1.25") and record.online_session == session.pk and record.transfer_id is None
    match = CallMatch.objects.get(session=session)
    assert match.usage_record_id == record.pk and match.difference == 0 and match.correction is None
    assert (match.online_cost, match.offline_cost) == (Decimal("1.25"), Decimal("1.25"))
    session.refresh_from_db()
    assert session.matched_usage == str(record.pk)
    assert available(w["prepaid"]) == after_online == Decimal("100") - Decimal("1.25")
    assert not Transfer.objects.filter(idempotency_key__startswith="semionline:").exists()
    assert_ledger_ok()


def test_longer_cdr_books_exactly_the_rated_difference():
    w = world()
    session = online_call("call-2", used_s=120)
    batch = import_cdrs(cdr("cdr-2", 150))
    assert batch.charged_online == 1 and batch.charged == 0
    match = CallMatch.objects.get(session=session)
    assert match.offline_cost == Decimal("1.55") and match.difference == Decimal("0.30")
    correction = match.correction
    assert correction.amount == Decimal("0.30") and correction.kind == "charge"
    assert correction.idempotency_key == f"semionline:{session.pk}"
    assert correction.reference_type == "charging.callmatch" and correction.reference_id == str(match.pk)
    assert correction.tags["usage_record"] == str(match.usage_record_id)
    assert correction.tags["charging_session"] == str(session.pk)
    assert correction.debit_account_id == w["prepaid"].ledger_account_id
    # Charged in all: what rating gives the CDR, once.
    assert available(w["prepaid"]) == Decimal("100") - Decimal("1.55")
    assert_ledger_ok()


def test_shorter_cdr_gives_the_difference_back():
    w = world()
    session = online_call("call-3", used_s=120)
    import_cdrs(cdr("cdr-3", 100))
    match = CallMatch.objects.get(session=session)
    assert match.difference == Decimal("-0.20")
    assert match.correction.kind == "adjustment" and match.correction.amount == Decimal("0.20")
    assert match.correction.credit_account_id == w["prepaid"].ledger_account_id
    assert available(w["prepaid"]) == Decimal("100") - Decimal("1.05")
    assert_ledger_ok()


def test_cdr_without_an_online_session_is_charged_normally():
    w = world()
    online_call("call-4", used_s=120)
    # Another destination, and the same destination a minute later: not the online call.
    batch = import_cdrs(cdr("other-dest", 60, destination="4420999"),
                        cdr("later", 60, start=DAY + dt.timedelta(minutes=1)))
    assert (batch.rated, batch.charged_online) == (2, 0)
    assert batch.charged == Decimal("1.30") and batch.transfers == 1
    assert not CallMatch.objects.exists()
    assert UsageRecord.objects.filter(online_session__isnull=False).count() == 0
    assert available(w["prepaid"]) == Decimal("100") - Decimal("1.25") - Decimal("1.30")
    assert_ledger_ok()


def test_reimporting_the_same_file_adds_nothing():
    w = world()
    online_call("call-5", used_s=120)
    lines = [cdr("cdr-5", 150), cdr("plain", 60, destination="4420999")]
    first = import_cdrs(*lines)
    balance_after = available(w["prepaid"])
    transfers = Transfer.objects.count()
    again = import_cdrs(*lines)
    assert (first.rated, first.charged_online) == (2, 1)
    assert (again.read, again.rated, again.duplicates, again.charged_online, again.transfers) == (2, 0, 2, 0, 0)
    assert CallMatch.objects.count() == 1 and Transfer.objects.count() == transfers
    assert available(w["prepaid"]) == balance_after == Decimal("100") - Decimal("1.55") - Decimal("0.65")
    assert_ledger_ok()


def test_one_session_is_matched_by_one_cdr_only():
    w = world()
    session = online_call("call-6", used_s=60)
    # Two CDRs near the same start: the nearer one is the call's; the other is charged as usual.
    batch = import_cdrs(cdr("far", 60, start=DAY + dt.timedelta(seconds=4)), cdr("near", 60,
                                                                                   start=DAY + dt.timedelta(seconds=1)))
    assert batch.charged_online == 1 and batch.charged == Decimal("0.65")
    assert CallMatch.objects.get().usage_record.record_id == "near"
    assert UsageRecord.objects.get(record_id="near").online_session == session.pk
    assert available(w["prepaid"]) == Decimal("100") - Decimal("0.65") * 2
    assert_ledger_ok()


def test_cdr_of_a_call_still_open_online_closes_it():
    w = world()
    session = online_call("call-7", used_s=60, close=False)
    assert Hold.objects.filter(state="pending").count() == 1
    import_cdrs(cdr("cdr-7", 90))
    session.refresh_from_db()
    assert session.state == "closed" and session.termination_cause.startswith("CDR received")
    assert not Hold.objects.filter(state="pending").exists()
    match = CallMatch.objects.get(session=session)
    assert match.session_was_open and match.online_cost == Decimal("0.65") and match.difference == Decimal("0.30")
    assert available(w["prepaid"]) == Decimal("100") - Decimal("0.95")
    # A late termination from the network charges nothing more.
    with clock.travel_to(LATER):
        late = services.terminate(session, actor=ACTOR, used=seconds(30), request_number=2)
    assert late.result_code == 5002
    assert available(w["prepaid"]) == Decimal("100") - Decimal("0.95")
    assert_ledger_ok()


def test_matches_and_corrections_listed_per_account(make_user, api, staff_client):
    w = world()
    session = online_call("call-9", used_s=120)
    online_call("call-10", used_s=60, at=DAY + dt.timedelta(minutes=5))
    import_cdrs(cdr("cdr-9", 150), cdr("cdr-10", 60, start=DAY + dt.timedelta(minutes=5)))
    client = api(make_user("charging.view_callmatch", password=None))
    r = client.get("/api/v1/charging/matches/", {"account": w["prepaid"].number})
    assert r.status_code == 200, r.content
    rows = {row["record_id"]: row for row in r.json()["results"]}
    assert set(rows) == {"cdr-9", "cdr-10"}
    assert rows["cdr-9"]["session"] == str(session.pk) and rows["cdr-9"]["difference"] == "0.300000"
    assert rows["cdr-9"]["correction_amount"] == "0.300000" and rows["cdr-9"]["correction"]
    assert rows["cdr-10"]["difference"] == "0.000000" and rows["cdr-10"]["correction"] is None
    assert client.get("/api/v1/charging/matches/", {"account": w["postpaid"].number}).json()["results"] == []
    by_session = client.get("/api/v1/charging/matches/", {"session": str(session.pk)}).json()["results"]
    assert [row["record_id"] for row in by_session] == ["cdr-9"]
    ui = staff_client(make_user("charging.view_callmatch"))
    page = ui.get("/charging/callmatch/", {"billing_account": str(w["prepaid"].pk)})
    assert page.status_code == 200 and "cdr-9" in page.content.decode()
    detail = ui.get(f"/charging/callmatch/{rows['cdr-9']['id']}/")
    assert detail.status_code == 200 and "0.30" in detail.content.decode()
