"""Mediation, rating and posting: a usage file in, rated usage and ledger transfers out.

The operator of helpers.py: alice (+15550001) is prepaid, bob (+15550002) postpaid, both on
tariff MOB rated by tenant "tarifa": national minutes 0.10 each (whole minutes), UK
0.05 + 0.60/min by the second, SMS 0.05, data 0.01 per MB.
"""

import datetime as dt
import io
from decimal import Decimal

import pytest

from tarifa.kernel.clock import travel_to
from tarifa.ledger.models import Transfer
from tarifa.rating import usage
from tarifa.rating.models import RatedUsage, RejectedUsage, UsageBatch, UsageRecord

from .helpers import DAY, balance, csv_file, line, make_world

pytestmark = pytest.mark.django_db
T = dt.datetime(2024, 3, 5, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def world():
    with travel_to(DAY):
        w = make_world()
    with travel_to(dt.datetime(2024, 3, 20, 12, 0, tzinfo=dt.UTC)):
        yield w


def imported(*lines, **kw) -> UsageBatch:
    return usage.import_file(csv_file(*lines), format="csv", actor="test", file_name="test.csv", **kw)


def counts(batch):
    return batch.read, batch.rated, batch.rejected, batch.duplicates


def test_every_record_ends_in_one_place(world):
    """A file mixing good and bad lines: every line is rated, rejected with a reason, or a
    duplicate, and the counts add up."""
    batch = usage.import_file(io.BytesIO(
        b"record_id,source,subject,destination,type,start_time,usage\n"
        b"c1,sw1,+15550001,1555123,voice,2024-03-05T10:00:00Z,45\n"            # 0.10
        b"c2,sw1,+15550001,4420711,voice,2024-03-05T11:00:00Z,30s\n"           # 0.05 + 0.30
        b"c3,sw1,+15550002,1555123,voice,2024-03-05T12:00:00Z,61\n"            # postpaid 0.20
        b"s1,sw1,+15550001,,sms,2024-03-05T12:00:00Z,1\n"                      # 0.05
        b"d1,sw1,+15550001,,data,2024-03-05T12:00:00Z,2500000\n"               # 3 MB: 0.03
        b"c1,sw1,+15550001,1555123,voice,2024-03-05T10:00:00Z,45\n"            # duplicate in the file
        b"bad1,sw1,+15550001,1555123,voice\n"                                  # wrong column count
        b"bad2,sw1,+15550001,1555123,voice,yesterday,45\n"                     # unreadable time
        b"bad3,sw1,+15550001,1555123,voice,2024-03-05T10:00:00Z,-5\n"          # negative
        b"bad4,sw1,+1555\xff\xfe01,1555123,voice,2024-03-05T10:00:00Z,5\n"     # not UTF-8
        b"bad5,sw1,+19999999,1555123,voice,2024-03-05T10:00:00Z,5\n"           # nobody's number
        b"bad6,sw1,+15550001,999,voice,2024-03-05T10:00:00Z,5\n"               # no rate
        b"bad7,sw1,+15550001,1555123,fax,2024-03-05T10:00:00Z,5\n"             # unknown type
        b"bad8,sw1,+15550003,1555123,voice,2024-03-05T10:00:00Z,5\n"           # not activated yet
        b"\n"                                                                  # blank: not a record
    ), format="csv", actor="test", file_name="mixed.csv")
    assert counts(batch) == (14, 5, 8, 1)
    assert batch.read == batch.rated + batch.rejected + batch.duplicates
    assert batch.reasons == {"malformed": 3, "negative_usage": 1, "unknown_subscriber": 1, "no_rate": 1,
                             "unknown_usage_type": 1, "outside_subscription": 1}
    reasons = dict(RejectedUsage.objects.values_list("record_id", "reason"))
    assert reasons["bad1"] == reasons["bad2"] == "malformed" and reasons["bad3"] == "negative_usage"
    assert reasons["bad5"] == "unknown_subscriber" and reasons["bad6"] == "no_rate"
    assert reasons["bad7"] == "unknown_usage_type" and reasons["bad8"] == "outside_subscription"
    bad4 = RejectedUsage.objects.get(line_no=11)
    assert bad4.reason == "malformed" and "not valid utf-8" in bad4.message and "\\xff" in bad4.raw
    assert bad4.record_id.startswith("line-sha1:")
    wrong = RejectedUsage.objects.get(record_id="bad1")
    assert wrong.message == "expected 7 columns, found 5" and wrong.raw.startswith("bad1,")
    costs = dict(RatedUsage.objects.values_list("record_id", "cost"))
    assert costs == {"c1": Decimal("0.1"), "c2": Decimal("0.35"), "c3": Decimal("0.2"), "s1": Decimal("0.05"),
                     "d1": Decimal("0.03")}


def test_prepaid_is_charged_per_account_postpaid_kept(world):
    """Prepaid usage: one transfer per account per batch, each record pointing to it; postpaid
    usage is kept (no transfer) for the invoice."""
    before = balance(world["prepaid"])
    batch = imported(line("a1", "+15550001", "1555", T, 45), line("a2", "+15550001", "4420", T, 30),
                     line("b1", "+15550002", "1555", T, 120))
    assert counts(batch) == (3, 3, 0, 0)
    transfer = Transfer.objects.get(idempotency_key__startswith=f"usage:{batch.pk}:")
    assert transfer.amount == Decimal("0.45") and transfer.kind == "charge"
    assert transfer.reference_type == "rating.usagebatch" and transfer.reference_id == str(batch.pk)
    assert balance(world["prepaid"]) == before - Decimal("0.45")
    assert set(RatedUsage.objects.filter(subscription=world["alice"]).values_list("transfer", flat=True)) == {
        transfer.pk}
    bob = RatedUsage.objects.get(record_id="b1")
    assert bob.transfer_id is None and bob.payment_mode == "postpaid" and bob.cost == Decimal("0.2")
    assert batch.charged == Decimal("0.45") and batch.transfers == 1


def test_file_imported_twice_is_all_duplicates(world):
    lines = [line(f"r{i}", "+15550001", "1555", T + dt.timedelta(minutes=i), 30) for i in range(5)]
    lines.append("garbage line\n")
    first = imported(*lines)
    again = imported(*lines)
    assert counts(first) == (6, 5, 1, 0)
    assert counts(again) == (6, 0, 0, 6)
    assert Transfer.objects.filter(idempotency_key__startswith="usage:").count() == 1
    assert UsageRecord.objects.count() == 6


def test_empty_and_header_only_files(world):
    assert counts(usage.import_file(io.BytesIO(b""), format="csv", actor="test")) == (0, 0, 0, 0)
    assert counts(imported()) == (0, 0, 0, 0)


def test_a_header_without_needed_columns_is_refused(world):
    from tarifa.kernel.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="lacks the columns for: record_id"):
        usage.import_file(io.BytesIO(b"id,subject,start_time,usage\nx,+15550001,2024-03-05T10:00:00Z,5\n"),
                          format="csv", actor="test")
    assert not UsageRecord.objects.exists()


