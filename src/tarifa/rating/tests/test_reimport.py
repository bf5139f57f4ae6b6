"""Issue 10 item 17: a rejected record keeps its raw line, and a corrected line imported again
with the same record id is reprocessed (not counted as a duplicate); the old rejection is marked
superseded, the summary says "reprocessed", and every input line still ends in exactly one place.

The operator of helpers.py: alice (+15550001) prepaid, national minutes 0.10 each."""

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


def imported(*lines) -> UsageBatch:
    return usage.import_file(csv_file(*lines), format="csv", actor="test", file_name="test.csv")


def counts(batch):
    return batch.read, batch.rated, batch.rejected, batch.duplicates, batch.reprocessed


def test_records_rejected_after_reading_keep_their_raw_line(world):
    """unknown_subscriber, no_rate, outside_subscription: the line was read fine, rejected later;
    its raw line is kept (it was empty)."""
    lines = [line("u1", "+19999999", "1555", T, 45), line("u2", "+15550001", "999", T, 5),
             line("u3", "+15550003", "1555", T, 5)]
    batch = imported(*lines)
    assert counts(batch) == (3, 0, 3, 0, 0)
    raws = dict(RejectedUsage.objects.values_list("record_id", "raw"))
    assert raws == {f"u{i + 1}": text.rstrip("\n") for i, text in enumerate(lines)}
    assert RejectedUsage.objects.get(record_id="u1").reason == "unknown_subscriber"


def test_records_from_the_api_keep_their_raw_record(world):
    batch = usage.import_records([{"record_id": "j1", "source": "api1", "subject": "+19999999",
                                   "destination": "1555", "type": "voice", "start_time": T.isoformat(),
                                   "usage": "45"}], actor="test")
    assert (batch.rejected, RejectedUsage.objects.get().reason) == (1, "unknown_subscriber")
    assert '"subject": "+19999999"' in RejectedUsage.objects.get().raw


def test_a_corrected_reimport_of_a_rejected_record_is_reprocessed(world):
    before = balance(world["prepaid"])
    first = imported(line("c9", "+19999999", "1555", T, 45), line("ok1", "+15550001", "1555", T, 45))
    assert counts(first) == (2, 1, 1, 0, 0)
    old = RejectedUsage.objects.get(record_id="c9")

    corrected = line("c9", "+15550001", "1555", T, 45)  # the operator fixed the number
    again = imported(corrected, line("ok1", "+15550001", "1555", T, 45))
    assert counts(again) == (2, 1, 0, 1, 1)  # the rated ok1 stays a duplicate; c9 is reprocessed
    assert again.read == again.rated + again.rejected + again.duplicates
    assert again.summary()["reprocessed"] == 1

    old.refresh_from_db()
    new = RatedUsage.objects.get(record_id="c9")
    assert old.status == UsageRecord.Status.SUPERSEDED and old.superseded_by_id == new.pk
    assert old.batch_id == first.pk and old.reason == "unknown_subscriber" and old.raw  # kept as it was
    assert new.batch_id == again.pk and new.cost == Decimal("0.1") and new.transfer is not None
    assert not RejectedUsage.objects.exists()
    # Every input line in exactly one place: 4 lines = 2 rated + 1 superseded rejection + 1 duplicate.
    assert UsageRecord.objects.count() == 3
    assert balance(world["prepaid"]) == before - Decimal("0.2")
    first.refresh_from_db()
    assert counts(first) == (2, 1, 1, 0, 0)  # the first import's own counts do not change


def test_a_corrected_line_still_wrong_is_rejected_again_with_its_new_line(world):
    imported(line("w1", "+19999999", "1555", T, 45))
    second = line("w1", "+19999998", "1555", T, 45)
    batch = imported(second)
    assert counts(batch) == (1, 0, 1, 0, 1)
    current = RejectedUsage.objects.get()
    assert current.batch_id == batch.pk and current.raw == second.rstrip("\n")
    assert UsageRecord.objects.filter(status="superseded").count() == 1
    third = imported(line("w1", "+15550001", "1555", T, 45))
    assert counts(third) == (1, 1, 0, 0, 1)
    assert UsageRecord.objects.filter(record_id="w1").count() == 3
    assert UsageRecord.objects.filter(record_id="w1", status="superseded").count() == 2


def test_the_same_rejected_line_sent_again_is_a_duplicate(world):
    """A retry of the same file is not a correction: it changes nothing (rule 5)."""
    lines = [line("r1", "+19999999", "1555", T, 45), "garbage line\n"]
    imported(*lines)
    again = imported(*lines)
    assert counts(again) == (2, 0, 0, 2, 0)
    assert UsageRecord.objects.count() == 2 and not UsageRecord.objects.filter(status="superseded").exists()


def test_a_changed_line_of_a_rated_record_stays_a_duplicate(world):
    imported(line("k1", "+15550001", "1555", T, 45))
    again = imported(line("k1", "+15550001", "1555", T, 600))
    assert counts(again) == (1, 0, 0, 1, 0)
    assert RatedUsage.objects.get(record_id="k1").usage == 45 * 10**9


def test_two_corrections_in_one_file_take_the_first(world):
    imported(line("t1", "+19999999", "1555", T, 45))
    batch = imported(line("t1", "+15550001", "1555", T, 45), line("t1", "+15550002", "1555", T, 45))
    assert counts(batch) == (2, 1, 0, 1, 1)
    assert RatedUsage.objects.get(record_id="t1").subscription == world["alice"]
    assert Transfer.objects.filter(idempotency_key__startswith=f"usage:{batch.pk}:").count() == 1


def test_the_command_and_the_page_say_reprocessed(world, admin_user):
    import json
    import tempfile
    from io import StringIO

    from django.core.management import call_command
    from django.test import Client

    imported(line("p1", "+19999999", "1555", T, 45))
    with tempfile.NamedTemporaryFile("w", suffix=".csv") as f:
        f.write("record_id,source,subject,destination,type,start_time,usage\n" + line("p1", "+15550001", "1555", T, 45))
        f.flush()
        out = StringIO()
        call_command("usage", "import", f.name, stdout=out)
    summary = json.loads(out.getvalue())
    assert summary["reprocessed"] == 1
    batch = UsageBatch.objects.get(pk=summary["batch"])
    client = Client()
    client.force_login(admin_user)
    page = client.get(f"/rating/usagebatch/{batch.pk}/").content.decode()
    assert "1 reprocessed" in page


def test_reimport_keeps_raw_for_the_bad_utf8_line(world):
    batch = usage.import_file(io.BytesIO(b"record_id,source,subject,destination,type,start_time,usage\n"
                                         b"x1,sw1,+1555\xff01,1555,voice,2024-03-05T10:00:00Z,5\n"),
                              format="csv", actor="test")
    assert batch.rejected == 1 and "\\xff" in RejectedUsage.objects.get().raw
