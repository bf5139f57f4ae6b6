"""The operator's working day, every step through the UI in a real browser (issue 10).

On the demo catalog, with the clock held at a known day and moved as the story needs: register an
individual and an organisation, open accounts, take cash at an open shift, redeem a voucher, pay by
card through the built-in TEST provider, sell internet, phone and TV, run fee charging until the
prepaid subscriber is suspended, pay and see the service resume, import a CDR file with a bad line
and a duplicate, change a tariff mid-month, run a bill run, open the invoice and its PDF, issue a
credit note, close the shift and read its reconciliation, terminate a service.

Assertions are on what the screens show (amounts in the currency's units) and on the ledger. With
TARIFA_TEST_SCREENSHOTS=<dir> a screenshot of each step is kept (docs/operator-day.md uses them).
"""

import datetime as dt
import io
import os
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from tarifa.kernel import clock
from tarifa.testing.browser import login
from tarifa.testing.processes import run_worker_in_thread

pytestmark = pytest.mark.browser
PASSWORD = "S3cure-pass-word"
SHOTS = os.environ.get("TARIFA_TEST_SCREENSHOTS")
START = dt.datetime(2026, 11, 3, 9, 0)


def shot(page, name):
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


def fill(page, fields: dict):
    """Fill a form by its labels: text, select (by label text) or checkbox (True/False)."""
    for label, value in fields.items():
        field = page.locator("main").get_by_label(re.compile(rf"^{re.escape(label)}:?$"))
        if field.count() != 1:
            shot(page, "failure")
            raise AssertionError(f"no single field labelled {label!r} on {page.url}: "
                                 f"{page.locator('main').inner_text()[:1500]}")
        kind = field.evaluate("e => e.tagName.toLowerCase() + ':' + (e.type || '')")
        if kind.startswith("select"):
            if value.startswith("="):
                field.select_option(value[1:])
            else:
                options = field.locator("option").all_inner_texts()
                field.select_option(label=next((o for o in options if o.strip() == value), None)
                                    or next(o for o in options if value in o))
        elif kind.endswith("checkbox"):
            field.set_checked(bool(value))
        else:
            field.fill(value)


def submit(page, button="Save"):
    page.locator("main").get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state("domcontentloaded")
    errors = page.locator(".errorlist, .errors, [role=alert].error").all_inner_texts()
    assert page.locator(".errorlist").count() == 0, f"form refused: {errors}"


def action(page, obj_url: str, name: str, fields: dict | None = None, button=None):
    """Open a detail page's action, fill its form and confirm it."""
    page.goto(f"{obj_url}do/{name}/")
    if fields:
        fill(page, fields)
    buttons = page.locator("main form").last.get_by_role("button")
    (page.locator("main form").last.get_by_role("button", name=button) if button else buttons.last).click()
    page.wait_for_load_state("domcontentloaded")
    assert page.locator(".errorlist").count() == 0, page.locator(".errorlist").all_inner_texts()


@pytest.fixture
def demo(transactional_db, admin_user):
    from tarifa.testing.demo import restore_migration_rows
    from tarifa.web.demo_loader import load_demo

    restore_migration_rows()
    with clock.travel_to(timezone.make_aware(START)) as moving:
        load_demo(actor=admin_user)
        yield moving


