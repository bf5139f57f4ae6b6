"""The invariants run after every test (tarifa.testing.invariants) find what they are meant to find:
an invoice whose total no longer matches its lines or the ledger, and stock that disagrees with its
moves. These tests break them on purpose, so they are not checked after themselves."""

import datetime as dt

import pytest
from django.db import connection

from tarifa.billing import billrun, services
from tarifa.billing.check import check_documents
from tarifa.billing.models import Invoice
from tarifa.inventory import services as inventory
from tarifa.inventory.models import Item
from tarifa.kernel import clock
from tarifa.testing.invariants import broken_invariants

from .helpers import ACTOR, at, customer_account, make_catalog, make_cycle

pytestmark = [pytest.mark.django_db, pytest.mark.breaks_invariants("tampers with an invoice and with stock")]


def test_a_tampered_invoice_and_stock_off_its_moves_are_named():
    with clock.travel_to(at(2025, 3, 1)) as c:
        make_catalog(start=dt.date(2025, 1, 1))
        cycle = make_cycle()
        account = customer_account(payment_mode="postpaid", credit_limit="1000")
        services.assign_cycle(actor=ACTOR, billing_account=account, cycle=cycle)
        services.add_pending_item(actor=ACTOR, billing_account=account, kind="one_time_fee", description="Setup",
                                  amount="10.00", day=dt.date(2025, 3, 3))
        c.add_days(31)
        billrun.run_period(actor=ACTOR, period="2025-03", jobs=1)
    invoice = Invoice.objects.get()
    warehouse = inventory.create_location(actor=ACTOR, code="WH", name="Warehouse", kind="warehouse")
    item = inventory.create_item(actor=ACTOR, code="RT", name="Router", kind=Item.Kind.ROUTER, currency="EUR")
    inventory.receive(actor=ACTOR, warehouse=warehouse, item=item, serials=["R-1"])
    clean = check_documents()
    assert clean["ok"] and clean["invoices"] == 1 and broken_invariants() == {}

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")  # past the issued invoice's guard
        cursor.execute("UPDATE billing_invoice SET total = total + 1 WHERE id = %s", [invoice.pk])
        cursor.execute("SET LOCAL session_replication_role = origin")
        cursor.execute("UPDATE inventory_stock SET quantity = quantity + 1 WHERE location_id = %s", [warehouse.pk])
    broken = broken_invariants()
    assert set(broken) == {"billing", "inventory"}
    assert {p["check"] for p in broken["billing"]} == {"line_totals", "ledger"}
    assert all(p["subject"] == invoice.number for p in broken["billing"])
    assert "stock_matches_moves" in {p["check"] for p in broken["inventory"]}
