"""`tarifa rating import-cgrates` and `tarifa rating cost` on the CGRateS example plans.

Every expected cost is derived by hand in the test's docstring from the plan's CSV rows
(the same calls the engine's own tests price from files, here through the database:
import → rows → compiled plan → command).
"""

import json
import os
import shutil
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tarifa.audit.models import AuditEvent
from tarifa.rating import plans
from tarifa.rating.models import Destination, DestinationPrefix, Rate, RatingPlan, RatingProfile, RatingTenant

INTEROP = Path("/work/shared/interop/cgrates")
for candidate in (Path(__file__).resolve().parents[5] / "shared" / "interop" / "cgrates", INTEROP):
    if candidate.is_dir():
        INTEROP = candidate
        break
pytestmark = [pytest.mark.django_db, pytest.mark.skipif(not INTEROP.is_dir() and not os.environ.get("CI"), reason="interop plans not found")]


def run(*args) -> dict:
    out = StringIO()
    call_command("rating", *args, stdout=out)
    return json.loads(out.getvalue())


def cost(tenant, category, subject, destination, usage, *, at="2019-03-04T10:00:00Z", kind="voice", extra=()):
    out = StringIO()
    args = ["cost", "--tenant", tenant, "--category", category, "--subject", subject, "--destination", destination,
            "--answer-time", at, "--usage", usage, "--type", kind, *extra]
    try:
        call_command("rating", *args, stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.getvalue())


def load(name, *extra):
    return run("import-cgrates", str(INTEROP / name), *extra)


