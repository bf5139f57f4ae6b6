"""Demo data, screens and API of billing."""

import pytest

from tarifa.billing.models import BillRun, DunningAction, Invoice, PendingItem

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo():
    from tarifa.web.demo_loader import load_demo

    return load_demo(actor="demo")


def test_demo_has_every_billing_record(demo):
    assert demo["billing"]["invoices"] >= 2, demo["billing"]
    assert Invoice.objects.filter(kind="credit_note").exists()
    assert Invoice.objects.filter(state="draft").exists()
    assert BillRun.objects.filter(status="finished").exists()
    assert PendingItem.objects.exists() and DunningAction.objects.exists()


def test_invoice_screens_and_pdf(demo, admin_user, staff_client):
    client = staff_client(admin_user)
    invoice = Invoice.objects.filter(kind="invoice").exclude(state="draft").first()
    page = client.get(f"/billing/invoice/{invoice.pk}/")
    assert page.status_code == 200 and invoice.number in page.content.decode()
    pdf = client.get(f"/billing/invoice/{invoice.pk}/pdf/")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf" and pdf.content[:4] == b"%PDF"
    customer = client.get(f"/crm/customer/{invoice.customer_id}/")
    assert invoice.number in customer.content.decode()
    check = client.get("/billing/check/", {"period": invoice.period})
    assert check.status_code == 200


def test_api_invoices_credit_and_errors(demo, admin_user, api):
    client = api(admin_user)
    invoice = Invoice.objects.filter(kind="invoice", state__in=["issued", "partially_paid", "overdue"]).first()
    listed = client.get("/api/v1/invoices/", {"number": invoice.number})
    assert listed.status_code == 200 and listed.json()["results"][0]["number"] == invoice.number
    too_much = client.post(f"/api/v1/invoices/{invoice.pk}/credit/",
                           {"amount": str(invoice.total + 1), "reason": "x"}, format="json")
    assert too_much.status_code == 409 and too_much.json()["error"]["code"] == "credit_too_large"
    pdf = client.get(f"/api/v1/invoices/{invoice.pk}/pdf/")
    assert pdf.status_code == 200 and pdf.content[:4] == b"%PDF"
    from tarifa.billing.services import last_closed_period
    from tarifa.kernel.clock import today

    # The demo accounts were opened today: last month is a period they did not live in (issue 10, item 3).
    period = last_closed_period(invoice.cycle, today())
    before = client.post("/api/v1/invoices/", {"billing_account": invoice.billing_account.number,
                                               "period": period}, format="json")
    assert before.status_code == 409 and before.json()["error"]["code"] == "opened_after_period"
    assert invoice.purpose == "interim" and invoice.period == ""  # billed now, "Invoice now"
    import datetime as dt
    future = (today() + dt.timedelta(days=62)).strftime("%Y-%m")  # a valid period that has not closed
    not_closed = client.post("/api/v1/bill-runs/", {"cycle": invoice.cycle.code, "period": future}, format="json")
    assert not_closed.status_code == 409 and not_closed.json()["error"]["code"] == "period_not_closed"
    check = client.get("/api/v1/billing/check/", {"period": period})
    assert check.status_code == 200 and check.json()["ok"], check.json()["problems"][:3]


def test_statement_receipt_and_operator_template(demo, admin_user, staff_client):
    import io

    from pypdf import PdfReader

    from tarifa.billing import documents, services
    from tarifa.ledger.models import Transfer

    client = staff_client(admin_user)
    invoice = Invoice.objects.filter(kind="invoice").exclude(state="draft").order_by("number").first()
    statement = client.get(f"/billing/account/{invoice.billing_account_id}/statement/")
    assert statement.status_code == 200 and statement.content[:4] == b"%PDF"
    text = PdfReader(io.BytesIO(statement.content)).pages[0].extract_text()
    assert "statement of account" in text and invoice.billing_account.number in text  # the demo's own template
    payment = Transfer.objects.filter(kind="payment", credit_account_id=invoice.billing_account.ledger_account_id).first()
    receipt = client.get(f"/billing/payment/{payment.pk}/receipt/")
    assert receipt.status_code == 200 and b"%PDF" == receipt.content[:4]
    # The operator's invoice template replaces the shipped one for invoices rendered from now on.
    services.create_template(actor=admin_user, kind="invoice", language="en",
                             body="<html><body><h1>ACME INVOICE {{ invoice.number }}</h1>"
                                  "<p>{{ invoice.total|floatformat:2 }}</p></body></html>")
    fresh = Invoice.objects.filter(kind="invoice").exclude(state="draft").exclude(document__isnull=False).first()
    text = PdfReader(io.BytesIO(documents.invoice_pdf(fresh))).pages[0].extract_text()
    assert f"ACME INVOICE {fresh.number}" in text


def test_api_issues_a_draft(demo, admin_user, api):
    """The demo's reviewed cycle leaves a draft: POST …/issue numbers and books it (a second time: 409)."""
    draft = Invoice.objects.get(state="draft")
    client = api(admin_user)
    response = client.post(f"/api/v1/invoices/{draft.pk}/issue/", format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["state"] in ("issued", "overdue", "paid", "partially_paid") and response.json()["number"]
    again = client.post(f"/api/v1/invoices/{draft.pk}/issue/", format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_draft"


def test_api_statement_and_receipt(demo, admin_user, api):
    import io

    from pypdf import PdfReader

    from tarifa.ledger.models import Transfer

    client = api(admin_user)
    invoice = Invoice.objects.filter(kind="invoice").exclude(state="draft").order_by("number").first()
    account = invoice.billing_account
    statement = client.get(f"/api/v1/billing/statement/{account.pk}/", {"start": f"{invoice.invoice_date:%Y-%m}-01"})
    assert statement.status_code == 200 and statement["Content-Type"] == "application/pdf"
    assert account.number in PdfReader(io.BytesIO(statement.content)).pages[0].extract_text()
    bad = client.get(f"/api/v1/billing/statement/{account.pk}/", {"end": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_date"
    payment = Transfer.objects.filter(kind="payment", credit_account_id=account.ledger_account_id).first()
    receipt = client.get(f"/api/v1/billing/receipt/{payment.pk}/")
    assert receipt.status_code == 200 and receipt.content[:4] == b"%PDF"
    charge = Transfer.objects.filter(kind="charge").first()
    refused = client.get(f"/api/v1/billing/receipt/{charge.pk}/")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_a_payment"