def test_number_changes_map_records_to_the_owner_at_the_time(world):
    """alice gives up +15550001 on the 10th (change of number); carol gets it on the 12th.
    Calls on the 5th are alice's, on the 11th nobody's, on the 15th carol's."""
    from tarifa.subscriptions import services as subs

    from .helpers import account, subscriber

    with travel_to(dt.datetime(2024, 3, 10, 8, 0, tzinfo=dt.UTC)):
        subs.change_number(world["alice"], actor="test", phone_number="+15550009")
    with travel_to(dt.datetime(2024, 3, 12, 8, 0, tzinfo=dt.UTC)):
        carol = subscriber(account("prepaid"), world["tariffs"]["MOB"], "+15550001")
    batch = imported(line("x5", "+15550001", "1555", dt.datetime(2024, 3, 5, 9, tzinfo=dt.UTC), 10),
                     line("x11", "+15550001", "1555", dt.datetime(2024, 3, 11, 9, tzinfo=dt.UTC), 10),
                     line("x15", "+15550001", "1555", dt.datetime(2024, 3, 15, 9, tzinfo=dt.UTC), 10),
                     line("y15", "+15550009", "1555", dt.datetime(2024, 3, 15, 9, tzinfo=dt.UTC), 10))
    assert counts(batch) == (4, 3, 1, 0)
    owners = dict(RatedUsage.objects.values_list("record_id", "subscription"))
    assert owners == {"x5": world["alice"].pk, "x15": carol.pk, "y15": world["alice"].pk}
    assert RejectedUsage.objects.get(record_id="x11").reason == "unknown_subscriber"


def test_terminated_subscription_is_outside(world):
    from tarifa.subscriptions import services as subs

    with travel_to(dt.datetime(2024, 3, 10, 8, 0, tzinfo=dt.UTC)):
        subs.terminate(world["bob"], actor="test")
    batch = imported(line("t1", "+15550002", "1555", dt.datetime(2024, 3, 9, 9, tzinfo=dt.UTC), 10),
                     line("t2", "+15550002", "1555", dt.datetime(2024, 3, 11, 9, tzinfo=dt.UTC), 10))
    assert counts(batch) == (2, 1, 1, 0)
    assert RejectedUsage.objects.get(record_id="t2").reason == "unknown_subscriber"


