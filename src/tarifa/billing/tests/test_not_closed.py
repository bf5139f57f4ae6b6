"""Issue 10 item 10 / issue 11 (Lower): cycles whose period has not closed are skipped and
reported — by the bill run over all cycles and by revenue assurance — never errors."""

import io
import json

import pytest
from django.core.management import call_command

from tarifa.billing.check import check
from tarifa.billing.models import Invoice
from tarifa.kernel import clock

from .helpers import at
from .test_runs_all_cycles import three_cycles

pytestmark = pytest.mark.django_db


def test_run_over_all_cycles_bills_the_closed_ones_and_reports_the_others():
    with clock.travel_to(at(2025, 3, 1)) as c:
        three_cycles(c, 5)  # 5 April: M1's March is over, M15's (15 March–14 April) is not
        out = io.StringIO()
        call_command("billing", "run", "--period", "2025-03", "--no-progress", "--jobs", "1", stdout=out)
        summary = json.loads(out.getvalue())  # no SystemExit / CommandError: exit 0
        assert summary["cycles"] == ["M1"] and summary["invoiced"] == 1
        assert [(r["cycle"], r["code"]) for r in summary["not_closed"]] == [("M15", "period_not_closed")]
        assert "2025-04-15" in summary["not_closed"][0]["message"]
        assert list(Invoice.objects.values_list("cycle__code", flat=True)) == ["M1"]


def test_revenue_assurance_skips_a_cycle_whose_period_has_not_closed():
    with clock.travel_to(at(2025, 3, 1)) as c:
        three_cycles(c, 5)
        call_command("billing", "run", "--period", "2025-03", "--cycle", "M1", "--no-progress", "--jobs", "1",
                     stdout=io.StringIO())
        result = check(period="2025-03")
        assert result["ok"], result["problems"]
        assert result["cycles"] == ["M1"]
        assert [(r["cycle"], r["code"]) for r in result["not_closed"]] == [("M15", "period_not_closed")]
        out = io.StringIO()
        call_command("billing", "check", "--period", "2025-03", stdout=out)  # exits 0
        assert json.loads(out.getvalue())["ok"]
        # Named explicitly, the cycle is reported the same way, not checked.
        only = check(period="2025-03", cycle="M15")
        assert only["ok"] and only["cycles"] == [] and only["not_closed"][0]["cycle"] == "M15"
