"""Property: splitting a usage file into two imports, at any line, gives the same result as
importing it whole — the same records rated, rejected and taken as duplicates, the same
total cost and the same prepaid charges (the tariff of helpers.py has no bundle here)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tarifa.kernel.clock import travel_to
from tarifa.rating import usage
from tarifa.rating.models import RatedUsage

from .helpers import DAY, balance, csv_file, line, make_world

pytestmark = pytest.mark.django_db

SUBJECTS = ["+15550001", "+15550002", "+19990000"]  # prepaid, postpaid, nobody's
DESTINATIONS = ["1555", "4420", "7777"]  # national, UK, no rate
record = st.tuples(st.integers(0, 9), st.sampled_from(SUBJECTS), st.sampled_from(DESTINATIONS),
                   st.sampled_from(["voice", "voice", "sms", "data"]), st.integers(0, 30 * 24 * 60),
                   st.integers(0, 5000), st.booleans())


def _lines(records):
    """A repeated record id repeats its first line: a retry. (A *different* line with the id of a
    record rejected by an earlier import is a correction, reprocessed — test_reimport.py — so a
    cut between the two would not equal the whole, by design.)"""
    out, first = [], {}
    for rid, subject, dest, kind, minute, amount, broken in records:
        if rid in first:
            out.append(first[rid])
            continue
        start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=minute)
        if broken:
            out.append(f"r{rid},sw,{subject},{dest},{kind},sometime,{amount}\n")
        else:
            out.append(line(f"r{rid}", subject, dest if kind == "voice" else "", start,
                            amount if kind != "data" else amount * 1000, kind=kind))
        first[rid] = out[-1]
    return out


def _outcome(batches, world):
    rated = RatedUsage.objects.aggregate(total=Sum("cost"))["total"] or Decimal(0)
    counts = [sum(getattr(b, k) for b in batches) for k in ("read", "rated", "rejected", "duplicates")]
    return counts, rated, balance(world["prepaid"])


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(record, max_size=20), st.integers(0, 20))
def test_two_imports_equal_one(records, cut):
    lines = _lines(records)
    cut = min(cut, len(lines))
    with transaction.atomic():
        with travel_to(DAY):
            world = make_world()
        with travel_to(dt.datetime(2024, 4, 2, tzinfo=dt.UTC)):
            whole_point = transaction.savepoint()
            whole = _outcome([usage.import_file(csv_file(*lines), actor="test")], world)
            transaction.savepoint_rollback(whole_point)
            split = _outcome([usage.import_file(csv_file(*lines[:cut]), actor="test"),
                              usage.import_file(csv_file(*lines[cut:]), actor="test")], world)
        transaction.set_rollback(True)
    assert whole == split
    assert whole[0][0] == len(lines) == sum(whole[0][1:])