def test_rejected_records_are_reprocessed_after_the_fix(world):
    """A tariff without rating and a destination without a rate: rejected, kept; the operator
    adds the rating and the rate, reprocesses, and they are rated and charged then."""
    from tarifa.rating import services

    from .helpers import ACTOR, account, subscriber

    with travel_to(DAY):
        dave = subscriber(account("prepaid"), world["tariffs"]["BARE"], "+15550004")
    batch = imported(line("n1", "+15550004", "1555", T, 45), line("n2", "+15550001", "3312", T, 30))
    assert counts(batch) == (2, 0, 2, 0)
    assert dict(RejectedUsage.objects.values_list("record_id", "reason")) == {"n1": "tariff_not_rated",
                                                                             "n2": "no_rate"}
    again = usage.reprocess(actor="test")
    assert (again.read, again.rated, again.rejected) == (2, 0, 2)
    assert RejectedUsage.objects.get(record_id="n1").attempts == 2
    services.create_tariff_rating(actor=ACTOR, tariff=world["tariffs"]["BARE"], tenant=world["tenant"],
                                  subject="MOB", categories={"voice": "call"})
    fr = services.create_destination(actor=ACTOR, tenant=world["tenant"], code="FR", prefixes=["33"])
    services.create_destination_rate(actor=ACTOR, tenant=world["tenant"], code="DR_FR", destination=fr,
                                     rate=world["rates"]["R_MIN"], rounding_method="*up", rounding_decimals=4)
    plan = world["dr"]["DR_NAT"]  # any row of the tenant: find the voice plan
    from tarifa.rating.models import RatingPlan

    services.create_binding(actor=ACTOR, rating_plan=RatingPlan.objects.get(tenant=plan.tenant, code="RP_VOICE"),
                            destination_rate_code="DR_FR")
    fixed = usage.reprocess(actor="test")
    assert (fixed.read, fixed.rated, fixed.rejected) == (2, 2, 0)
    assert not RejectedUsage.objects.exists()
    n1 = RatedUsage.objects.get(record_id="n1")
    assert n1.subscription == dave and n1.cost == Decimal("0.1") and n1.transfer is not None
    assert n1.batch == batch and n1.attempts == 3
    assert UsageRecord.objects.count() == 2


def test_correct_a_malformed_record(world):
    batch = imported("m1,sw1,+15550001,1555,voice,5 March 10am,45\n")
    assert counts(batch) == (1, 0, 1, 0)
    record = RejectedUsage.objects.get()
    assert record.reason == "malformed" and record.start_time is None
    fixed = usage.correct(record, actor="test", start_time=T, usage="45s")
    assert fixed.status == "rated" and fixed.cost == Decimal("0.1")


def test_split_file_gives_the_same_total_as_one_import(world):
    lines = [line(f"s{i}", "+15550001" if i % 3 else "+15550002", "1555" if i % 2 else "4420",
                  T + dt.timedelta(minutes=7 * i), 17 * i + 3) for i in range(40)]
    whole = imported(*lines)
    total = sum(RatedUsage.objects.values_list("cost", flat=True))
    UsageRecord.objects.all().delete()
    first, second = imported(*lines[:13]), imported(*lines[13:])
    assert first.read + second.read == whole.read
    assert sum(RatedUsage.objects.values_list("cost", flat=True)) == total


def test_cgrates_cdr_format(world):
    """CGRateS's CDR export: no header, CGRID:RunID is the record id, Account the subscriber,
    Go durations; only the *default run is rated, other runs are filtered (and kept)."""
    rows = (
        "a1b2,*default,*voice,o1,*prepaid,cgrates.org,call,+15550001,+15550001,1555123,"
        "2024-03-05T10:00:00Z,2024-03-05T10:00:01Z,1m30s,0.2\n"
        "a1b2,derived,*voice,o1,*prepaid,cgrates.org,call,+15550001,+15550001,1555123,"
        "2024-03-05T10:00:00Z,2024-03-05T10:00:01Z,1m30s,0.2\n"
        "c3d4,*default,*data,o2,*prepaid,cgrates.org,data,+15550002,+15550002,,"
        "2024-03-05T10:00:00Z,2024-03-05T10:00:01Z,1500000,0\n"
    )
    batch = usage.import_file(io.BytesIO(rows.encode()), format="cgrates-cdr", actor="test")
    assert counts(batch) == (3, 2, 1, 0)
    assert dict(RatedUsage.objects.values_list("record_id", "cost")) == {"a1b2:*default": Decimal("0.2"),
                                                                         "c3d4:*default": Decimal("0.02")}
    assert RejectedUsage.objects.get().reason == "filtered"
    assert RatedUsage.objects.get(record_id="a1b2:*default").source == "cgrates"


def test_declared_format(world):
    """A format declared as data: semicolons, positions, a local time zone, minutes."""
    from tarifa.rating import services

    fmt = services.create_usage_format(actor="test", code="switch-x", name="Switch X", spec={
        "delimiter": ";", "header": False,
        "columns": {"record_id": 0, "subject": 1, "destination": 2, "start_time": 3, "usage": 4},
        "defaults": {"source": "switch-x", "type": "voice"},
        "time_format": "%d.%m.%Y %H:%M:%S", "time_zone": "Europe/Berlin", "time_unit": "min",
        "filters": [{"field": 5, "op": "eq", "value": "ANSWERED"}]})
    text = ("1;+15550001;1555;05.03.2024 11:00:00;2;ANSWERED\n"
            "2;+15550001;1555;05.03.2024 11:05:00;2;BUSY\n")
    batch = usage.import_file(io.BytesIO(text.encode()), format=fmt.code, actor="test")
    assert counts(batch) == (2, 1, 1, 0)
    rated = RatedUsage.objects.get()
    assert rated.start_time == dt.datetime(2024, 3, 5, 10, 0, tzinfo=dt.UTC)
    assert rated.usage == 120 * 10**9 and rated.cost == Decimal("0.2")