class TestTutorial:
    @pytest.fixture(autouse=True)
    def plan(self):
        summary = load("tutorial")
        assert set(summary["tenants"]) == {"cgrates.org", "cgrates.com"}

    def test_group_interval_starts(self):
        """1001 → 1002 is RP_1001 → DR_1002_20CNT → RT_20CNT: connect fee 0.4; 0.2 per 60 s in
        60 s increments from 0 s; 0.1 per 60 s in 1 s increments from 60 s. 90 s: 0.4 + 0.2 +
        30 × round(0.05 / 30, 5) = 30 × 0.00167 = 0.0501 → 0.6501 (*up, 4 decimals)."""
        code, body = cost("cgrates.org", "call", "1001", "1002", "90s")
        assert code == 0 and Decimal(body["cost"]) == Decimal("0.6501")
        assert [s["rate_slot"]["group_interval_start"] for s in body["spans"]] == [0, 60 * 10**9]
        assert [s["rating_plan"] for s in body["spans"]] == ["RP_1001", "RP_1001"]

    def test_published_increments(self):
        """1003 → 1001: RP_1003 → RT_10CNT (0.2 connect, 0.1 first minute, then 0.05/min per s).
        85 s: 0.2 + 0.1 + 25 × round(0.05 × 25/60 / 25, 5) = 25 × 0.00083 = 0.02075;
        0.32075 → *up 4 = 0.3208 (CGRateS's published GetCost trace)."""
        code, body = cost("cgrates.org", "call", "1003", "1001", "85s")
        assert code == 0 and Decimal(body["cost"]) == Decimal("0.3208")
        increments = [(i["count"], Decimal(i["cost"])) for s in body["spans"] for i in s["increments"]]
        assert increments == [(1, Decimal("0.2")), (1, Decimal("0.1")), (25, Decimal("0.00083"))]

    def test_max_cost_disconnect_does_not_cap(self):
        """1001 → 1003: DR_1003_MAXCOST_DISC, 0.01 per second, MaxCost 0.12 *disconnect: 60 s
        costs 0.6 and the session would have been cut after 12 s (0.12)."""
        code, body = cost("cgrates.org", "call", "1001", "1003", "1m")
        assert code == 0 and Decimal(body["cost"]) == Decimal("0.6000")
        assert body["max_cost_disconnect"] is True and body["max_usage"] == 12 * 10**9

    def test_activation_times(self):
        """In 2012 subject 1001 still has RP_1002 (active from 2010-01-14): 1001 reachable at
        RT_20CNT, 60 s = 0.4 + 0.2 = 0.6; 1002 is not in RP_1002 → UNAUTHORIZED_DESTINATION, exit 3."""
        code, body = cost("cgrates.org", "call", "1001", "1001", "60s", at="2012-06-01T10:00:00Z")
        assert code == 0 and Decimal(body["cost"]) == Decimal("0.6000") and body["spans"][0]["rating_plan"] == "RP_1002"
        code, body = cost("cgrates.org", "call", "1001", "1002", "60s", at="2012-06-01T10:00:00Z")
        assert code == 3 and body["error"]["code"] == "UNAUTHORIZED_DESTINATION"

    def test_a_subject_without_any_profile(self):
        """cgrates.org/call has profiles for 1001, 1002 and 1003 and none for *any: subject 9999 has
        no rating profile at all → RATING_PLAN_NOT_FOUND (as CGRateS), exit 3 like an unauthorized
        destination. cgrates.com/call has a *any profile (RP_1001): 9999 → 1002 for 90 s is priced
        as 1001's call above, 0.6501."""
        code, body = cost("cgrates.org", "call", "9999", "1002", "90s")
        assert code == 3 and body["error"]["code"] == "RATING_PLAN_NOT_FOUND"
        code, body = cost("cgrates.com", "call", "9999", "1002", "90s")
        assert code == 0 and Decimal(body["cost"]) == Decimal("0.6501") and body["spans"][0]["rating_plan"] == "RP_1001"

    def test_sms_counts(self):
        """sms/*any → RP_SMS → RT_SMS: 0.01 per unit, increment 1: 3 SMS = 0.03."""
        code, body = cost("cgrates.org", "sms", "1001", "1002", "3", kind="sms")
        assert code == 0 and Decimal(body["cost"]) == Decimal("0.0300")

    def test_plan_option_skips_profiles(self):
        """--plan RP_1003 prices 1001 → 1001 with RT_10CNT whatever the profile: 0.2 + 0.1 = 0.3;
        an unknown plan is RATING_PLAN_NOT_FOUND (exit 3)."""
        code, body = cost("cgrates.org", "call", "1001", "1001", "60s", extra=("--plan", "RP_1003"))
        assert code == 0 and Decimal(body["cost"]) == Decimal("0.3000")
        code, body = cost("cgrates.org", "call", "1001", "1001", "60s", extra=("--plan", "NOPE"))
        assert code == 3 and body["error"]["code"] == "RATING_PLAN_NOT_FOUND"

    def test_other_tenant_any_subject(self):
        """cgrates.com call/*any → RP_1001 too: 1001 → 1002 for 60 s = 0.4 + 0.2 = 0.6."""
        code, body = cost("cgrates.com", "call", "anyone", "1002", "60s")
        assert code == 0 and Decimal(body["cost"]) == Decimal("0.6000") and body["subject"] == "anyone"

    def test_bad_arguments_exit_2(self):
        code, body = cost("cgrates.org", "call", "1001", "1002", "soon")
        assert code == 2 and body["error"]["code"] == "invalid_argument"
        code, body = cost("nobody.org", "call", "1001", "1002", "60s")
        assert code == 2 and body["error"]["code"] == "tenant_not_found"


def test_oldtutorial_max_cost_free_and_stretch():
    """oldtutorial: 1001 → 1007 uses DR_1007_MAXCOST_FREE (0.01/s capped at 0.62 *free):
    120 s → 0.62. DST_FS (prefix 10) at peak is RT_40CNT: 0.8 connect, 0.4/min in 30 s steps,
    then 0.2/min in 10 s steps from 60 s: 65 s is rated 70 s = 0.8 + 0.4 + 10 s × 0.2/60
    (0.03333) = 1.23333 → *up 4 = 1.2334."""
    load("oldtutorial")
    assert Decimal(cost("cgrates.org", "call", "1001", "1007", "2m")[1]["cost"]) == Decimal("0.62")
    body = cost("cgrates.org", "call", "1002", "1005", "65s")[1]
    assert Decimal(body["cost"]) == Decimal("1.2334") and body["rated_usage"] == 70 * 10**9


def test_session_rounding_up_and_down():
    """session_rounding: 0.033 per second; total *up to 1 decimal: 10 s = 0.33 → 0.4; *down: 0.3."""
    load("session_rounding")
    assert Decimal(cost("cgrates.org", "call", "up", "123", "10s")[1]["cost"]) == Decimal("0.4")
    assert Decimal(cost("cgrates.org", "call", "down", "123", "10s")[1]["cost"]) == Decimal("0.3")


