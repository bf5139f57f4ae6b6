"""Billing's invoices are e-mailed on issue with their PDF attached (the notifications' attachment hook)."""

import datetime as dt

import pytest
from django.core import mail

from tarifa.billing import services as billing
from tarifa.crm import services as crm
from tarifa.integrations import demo
from tarifa.integrations.models import Notification
from tarifa.kernel import clock
from tarifa.ledger import services as ledger
from tarifa.subscriptions.tests.helpers import make_catalog, run_events

pytestmark = pytest.mark.django_db


def test_issued_invoice_is_emailed_with_its_pdf():
    with clock.travel_to(dt.datetime(2025, 4, 2, 9, tzinfo=dt.timezone.utc)):
        demo.load(actor="test")
        make_catalog()
        customer = crm.create_customer(actor="test", kind="organization", legal_name="Mail Me Ltd", tax_id="T1",
                                       preferred_channel="email",
                                       contacts=[{"kind": "email", "value": "ap@mailme.example"}])
        account = ledger.open_account(actor="test", customer=customer, currency="EUR", payment_mode="postpaid")
        cycle = billing.create_cycle(actor="test", code="M", name="Monthly")
        billing.assign_cycle(actor="test", billing_account=account, cycle=cycle)
        billing.add_pending_item(actor="test", billing_account=account, kind="one_time_fee", description="Setup",
                                 amount="50.00", day=dt.date(2025, 4, 2))
        # Opened today: an interim invoice ("Invoice now"), not March's (a period it did not live in).
        invoice = billing.bill_now(actor="test", billing_account=account)
        run_events()
        note = Notification.objects.get(event="invoice_issued", customer=customer)
        from tarifa.integrations.services import deliver_now

        deliver_now(note.pk)
        note.refresh_from_db()
        assert note.status == "sent", note.last_error
        message = mail.outbox[-1]
        assert invoice.number in message.subject and message.to == ["ap@mailme.example"]
        name, content, mimetype = message.attachments[0]
        assert name == f"{invoice.number}.pdf" and mimetype == "application/pdf" and content[:4] == b"%PDF"


def test_a_credit_note_has_its_own_message_and_asks_for_no_payment():
    """Issue 10 item 4: not "invoice HQ-CN… of -4.000000 USD is attached; please pay by …"."""
    with clock.travel_to(dt.datetime(2025, 3, 10, 9, tzinfo=dt.timezone.utc)):
        demo.load(actor="test")
        make_catalog()
        customer = crm.create_customer(actor="test", kind="organization", legal_name="Credit Me Ltd", tax_id="T9",
                                       preferred_channel="email",
                                       contacts=[{"kind": "email", "value": "ap@credit.example"}])
        account = ledger.open_account(actor="test", customer=customer, currency="EUR", payment_mode="postpaid")
        billing.assign_cycle(actor="test", billing_account=account, cycle=billing.create_cycle(
            actor="test", code="M", name="Monthly"))
        billing.add_pending_item(actor="test", billing_account=account, kind="one_time_fee", description="Router",
                                 amount="39.00")
        invoice = billing.bill_now(actor="test", billing_account=account)
        run_events()
        issued = Notification.objects.get(customer=customer, event="invoice_issued")
        assert f"invoice {invoice.number} of 39.00 EUR is attached; please pay by 2025-03-24" in issued.body
        note = billing.credit_invoice(invoice, actor="test", amount="4.00", reason="late delivery")
        run_events()
        message = Notification.objects.get(customer=customer, event="credit_note_issued")
        assert message.subject == f"Credit note {note.number} for invoice {invoice.number}"
        assert f"credit note {note.number} credits you 4.00 EUR of invoice {invoice.number} (late delivery)" in \
            message.body
        assert "please pay" not in message.body.lower() and "4.000000" not in message.body
        assert Notification.objects.filter(customer=customer, event="invoice_issued").count() == 1
        from tarifa.integrations.services import deliver_now

        deliver_now(message.pk)
        name, content, mimetype = mail.outbox[-1].attachments[0]
        assert name == f"{note.number}.pdf" and content[:4] == b"%PDF"
