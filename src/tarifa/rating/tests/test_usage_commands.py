"""`tarifa usage import | reprocess | rerate | formats` as operators script them: JSON out,
exit 2 with an error code on bad input."""

import datetime as dt
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from tarifa.kernel.clock import travel_to
from tarifa.rating import services
from tarifa.rating.models import RatedUsage, RatingPlan, RejectedUsage

from .helpers import ACTOR, DAY, make_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    with travel_to(DAY):
        w = make_world()
    with travel_to(dt.datetime(2024, 4, 20, 12, 0, tzinfo=dt.UTC)):
        yield w


def usage_cmd(*args) -> tuple[int, object]:
    out = StringIO()
    try:
        call_command("usage", *args, stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.getvalue())


def test_import_reprocess_and_rerate_from_the_command_line(world, tmp_path):
    """A file with a call to France (no rate yet) and two national calls; the operator adds the
    rate and reprocesses the no-rate queue, then raises national minutes from 0.10 to 0.12 and
    re-rates March for the prepaid account only: one changed record, 0.02 more."""
    path = tmp_path / "march.csv"
    path.write_text("record_id,source,subject,destination,type,start_time,usage\n"
                    "f1,sw,+15550001,3312,voice,2024-03-05T10:00:00Z,60\n"
                    "n1,sw,+15550001,1555,voice,2024-03-05T11:00:00Z,60\n"
                    "n2,sw,+15550002,1555,voice,2024-03-05T12:00:00Z,60\n")
    code, summary = usage_cmd("import", str(path), "--format", "csv")
    assert code == 0 and (summary["read"], summary["rated"], summary["rejected"], summary["duplicates"]) == (3, 2, 1, 0)
    assert summary["reasons"] == {"no_rate": 1} and summary["file"] == "march.csv"
    code, error = usage_cmd("import", str(path), "--format", "nope")
    assert code == 2 and error["error"]["code"] == "unknown_format"
    code, error = usage_cmd("import", str(tmp_path / "missing.csv"))
    assert code == 2 and error["error"]["code"] == "file_not_readable"

    fr = services.create_destination(actor=ACTOR, tenant=world["tenant"], code="FR", prefixes=["33"])
    services.create_destination_rate(actor=ACTOR, tenant=world["tenant"], code="DR_FR", destination=fr,
                                     rate=world["rates"]["R_MIN"], rounding_method="*up", rounding_decimals=4)
    services.create_binding(actor=ACTOR, rating_plan=RatingPlan.objects.get(code="RP_VOICE"),
                            destination_rate_code="DR_FR")
    code, summary = usage_cmd("reprocess", "--reason", "unknown_subscriber")
    assert code == 0 and summary["read"] == 0
    code, summary = usage_cmd("reprocess", "--reason", "no_rate")
    assert code == 0 and (summary["read"], summary["rated"], summary["rejected"]) == (1, 1, 0)
    assert not RejectedUsage.objects.exists() and RatedUsage.objects.get(record_id="f1").cost == Decimal("0.1")

    services.update_rate(world["rates"]["R_MIN"], actor=ACTOR, slots=[
        {"price": "0.12", "rate_unit": "60s", "rate_increment": "60s"}])
    code, run = usage_cmd("rerate", "--from", "2024-03-01", "--to", "2024-04-01", "--account",
                          world["prepaid"].number)
    assert code == 0, run
    assert (run["records"], run["changed"], run["unratable"]) == (2, 2, 0)
    assert (Decimal(run["old_total"]), Decimal(run["new_total"]), Decimal(run["difference"])) == (
        Decimal("0.2"), Decimal("0.24"), Decimal("0.04"))
    assert run["transfers"] == 1
    assert RatedUsage.objects.get(record_id="n2").cost == Decimal("0.1")  # another account: untouched
    code, error = usage_cmd("rerate", "--from", "2024-03-01", "--to", "2024-04-01", "--account", "HQ-A9999999")
    assert code == 2 and error["error"]["code"] == "not_found"
    code, error = usage_cmd("rerate", "--from", "2024-04-01", "--to", "2024-03-01")
    assert code == 2 and error["error"]["code"] == "invalid_period"
    code, error = usage_cmd("rerate", "--from", "March", "--to", "2024-03-01")
    assert code == 2 and error["error"]["code"] == "invalid_argument"


def test_formats_lists_built_in_and_declared_ones(world):
    services.create_usage_format(actor=ACTOR, code="switch-x", name="Switch X", spec={
        "delimiter": ";", "header": False, "columns": {"record_id": 0, "subject": 1, "start_time": 2, "usage": 3}})
    code, rows = usage_cmd("formats")
    assert code == 0
    assert {(r["code"], r["builtin"]) for r in rows} == {("csv", True), ("cgrates-cdr", True), ("switch-x", False)}