def test_testtp_data_per_megabyte():
    """testtp RT_DATA_r: 0.1 per 1048576 units in 10240-unit increments, *up 5. 1048576 units
    are 102.4 increments → 103 (1054720 units): 0.1 × 1054720/1048576 = 0.1005859 → 0.10059;
    / 103 = 0.00098 (5 decimals); × 103 = 0.10094."""
    load("testtp")
    code, body = cost("cgrates.org", "data", "datar", "2221", "1048576", kind="data")
    assert code == 0 and Decimal(body["cost"]) == Decimal("0.10094")


def test_costs1_with_tenant_override_and_rounding_decimals():
    """costs1 loaded under another tenant; --rounding-decimals changes the engine's decimals."""
    summary = load("costs1", "--tenant", "acme")
    assert list(summary["tenants"]) == ["acme"]
    assert RatingProfile.objects.filter(tenant__code="acme").exists()
    assert not RatingTenant.objects.filter(code="cgrates.org").exists()


def test_reimport_replaces_the_tenant_plan(tmp_path):
    """Re-importing replaces the plans of the tenants it loads, and nothing else."""
    load("tutorial")
    load("costs1", "--tenant", "other")
    org = RatingTenant.objects.get(code="cgrates.org")
    before = plans.plan_for(org)
    load("oldtutorial")
    after = plans.plan_for(org)
    assert after is not before
    assert set(Destination.objects.filter(tenant=org).values_list("code", flat=True)) == set(after.destinations)
    assert RatingTenant.objects.get(code="other").plan_version == 1  # untouched
    assert AuditEvent.objects.filter(object_id=str(org.pk), action="import_cgrates").count() == 2


def test_errors_name_file_and_line_and_write_nothing(tmp_path):
    """A bad value in the middle of the files: the error names the file and line; the
    previous plan stays as it was."""
    load("tutorial")
    before = (Destination.objects.count(), DestinationPrefix.objects.count(), Rate.objects.count())
    broken = tmp_path / "plan"
    shutil.copytree(INTEROP / "tutorial", broken)
    rates = (broken / "Rates.csv").read_text().splitlines()
    rates[3] = rates[3].replace("0.2", "zero.two", 1)
    (broken / "Rates.csv").write_text("\n".join(rates) + "\n")
    with pytest.raises(CommandError) as info:
        run("import-cgrates", str(broken))
    assert "Rates.csv, line 4" in str(info.value) and "plan_invalid" in str(info.value)
    assert (Destination.objects.count(), DestinationPrefix.objects.count(), Rate.objects.count()) == before
    (broken / "Rates.csv").unlink()
    with pytest.raises(CommandError, match="Rates.csv: file not found"):
        run("import-cgrates", str(broken))


def test_dangling_reference_is_refused(tmp_path):
    broken = tmp_path / "plan"
    shutil.copytree(INTEROP / "tutorial", broken)
    with open(broken / "RatingPlans.csv", "a") as fh:
        fh.write("\nRP_X,DR_NOPE,*any,10\n")
    with pytest.raises(CommandError, match="RatingPlans.csv, line 9.*unknown destination rate DR_NOPE"):
        run("import-cgrates", str(broken))
    assert not RatingPlan.objects.exists()


@pytest.mark.parametrize("name", ["tutorial", "tutorial2", "engine_unit", "testtp", "oldtutorial"])
def test_export_round_trip(name, tmp_path):
    """Export then import again into another tenant: the same prices for the same calls."""
    from datetime import UTC, datetime

    from tarifa.rating import engine

    load(name)
    source = engine.load_directory(INTEROP / name)
    for tenant in sorted({p.tenant for p in source.rating_profiles}):
        run("export-cgrates", tenant, str(tmp_path / tenant))
        again = engine.load_directory(tmp_path / tenant)
        for profile in source.rating_profiles:
            if profile.tenant != tenant:
                continue
            for dest in list(source.destinations.values())[:6]:
                number = dest.prefixes[0] + "123"
                for usage in (engine.SECOND * 45, engine.SECOND * 125):
                    kw = dict(tenant=tenant, category=profile.category, subject=profile.subject, destination=number,
                              answer_time=datetime(2019, 3, 4, 10, 0, tzinfo=UTC), usage=usage)
                    try:
                        want = engine.rate(source, **kw).cost
                    except engine.RatingError as exc:
                        want = exc.code
                    try:
                        got = engine.rate(again, **kw).cost
                    except engine.RatingError as exc:
                        got = exc.code
                    assert got == want, kw
