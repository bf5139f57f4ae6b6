"""In a real browser: an operator activates a subscription from the customer page."""

import pytest

from tarifa.subscriptions import services
from tarifa.subscriptions.models import Subscription
from tarifa.testing.browser import login

from .helpers import ACTOR, customer_account, make_catalog, pay

pytestmark = pytest.mark.browser


def test_operator_activates_a_subscription_from_the_customer_page(page, live_server, admin_user):
    tariffs = make_catalog()
    account = customer_account()
    pay(account, "50.00")
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"],
                                       login="browser-user")

    login(page, live_server, "admin", "S3cure-pass-word")
    page.goto(f"{live_server.url}/crm/customer/{account.customer_id}/")
    panel = page.locator('[data-panel="subscriptions"]')
    row = panel.locator(f'tr[data-subscription="{sub.number}"]')
    assert "Pending" in row.inner_text()
    row.locator('[data-action="activate"]').click()
    page.wait_for_load_state("domcontentloaded")
    assert "Activate" in page.locator("h1").first.inner_text()
    page.get_by_role("button", name="Activate").click()
    page.wait_for_load_state("domcontentloaded")

    sub = Subscription.objects.get(pk=sub.pk)
    assert sub.status == "active"
    assert f"/subscriptions/subscription/{sub.pk}/" in page.url
    assert "Active" in page.locator("dl.fields").inner_text()
    page.goto(f"{live_server.url}/crm/customer/{account.customer_id}/")
    assert "Active" in page.locator(f'tr[data-subscription="{sub.number}"]').inner_text()
