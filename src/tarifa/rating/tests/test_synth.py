"""`tarifa demo synth --usage-per-subscription K`: CDRs for the synthetic operator, imported
through the real pipeline, with counts that add up."""

import csv
import json
from io import StringIO

import pytest
from django.core.management import call_command

from tarifa.ledger.selectors import check_ledger
from tarifa.rating.models import DestinationPrefix, UsageRecord
from tarifa.rating.synth import plan_files

pytestmark = pytest.mark.django_db


def test_synth_usage_is_written_imported_and_adds_up(tmp_path):
    out = StringIO()
    call_command("demo", "synth", "--accounts", "40", "--seed", "3", "--usage-per-subscription", "5",
                 "--usage-dir", str(tmp_path), stdout=out)
    summary = json.loads(out.getvalue())
    usage = summary["rating"]
    # The file holds what the summary says, in the built-in CSV format.
    with open(usage["usage_file"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == usage["usage_records"] > 0
    assert set(rows[0]) == {"record_id", "source", "subject", "destination", "type", "start_time", "usage"}
    assert {r["type"] for r in rows} <= {"voice", "data"}
    # Every record ended in exactly one place.
    imported = usage["import"]
    assert imported["read"] == usage["usage_records"] == UsageRecord.objects.count()
    assert imported["read"] == imported["rated"] + imported["rejected"] + imported["duplicates"]
    assert imported["rated"] > 0
    assert set(UsageRecord.objects.filter(status="rejected").values_list("reason", flat=True)) <= {"no_rate"}
    # The synthetic plan: 5,000 prefixes under 1,000 destinations.
    assert DestinationPrefix.objects.filter(destination__tenant__code="synth").count() == 5000
    assert check_ledger()["ok"], check_ledger()["problems"]


def test_importing_the_same_usage_again_counts_only_duplicates(tmp_path):
    call_command("demo", "synth", "--accounts", "10", "--usage-per-subscription", "3", "--usage-dir", str(tmp_path),
                 "--no-import", stdout=StringIO())
    assert UsageRecord.objects.count() == 0
    (path,) = tmp_path.glob("*.csv")
    first = StringIO()
    call_command("usage", "import", str(path), "--format", "csv", stdout=first)
    again = StringIO()
    call_command("usage", "import", str(path), "--format", "csv", stdout=again)
    one, two = json.loads(first.getvalue()), json.loads(again.getvalue())
    assert one["read"] == two["read"] == two["duplicates"] > 0
    assert two["rated"] == two["rejected"] == 0


def test_the_synthetic_plan_has_no_prefix_twice():
    rows = plan_files(seed=5)["Destinations.csv"][1:]
    prefixes = [row.split(",")[1] for row in rows]
    assert len(prefixes) == len(set(prefixes)) == 5000
    assert not any(p.startswith("999") for p in prefixes)
