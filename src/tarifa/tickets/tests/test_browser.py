"""In a real browser: the front office registers a customer on the guided screen, the activation
ticket is moved through every step by submitting its forms, the subscription is active with the
requested tariff and the ticket with its history is on the customer's page."""

import datetime as dt
import os

import pytest

from tarifa.catalog import services as catalog
from tarifa.ledger import services as ledger
from tarifa.subscriptions.models import Subscription
from tarifa.testing.browser import login
from tarifa.tickets import flows
from tarifa.tickets.models import Ticket

pytestmark = pytest.mark.browser

ADMIN_PASSWORD = "S3cure-pass-word"  # the admin_user fixture's


def _shot(page, name):
    folder = os.environ.get("TARIFA_SCREENSHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, f"tickets-{name}.png"), full_page=True)


@pytest.fixture
def setup(transactional_db):
    st = catalog.create_service_type(actor="test", code="bb", name="Broadband", category="internet",
                                     identifier_kinds=["login"])
    svc = catalog.create_service(actor="test", code="bb", name="Broadband", service_type=st)
    tariff = catalog.create_tariff(actor="test", code="BB-200", name="Broadband 200", service=svc,
                                   currency=ledger.default_currency(), period="month", recurring_fee="0.00",
                                   valid_from=dt.date(2024, 1, 1))
    flows.install(flows.ACTIVATION, actor="test")
    return tariff


def test_registration_to_an_active_service(page, live_server, admin_user, setup):
    tariff = setup
    login(page, live_server, "admin", ADMIN_PASSWORD)
    page.goto(f"{live_server.url}/tickets/register/")
    form = page.get_by_test_id("registration")
    form.locator("#id_first_name").fill("Greta")
    form.locator("#id_last_name").fill("Flowova")
    form.locator("#id_email").fill("greta@example.com")
    form.locator("#id_line1").fill("5 Fibre Road")
    form.locator("#id_city").fill("Springfield")
    form.locator("#id_payment_mode").select_option("postpaid")
    form.get_by_label("Broadband 200").check()
    form.locator("#id_login").fill("greta")
    form.locator("[data-action=register]").click()
    page.wait_for_load_state("domcontentloaded")
    assert page.locator("h1").inner_text().startswith("Customer:")
    _shot(page, "1-registered")
    ticket = Ticket.objects.get(customer__last_name="Flowova")
    assert ticket.requested_tariff == tariff and ticket.billing_account is not None

    panel = page.get_by_test_id("customer-tickets")
    panel.locator(f'tr[data-ticket="{ticket.number}"] a').click()
    page.wait_for_load_state("domcontentloaded")

    moves = [("survey", {}), ("contract", {"survey_date": "2026-12-10"}),
             ("port", {"contract_number": "K-77"}), ("installation", {"port": "sw2/0/7"}),
             ("active", {"cpe_serial": "CPE-0077", "login": "greta"})]
    for to, data in moves:
        move = page.locator(f'form.move[data-to="{to}"]')
        for name, value in data.items():
            move.locator(f'[name="data_{name}"]').fill(value)
        move.locator(f'[data-action="advance-{to}"]').click()
        page.wait_for_load_state("domcontentloaded")
        assert page.locator(f'[data-testid="ticket-step"] [data-step="{to}"]').count() == 1, \
            page.locator("main").inner_text()[:1000]
        _shot(page, f"2-{to}")

    sub = Subscription.objects.get(billing_account__customer__last_name="Flowova")
    assert sub.status == "active" and sub.tariff == tariff and sub.login == "greta"
    history = page.get_by_test_id("flow-history").inner_text()
    assert "Installation → Service active" in history and "Site survey" in history
    page.get_by_test_id("subscription-link").click()
    page.wait_for_load_state("domcontentloaded")
    assert sub.number in page.locator("h1").inner_text()
    page.goto(f"{live_server.url}/crm/customer/{ticket.customer_id}/")
    row = page.get_by_test_id("customer-tickets").locator(f'tr[data-ticket="{ticket.number}"]')
    assert "Service active" in row.inner_text() and "closed" in row.inner_text()
    assert "Active" in page.locator('[data-panel="subscriptions"]').inner_text()
    _shot(page, "3-customer")
