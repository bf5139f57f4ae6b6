"""Rated usage from rating (postpaid: kept for the invoice) becomes usage lines by destination group,
booked to the ledger by the invoice; both paths agree; nothing is billed twice."""

import datetime as dt
from decimal import Decimal

import pytest

from tarifa.billing import billrun, services
from tarifa.billing.check import check
from tarifa.billing.models import Invoice
from tarifa.kernel import clock
from tarifa.ledger.selectors import check_ledger
from tarifa.rating import usage
from tarifa.rating.tests.helpers import DAY, csv_file, line, make_world

pytestmark = pytest.mark.django_db


def test_postpaid_rated_usage_is_invoiced_by_destination_group():
    with clock.travel_to(DAY):
        world = make_world()
        cycle = services.create_cycle(actor="test", code="U", name="Usage")
        services.assign_cycle(actor="test", billing_account=world["postpaid"], cycle=cycle)
        batch = usage.import_file(csv_file(
            line("c1", "+15550002", "1555123", DAY + dt.timedelta(hours=1), "90s"),
            line("c2", "+15550002", "1555124", DAY + dt.timedelta(days=3), "30s"),
            line("c3", "+15550002", "44207000", DAY + dt.timedelta(days=4), "60s"),
            line("c4", "+15550001", "1555125", DAY + dt.timedelta(days=4), "60s")), actor="test")
        assert batch.rated == 4, batch.summary()
    with clock.travel_to(DAY.replace(month=4, day=2)):
        account = world["postpaid"]
        draft, _dates = services.preview_invoice(billing_account=account, period="2024-03")
        summary = billrun.run_period(actor="test", period="2024-03", cycle="U")
        assert summary["invoiced"] == 1
        invoice = Invoice.objects.get(billing_account=account, period="2024-03")
        lines = {ln.destination: ln for ln in invoice.lines.filter(kind="usage")}
        assert set(lines) == {"NAT", "UK"}
        assert lines["NAT"].amount == Decimal("0.300000")  # 2 + 1 whole minutes at 0.10
        assert lines["UK"].amount == Decimal("0.650000")  # 0.05 connect + 60 s at 0.60 per minute
        assert lines["NAT"].quantity == Decimal(120 * 10**9) and lines["NAT"].booked
        assert [(ln.key, ln.amount, ln.total) for ln in draft.lines] == [
            (ln.key, ln.amount, ln.total) for ln in invoice.lines.order_by("position")]
        assert invoice.total == Decimal("0.95")
        result = check(period="2024-03")
        assert result["ok"], result["problems"]
        assert check_ledger()["ok"]
        assert billrun.run_period(actor="test", period="2024-03", cycle="U")["invoiced"] == 0


def test_prepaid_usage_charged_by_rating_is_a_usage_line_on_the_statement():
    """Rating posts a prepaid account's usage as one charge per batch and service type; the
    statement shows it as usage (not as a one-time fee), which the invoice does not book again."""
    with clock.travel_to(DAY):
        world = make_world()
        cycle = services.create_cycle(actor="test", code="P", name="Prepaid statements")
        services.assign_cycle(actor="test", billing_account=world["prepaid"], cycle=cycle)
        batch = usage.import_file(csv_file(
            line("p1", "+15550001", "1555123", DAY + dt.timedelta(hours=1), "90s"),
            line("p2", "+15550001", "1555124", DAY + dt.timedelta(days=2), "30s")), actor="test")
        assert batch.rated == 2 and batch.transfers == 1, batch.summary()
    with clock.travel_to(DAY.replace(month=4, day=2)):
        billrun.run_period(actor="test", period="2024-03", cycle="P")
        invoice = Invoice.objects.get(billing_account=world["prepaid"], period="2024-03")
        usage_lines = list(invoice.lines.filter(kind="usage"))
        assert [ln.amount for ln in usage_lines] == [Decimal("0.300000")]
        assert not usage_lines[0].booked  # in the ledger already: the invoice books nothing more
        assert not invoice.lines.filter(kind="one_time_fee").exists()
        assert check(period="2024-03")["ok"]
        assert check_ledger()["ok"]


def test_usage_lines_show_the_free_units_a_bundle_gave():
    """One free national minute a month: of 90 s + 30 s to NAT, 60 s are free; the rest (two
    whole minutes then none: 30 s over on the first call, 30 s on the second) is 0.10 + 0.10."""
    from tarifa.rating import services as rating

    with clock.travel_to(DAY):
        world = make_world()
        rating.create_bundle(actor="test", tariff=world["tariffs"]["MOB"], code="NAT60", name="1 minute",
                             usage_type="voice", allowance="60s", destinations=["NAT"])
        cycle = services.create_cycle(actor="test", code="U", name="Usage")
        services.assign_cycle(actor="test", billing_account=world["postpaid"], cycle=cycle)
        usage.import_file(csv_file(
            line("f1", "+15550002", "1555123", DAY + dt.timedelta(hours=1), "90s"),
            line("f2", "+15550002", "1555124", DAY + dt.timedelta(days=3), "30s")), actor="test")
    with clock.travel_to(DAY.replace(month=4, day=2)):
        billrun.run_period(actor="test", period="2024-03", cycle="U")
        nat = Invoice.objects.get(billing_account=world["postpaid"]).lines.get(kind="usage", destination="NAT")
        assert nat.quantity == Decimal(120 * 10**9) and nat.free_units == Decimal(60 * 10**9)
        assert nat.amount == Decimal("0.200000")
