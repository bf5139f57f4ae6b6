"""In a real browser: the operator opens an invoice from the customer page and downloads its PDF."""

import datetime as dt
import io

import pytest
from django.utils import timezone

from tarifa.billing import services
from tarifa.kernel import clock
from tarifa.kernel.clock import today
from tarifa.testing.browser import login

from .helpers import ACTOR, make_catalog, make_cycle, make_taxes, postpaid_org

pytestmark = pytest.mark.browser


def test_operator_opens_an_invoice_from_the_customer_page_and_downloads_its_pdf(page, live_server, admin_user):
    from pypdf import PdfReader

    make_catalog()
    make_taxes()
    cycle = make_cycle()
    period = services.last_closed_period(cycle, today())
    start, end = services.period_of(cycle, period)
    # The account lived in the period it is invoiced for (issue 10, item 3).
    with clock.travel_to(timezone.make_aware(dt.datetime.combine(start, dt.time(9)))):
        account = postpaid_org(cycle)
    services.add_pending_item(actor=ACTOR, billing_account=account, kind="one_time_fee", description="Set-top box",
                              amount="119.90", service_type="iptv", day=end)
    invoice = services.generate_invoice(actor=ACTOR, billing_account=account, period=period)
    assert invoice.total == invoice.subtotal + invoice.tax_total and invoice.tax_total > 0

    login(page, live_server, "admin", "S3cure-pass-word")
    page.goto(f"{live_server.url}/crm/customer/{account.customer_id}/")
    row = page.locator(f'#customer-invoices tr[data-invoice="{invoice.number}"]')
    row.get_by_role("link", name=invoice.number).click()
    page.wait_for_load_state("domcontentloaded")
    assert invoice.number in page.locator("h1").first.inner_text()
    assert f"{invoice.total:.2f}" in page.locator("#invoice-total").inner_text()
    with page.expect_download() as download_info:
        page.locator('[data-action="download-pdf"]').click()
    download = download_info.value
    assert download.suggested_filename == f"{invoice.number}.pdf"
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(open(download.path(), "rb").read())).pages)
    assert invoice.number in text
    assert f"{invoice.total:.2f} {invoice.currency}" in text
    assert "Set-top box" in text and "TVL" in text