def test_the_operators_day(page, live_server, admin_user, demo):
    from tarifa.crm.models import Customer
    from tarifa.ledger.models import BillingAccount
    from tarifa.ledger.selectors import check_ledger
    from tarifa.payments import services as payments
    from tarifa.subscriptions.models import Subscription

    day = demo
    login(page, live_server, admin_user.username, PASSWORD)

    # 1. Register an individual: a prepaid account in USD is opened with the customer.
    page.goto("/crm/customer/add/")
    fill(page, {"Kind": "Individual", "First name": "Ana", "Last name": "Day", "E-mail": "ana.day@example.net",
                "Phone": "+1 555 0100 777", "Account currency": "USD", "Payment mode": "Prepaid"})
    submit(page)
    ana = Customer.objects.get(last_name="Day")
    assert ana.number in page.locator("h1").first.inner_text()
    ana_account = BillingAccount.objects.get(customer=ana)
    assert (ana_account.currency, ana_account.payment_mode) == ("USD", "prepaid")
    shot(page, "01-customer-registered")

    # 2. Register an organisation (postpaid).
    page.goto("/crm/customer/add/")
    fill(page, {"Kind": "Organization", "Legal name": "Daylight Ltd", "Tax id": "DL-2026-11",
                "E-mail": "billing@daylight.example", "Account currency": "USD", "Payment mode": "Postpaid",
                "Credit limit": "500.00"})
    submit(page)
    org = Customer.objects.get(legal_name="Daylight Ltd")
    org_account = BillingAccount.objects.get(customer=org)
    assert org_account.payment_mode == "postpaid"
    shot(page, "02-organisation-registered")
    # Its account is billed on the calendar-month cycle.
    page.goto("/billing/billcycleassignment/add/")
    fill(page, {"Billing account": org_account.number, "Bill cycle": "MONTHLY-1"})
    submit(page)

    # 3. Take 40.00 in cash at an open shift.
    page.goto("/payments/cashier/")
    form = page.get_by_test_id("open-shift")
    form.get_by_label("Cash desk").select_option("DESK1")
    form.get_by_label("Opening float").fill("100.00")
    form.get_by_role("button", name="Open shift").click()
    page.get_by_label("Find customer").fill(ana_account.number)
    page.get_by_role("button", name="Find").click()
    row = page.locator(f"tr[data-account='{ana_account.number}']")
    row.get_by_label("Amount").fill("40.00")
    row.get_by_role("button", name="Take payment").click()
    assert page.get_by_test_id("new-balance").inner_text() == "40.00"
    assert page.get_by_test_id("expected-cash").inner_text() == "140.00"
    shot(page, "03-cash-taken")

    # 4. Redeem a scratch card of 10.00 (a batch printed and sold earlier).
    batch, codes = payments.generate_batch(actor="test", count=2, nominal="10.00", currency="USD",
                                           expires_on=day.today() + dt.timedelta(days=90))
    payments.sell_batch(batch, actor="test", paid_via="dealer", sold_to="Corner Shop")
    page.goto("/payments/vouchers/redeem/")
    fill(page, {"Billing account": ana_account.number, "Voucher code": codes[0][1]})
    page.locator("main form").last.get_by_role("button").last.click()
    page.wait_for_load_state("domcontentloaded")
    assert "10.00" in page.locator("main").inner_text()
    shot(page, "04-voucher-redeemed")

    # 5. Pay 25.00 by card through the built-in TEST provider.
    page.goto(f"/ledger/billingaccount/{ana_account.pk}/")
    assert page.get_by_test_id("balance").inner_text() == "50.00 USD"
    page.locator("[data-action='card-checkout']").click()
    page.get_by_label("Card gateway").select_option("TESTCARD")
    page.get_by_label("Amount").fill("25.00")
    page.get_by_role("button", name="Card payment").click()
    page.locator("[data-action='pay']").click()
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("Expiry (MM/YY)").fill("12/39")
    page.get_by_label("CVC").fill("123")
    page.get_by_role("button", name="Pay 25.00 USD").click()
    assert page.get_by_test_id("outcome").get_attribute("data-outcome") == "approved"
    page.locator("[data-action='return']").click()
    assert page.get_by_test_id("balance").inner_text() == "75.00 USD"
    shot(page, "05-card-paid")

    # 6. Sell internet, phone and TV, activated at once.
    def sell(account, tariff_label, identifiers):
        page.goto(f"/subscriptions/subscription/add/?billing_account={account.pk}")
        fill(page, {"Billing account": f"={account.pk}", "Tariff": tariff_label, **identifiers, "Activate now": True})
        submit(page)
        return Subscription.objects.filter(billing_account=account).order_by("-number").first()

    internet = sell(ana_account, "Internet 500", {"Login": "ana.day"})
    phone = sell(ana_account, "Mobile daily", {"Phone number": "+1 555 0100 778"})
    tv = sell(ana_account, "TV basic", {})
    assert [s.status for s in (internet, phone, tv)] == ["active"] * 3
    page.goto(f"/crm/customer/{ana.pk}/")
    shot(page, "06-services-sold")

    # The organisation takes internet on its postpaid account.
    org_internet = sell(org_account, "Internet 100", {"Login": "daylight"})
    assert org_internet.status == "active"

    # 7. Fee charging, a week at a time, until the prepaid subscriber's money runs out: each run is
    #    previewed (charges, totals, suspensions) and runs only when confirmed.
    suspended = []
    for _week in range(8):
        day.add_days(7)
        page.goto("/subscriptions/charge/")
        fill(page, {"Charge up to (as of)": day.today().isoformat()})
        page.locator("main").get_by_role("button", name="Preview").click()
        page.wait_for_load_state("domcontentloaded")
        assert "Preview: fee charging up to" in page.locator("main").inner_text()
        assert "is in the future" not in page.locator("main").inner_text()
        shot(page, "07-charge-preview")
        page.locator("main").get_by_role("button", name="Confirm: charge").click()
        page.wait_for_load_state("domcontentloaded")
        suspended = list(Subscription.objects.filter(billing_account=ana_account, status="suspended"))
        if suspended:
            break
    assert suspended, "the prepaid account never ran out of money"
    page.goto(f"/crm/customer/{ana.pk}/")
    assert "Suspended" in page.locator('[data-panel="subscriptions"]').inner_text()
    ana_account.ledger_account.refresh_from_db()
    assert ana_account.ledger_account.balance >= 0  # a prepaid account is never charged below its limit
    shot(page, "07-suspended")

    # 8. Ana pays 60.00 in cash; her services resume (the worker handles the payment's event).
    page.goto("/payments/cashier/")
    page.get_by_label("Find customer").fill(ana_account.number)
    page.get_by_role("button", name="Find").click()
    row = page.locator(f"tr[data-account='{ana_account.number}']")
    row.get_by_label("Amount").fill("60.00")
    row.get_by_role("button", name="Take payment").click()
    assert page.get_by_test_id("expected-cash").inner_text() == "200.00"
    run_worker_in_thread("--one-shot", "--concurrency", "1")
    assert not Subscription.objects.filter(billing_account=ana_account, status="suspended").exists()
    page.goto(f"/crm/customer/{ana.pk}/")
    assert "Suspended" not in page.locator('[data-panel="subscriptions"]').inner_text()
    shot(page, "08-resumed")

    # 9. Import the switch's CDR file: two calls, a repeated line and a line that cannot be read.
    at = day.today().isoformat()
    cdrs = (f"day-1;{phone.phone_number};442071234567;{at} 08:00:00;95;ANSWERED\n"
            f"day-2;{phone.phone_number};15551230000;{at} 08:10:00;125;ANSWERED\n"
            f"day-2;{phone.phone_number};15551230000;{at} 08:10:00;125;ANSWERED\n"
            f"day-3;{phone.phone_number};15551230000;not a time;60;ANSWERED\n")
    page.goto("/rating/usage-import/")
    page.get_by_label(re.compile("^Usage file")).set_input_files(
        files=[{"name": "switch-day.csv", "mimeType": "text/csv", "buffer": cdrs.encode()}])
    fill(page, {"Format": "Demo switch (semicolons)"})
    page.locator("main form").last.get_by_role("button").last.click()
    page.wait_for_load_state("domcontentloaded")
    text = page.locator("main").inner_text()
    shot(page, "09-usage-imported")
    from tarifa.rating.models import RatedUsage, RejectedUsage
    assert RatedUsage.objects.filter(subscription=phone).count() == 2
    assert RejectedUsage.objects.filter(record_id="day-3").exists()
    assert re.search(r"[Dd]uplicate", text) and re.search(r"[Rr]ejected", text), text[:800]

    # 10. Ana moves from Internet 500 to Internet 100 mid-month.
    action(page, f"/subscriptions/subscription/{internet.pk}/", "change-tariff",
           {"New tariff": "Internet 100", "Reason": "Customer asked for a cheaper plan"})
    internet.refresh_from_db()
    assert internet.tariff.code == "NET-100"
    assert "NET-100" in page.locator("main").inner_text() or "Internet 100" in page.locator("main").inner_text()
    shot(page, "10-tariff-changed")

    # 11. The bill run for November, once every cycle's November has closed.
    while day.today() < dt.date(2026, 12, 16):
        day.add_days(1)
    page.goto("/billing/billrun/add/")
    fill(page, {"Period": "2026-11"})
    submit(page)
    run_worker_in_thread("--one-shot", "--concurrency", "1")
    shot(page, "11-bill-run")
    from tarifa.billing.models import BillRun, Invoice
    invoice = Invoice.objects.filter(billing_account=org_account, period="2026-11", kind="invoice").first()
    assert invoice is not None and invoice.total > 0, list(BillRun.objects.values())

    # 12. The invoice and its PDF.
    page.goto(f"/billing/invoice/{invoice.pk}/")
    assert f"{invoice.total:.2f}" in page.locator("#invoice-total").inner_text()
    with page.expect_download() as download_info:
        page.locator('[data-action="download-pdf"]').click()
    from pypdf import PdfReader
    pdf = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(open(download_info.value.path(), "rb").read())).pages)
    assert invoice.number in pdf and f"{invoice.total:.2f} USD" in pdf
    shot(page, "12-invoice")

    # 13. A credit note of 4.00 for a day without service.
    action(page, f"/billing/invoice/{invoice.pk}/", "credit",
           {"Amount (gross)": "4.00", "Reason": "Outage on 2026-11-20"})
    note = Invoice.objects.get(credited_invoice=invoice)
    assert note.total == Decimal("-4.00")
    assert "-4.00" in page.locator("main").inner_text()
    shot(page, "13-credit-note")

    # 14. Close the shift: expected 200.00 in the drawer, 200.00 counted.
    page.goto("/payments/cashier/")
    form = page.get_by_test_id("close-shift")
    form.get_by_label(re.compile("^Counted cash")).fill("200.00")
    form.get_by_role("button", name="Close shift").click()
    page.wait_for_load_state("domcontentloaded")
    if page.get_by_role("button", name=re.compile("Confirm")).count():
        page.get_by_role("button", name=re.compile("Confirm")).first.click()
        page.wait_for_load_state("domcontentloaded")
    assert page.get_by_test_id("closed-expected").inner_text().startswith("200.00")
    assert page.get_by_test_id("closed-discrepancy").inner_text().startswith("0.00")
    shot(page, "14-shift-closed")

    # 15. Terminate the TV service.
    action(page, f"/subscriptions/subscription/{tv.pk}/", "terminate", {"Reason": "Moving abroad"})
    tv.refresh_from_db()
    assert tv.status == "terminated"
    assert "Terminated" in page.locator("main").inner_text()
    shot(page, "15-terminated")

    # The calls in the operator's units: 1m35s, not nanoseconds.
    page.goto(f"/rating/ratedusage/?subscription={phone.pk}")
    listed = page.locator("main").inner_text()
    assert ("1m35s" in listed or "1:35" in listed) and "95000000000" not in listed, listed[-600:]
    shot(page, "16-rated-usage")

    assert check_ledger()["ok"]
