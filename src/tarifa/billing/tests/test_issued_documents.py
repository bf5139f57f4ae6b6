"""Issue 10 items 4 and 11, and amounts in the currency's units: a credit note has its own
document and message (what is credited, against which invoice, nothing to pay); an invoice's
document is rendered once when it is issued, stored and served as is (no later payment state)."""

import datetime as dt
import io
from decimal import Decimal

import pytest
from pypdf import PdfReader

from tarifa.billing import services
from tarifa.billing.models import InvoiceDocument
from tarifa.crm import services as crm
from tarifa.kernel import clock
from tarifa.kernel.models import DomainEvent
from tarifa.ledger import services as ledger

from .helpers import ACTOR, at, make_catalog, make_cycle, make_taxes, run_events

pytestmark = pytest.mark.django_db


def _text(pdf: bytes) -> str:
    return " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages)


def _customer_with_router_invoice():
    make_catalog(start=dt.date(2025, 1, 1))
    make_taxes()
    cycle = make_cycle()
    customer = crm.create_customer(actor=ACTOR, kind="organization", legal_name="Credit Me Ltd", tax_id="T9",
                                   preferred_channel="email", contacts=[{"kind": "email", "value": "ap@credit.example"}])
    account = ledger.open_account(actor=ACTOR, customer=customer, currency="EUR", payment_mode="postpaid",
                                  credit_limit="1000")
    services.assign_cycle(actor=ACTOR, billing_account=account, cycle=cycle)
    services.add_pending_item(actor=ACTOR, billing_account=account, kind="one_time_fee", description="Router",
                              amount="49.00", service_type="internet")
    services.add_pending_item(actor=ACTOR, billing_account=account, kind="discount", description="Welcome",
                              amount="-10.00")
    return customer, services.bill_now(actor=ACTOR, billing_account=account)


def test_a_credit_note_has_its_own_document_and_asks_for_no_payment(make_user, staff_client):
    """(Its e-mail / SMS wording: integrations/tests/test_invoice_email.py.)"""
    with clock.travel_to(at(2025, 3, 10)):
        customer, invoice = _customer_with_router_invoice()
        note = services.credit_invoice(invoice, actor=ACTOR, amount="4.00", reason="late delivery")
        run_events()
        pdf = staff_client(make_user("billing.view_invoice")).get(f"/billing/invoice/{note.pk}/pdf/")
        assert pdf.status_code == 200
        text = _text(pdf.content)
        assert f"Credit note {note.number}" in text and f"Credits invoice {invoice.number}" in text
        assert "Reason late delivery" in text and "Total credited 4.00 EUR" in text
        assert "Credit: Router" in text and "VAT 20% incl.: 0.84" in text  # the router's share 5.03 at 20 %
        assert "There is nothing to pay" in text
        for wrong in ("Please pay", "quoting", "IBAN", "4.000000", "-4.00"):
            assert wrong not in text, wrong


def test_an_issued_invoice_document_is_rendered_at_issue_and_served_as_issued(make_user, staff_client):
    with clock.travel_to(at(2025, 3, 10)):
        customer, invoice = _customer_with_router_invoice()
        assert DomainEvent.objects.filter(name="billing.invoice_issued", object_id=str(invoice.pk)).exists()
        run_events()  # what the worker does after the issue: the document is made now, not at first download
        stored = InvoiceDocument.objects.get(invoice=invoice)
        text = _text(bytes(stored.pdf))
        assert f"Interim invoice {invoice.number}" in text
        assert "Total 39.00 EUR" in text and "Please pay 39.00 EUR by 2025-03-24" in text
        assert "Credited" not in text and "Paid" not in text and "49.000000" not in text
        services.credit_invoice(invoice, actor=ACTOR, amount="5.00", reason="outage")
        services.credit_invoice(invoice, actor=ACTOR, amount="5.00", reason="second outage")
        run_events()
        client = staff_client(make_user("billing.view_invoice"))
        served = client.get(f"/billing/invoice/{invoice.pk}/pdf/")
        assert served.status_code == 200 and served.content == bytes(stored.pdf)  # what was issued, unchanged
        # The account's current state is on its statement: both credit notes are there.
        statement = client.get(f"/billing/account/{invoice.billing_account_id}/statement/")
        assert statement.status_code == 200
        assert _text(statement.content).count("credit note for") == 2
        invoice.refresh_from_db()
        assert invoice.credited_amount == Decimal("10.00")


def test_invoice_page_shows_amounts_in_currency_units(make_user, staff_client):
    with clock.travel_to(at(2025, 3, 10)):
        _customer, invoice = _customer_with_router_invoice()
        note = services.credit_invoice(invoice, actor=ACTOR, amount="4.00", reason="late delivery")
        client = staff_client(make_user("billing.view_invoice"))
        import re

        for obj in (invoice, note):
            html = client.get(f"/billing/invoice/{obj.pk}/").content.decode()
            # Billing's part of the page: lines, taxes, allocations, credit notes (the generic field
            # list and history are the web platform's).
            part = html[html.index('id="invoice-lines"'):html.index("Payments allocated")]
            assert not re.findall(r"\d\.\d{3,}", part), (obj, re.findall(r".{40}\d\.\d{3,}.{20}", part))
        html = client.get(f"/billing/invoice/{invoice.pk}/").content.decode()
        assert "6.50" in html and "-4.00 EUR" in html
