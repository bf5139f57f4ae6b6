"""`tarifa demo synth`: the synthetic accounts are spread over bill cycles."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tarifa.billing.models import BillCycle, BillCycleAssignment
from tarifa.ledger.models import BillingAccount

pytestmark = pytest.mark.django_db


def test_synth_spreads_the_accounts_over_the_default_cycles():
    out = StringIO()
    call_command("demo", "synth", "--accounts", "60", "--seed", "4", stdout=out)
    cycles = json.loads(out.getvalue())["billing"]
    assert cycles["assigned"] == BillingAccount.objects.filter(status="active").count() == 60
    assert set(cycles["accounts_per_cycle"]) == {"SYN-01", "SYN-15"}
    assert all(n >= 15 for n in cycles["accounts_per_cycle"].values())  # roughly even: 60 by a hash
    assert BillCycle.objects.get(code="SYN-15").day_of_month == 15
    # A second synth reuses the cycles and places only the new accounts.
    out = StringIO()
    call_command("demo", "synth", "--accounts", "10", "--seed", "5", "--bill-cycle-days", "15,1", stdout=out)
    assert json.loads(out.getvalue())["billing"]["assigned"] == 10
    assert BillCycleAssignment.objects.count() == 70 and BillCycle.objects.count() == 2


def test_no_cycle_days_leaves_the_accounts_unassigned():
    out = StringIO()
    call_command("demo", "synth", "--accounts", "5", "--bill-cycle-days", "", stdout=out)
    assert json.loads(out.getvalue())["billing"] == {"cycles": 0, "assigned": 0}
    assert BillCycleAssignment.objects.count() == 0


def test_a_day_outside_1_to_28_is_refused_before_anything_is_made():
    with pytest.raises(CommandError, match="29 is not a day between 1 and 28"):
        call_command("demo", "synth", "--accounts", "5", "--bill-cycle-days", "1,29", stdout=StringIO())
    assert BillingAccount.objects.count() == 0
