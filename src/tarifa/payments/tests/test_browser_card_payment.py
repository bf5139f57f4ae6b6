"""In a real browser: an operator starts a card payment from the billing account's page, opens the
built-in TEST provider's page, pays with a test card; the provider's signed webhook (HTTP, to
Tarifa's own endpoint) posts the payment and the account's balance is raised. Then a declined card."""

import os
from decimal import Decimal

import pytest

from tarifa.testing.browser import login

pytestmark = pytest.mark.browser
PASSWORD = "S3cure-pass-word"
SHOTS = os.environ.get("TARIFA_TEST_SCREENSHOTS")  # a directory: keep a screenshot of each step


def shot(page, name):
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


def test_card_payment_from_the_account_page_through_the_test_provider(page, live_server, admin_user, account,
                                                                      ledger_ok):
    from tarifa.ledger.models import Transfer
    from tarifa.payments import services
    from tarifa.payments.models import CardCheckout, Payment

    services.create_gateway(actor="test", code="TESTCARD", name="Test card provider (TEST)", kind="card",
                            adapter="test", currency="USD")
    acc = account()
    login(page, live_server, admin_user.username, PASSWORD)
    page.goto(f"/ledger/billingaccount/{acc.pk}/")
    assert page.get_by_test_id("balance").inner_text() == "0.00 USD"

    page.locator("[data-action='card-checkout']").click()
    page.get_by_label("Card gateway").select_option("TESTCARD")
    page.get_by_label("Amount").fill("25.00")
    page.get_by_role("button", name="Card payment").click()
    state = page.get_by_test_id("checkout-state")
    assert state.get_attribute("data-state") == "created"
    assert page.get_by_test_id("test-label").inner_text() == "TEST"
    assert "25.00 USD" in state.inner_text()
    shot(page, "1-checkout")

    page.locator("[data-action='pay']").click()  # the provider's page, served by Tarifa itself
    assert "TEST PAYMENT PAGE" in page.get_by_test_id("test-banner").inner_text()
    assert page.get_by_test_id("amount").inner_text() == "25.00 USD"
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("Expiry (MM/YY)").fill("12/39")
    page.get_by_label("CVC").fill("123")
    shot(page, "2-hosted-page")
    page.get_by_role("button", name="Pay 25.00 USD").click()
    outcome = page.get_by_test_id("outcome")
    assert outcome.get_attribute("data-outcome") == "approved"
    checkout = CardCheckout.objects.get(billing_account=acc)
    payment = Payment.objects.get(pk=checkout.payment_id)
    assert payment.number in outcome.inner_text()
    shot(page, "3-approved")

    page.locator("[data-action='return']").click()  # back to the merchant: the account page
    assert page.url.endswith(f"/ledger/billingaccount/{acc.pk}/")
    assert page.get_by_test_id("balance").inner_text() == "25.00 USD"
    shot(page, "4-account")
    transfer = Transfer.objects.get(pk=payment.transfer_id)
    assert (transfer.amount, transfer.credit_account_id, transfer.kind) == (Decimal("25"), acc.ledger_account_id,
                                                                           "payment")
    assert (checkout.state, payment.channel, payment.provider_txn_id) == ("applied", "card", f"TEST-{checkout.pk}")

    # A declined card: the checkout's page says so; nothing is booked.
    page.locator("[data-action='card-checkout']").click()
    page.get_by_label("Card gateway").select_option("TESTCARD")
    page.get_by_label("Amount").fill("7.50")
    page.get_by_role("button", name="Card payment").click()
    page.locator("[data-action='pay']").click()
    page.get_by_label("Card number").fill("4000 0000 0000 0002")
    page.get_by_label("Expiry (MM/YY)").fill("12/39")
    page.get_by_label("CVC").fill("123")
    page.get_by_role("button", name="Pay 7.50 USD").click()
    assert page.get_by_test_id("outcome").get_attribute("data-outcome") == "declined"
    page.locator("[data-action='return']").click()
    assert page.get_by_test_id("balance").inner_text() == "25.00 USD"
    declined = CardCheckout.objects.exclude(pk=checkout.pk).get(billing_account=acc)
    page.goto(f"/payments/cardcheckout/{declined.pk}/")
    assert page.get_by_test_id("checkout-state").get_attribute("data-state") == "failed"
    assert "card declined" in page.get_by_test_id("checkout-state").inner_text()
