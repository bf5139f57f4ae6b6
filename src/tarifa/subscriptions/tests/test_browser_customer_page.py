"""In a real browser (issue 10): the customer page shows what matters first — balance per account in
units, services and their states — with the rest on demand; the top bar's search finds the customer
by a phone number typed in another notation and by an account number."""

import datetime as dt

import pytest

from tarifa.catalog import services as catalog
from tarifa.crm import services as crm
from tarifa.ledger import services as ledger
from tarifa.subscriptions import services as subs
from tarifa.testing.browser import login

pytestmark = pytest.mark.browser

ADMIN_PASSWORD = "S3cure-pass-word"  # the admin_user fixture's


@pytest.fixture
def customer(transactional_db):
    person = crm.create_customer(actor="test", kind="individual", first_name="Greta", last_name="Browserova",
                                 contacts=[{"kind": "phone", "value": "+15550177123"}])
    account = ledger.open_account(actor="test", customer=person, currency="USD", payment_mode="prepaid",
                                  credit_limit="0")
    cash = ledger.system_account("cash:DESK1", "USD")
    ledger.post_transfer(actor="test", debit=cash, credit=account, amount="12.345678", currency="USD",
                         kind="payment", idempotency_key="browser-pay")
    st = catalog.create_service_type(actor="test", code="bb", name="Broadband", category="internet",
                                     identifier_kinds=["login"])
    svc = catalog.create_service(actor="test", code="bb", name="Broadband", service_type=st)
    tariff = catalog.create_tariff(actor="test", code="BB1", name="Broadband 1", service=svc, currency="USD",
                                   period="month", recurring_fee="0", valid_from=dt.date(2024, 1, 1))
    sub = subs.create_subscription(actor="test", billing_account=account, tariff=tariff, login="greta")
    return {"customer": person, "account": account, "subscription": sub}


def test_customer_page_and_global_search(page, live_server, admin_user, customer):
    person, account = customer["customer"], customer["account"]
    login(page, live_server, "admin", ADMIN_PASSWORD)

    # the top bar's search: a phone number in another notation, one hit → the customer's page
    page.get_by_test_id("global-search").fill("555-0177-123")
    page.get_by_test_id("global-search").press("Enter")
    page.wait_for_load_state("domcontentloaded")
    assert page.locator("h1").inner_text().startswith(f"Customer: {person.number}")

    # what matters first: the balance in units, the service and its state
    accounts = page.get_by_test_id("billing-accounts")
    assert accounts.is_visible()
    row = accounts.locator(f'tr[data-account="{account.number}"]')
    assert row.get_by_test_id("account-balance").inner_text() == "12.35"
    subscriptions = page.locator('[data-panel="subscriptions"]')
    assert subscriptions.is_visible() and "Pending" in subscriptions.inner_text()
    main = page.locator("main").inner_text()
    assert "12.345678" not in main and "True" not in main

    # everything else on demand: the profile is collapsed until opened
    profile = page.get_by_test_id("profile")
    assert not profile.locator("dl").is_visible()
    profile.locator("summary").click()
    assert profile.locator("dl").is_visible()

    # the search page groups by kind: the account's number finds the account
    page.get_by_test_id("global-search").fill(account.number)
    page.get_by_test_id("global-search").press("Enter")
    page.wait_for_load_state("domcontentloaded")
    assert page.locator("h1").inner_text() == f"Billing account: {account.number}"
    page.goto(f"{live_server.url}/search/?q={account.number}&go=0")
    assert page.locator('[data-kind="billing_accounts"] a').first.inner_text() == account.number
