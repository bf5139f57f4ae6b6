"""The subscriber's story in a real browser: sign in, see the service suspended for lack of
money, top up by card through the built-in TEST provider, the service is back on at once,
download the invoice, change the tariff (price and proration first), pause, open a request.
Also at a phone's viewport."""

import datetime as dt
import os

import pytest

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("TARIFA_TEST_SCREENSHOTS")  # a directory: keep a screenshot of each step
PASSWORD = "Ivan-portal-2026"


def shot(page, name):
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/portal-{name}.png", full_page=True)


@pytest.fixture
def story(transactional_db):
    from tarifa.billing import services as billing
    from tarifa.catalog.models import Tariff
    from tarifa.ledger import services as ledger
    from tarifa.payments import services as payments
    from tarifa.portal import services
    from tarifa.subscriptions import services as subscriptions
    from tarifa.subscriptions.tests.helpers import customer_account, make_catalog, pay
    from tarifa.subscriptions.thresholds import evaluate_account

    from tarifa.catalog import services as catalog

    tariffs = make_catalog(start=dt.date(2020, 1, 1))
    # Prepaid: held below 10 EUR, back at 10 EUR.
    catalog.update_tariff(tariffs["NET-31"], actor="test", suspend_below="10", resume_at="10")
    account = customer_account(contacts=[{"kind": "email", "value": "ivan@example.net", "is_preferred": True}])
    pay(account, "20.00")
    sub = subscriptions.create_subscription(actor="test", billing_account=account, tariff=tariffs["NET-31"],
                                            login="ivan", activate=True)
    cycle = billing.create_cycle(actor="test", code="MONTH", name="Monthly")
    billing.assign_cycle(actor="test", billing_account=account, cycle=cycle)
    invoice = billing.bill_now(actor="test", billing_account=account)
    # The money runs out: a charge takes the balance below the tariff's limit; the service is suspended.
    revenue = ledger.system_account("revenue:test", "EUR")
    ledger.post_transfer(actor="test", debit=account, credit=revenue, amount="10.00", currency="EUR", kind="charge",
                         idempotency_key="story-charge")
    from django.db import transaction

    with transaction.atomic():
        evaluate_account(account, actor="test")
    sub.refresh_from_db()
    assert sub.status == "suspended"
    payments.create_gateway(actor="test", code="TESTCARD", name="Test cards", kind="card", adapter="test",
                            currency="EUR")
    services.update_settings(services.current_settings(), actor="test",
                             allowed_tariffs=[Tariff.objects.get(code="NET-62")], pause_max_days_per_year=30)
    from tarifa.portal import helpdesk

    if helpdesk.available():
        from tarifa.tickets import flows

        flows.install(next(f for f in flows.STANDARD if f["code"] == "fault"), actor="test")
    user = services.create_portal_user(actor="test", customer=account.customer, login="ivan@example.net",
                                       password=PASSWORD)
    return {"account": account, "sub": sub, "invoice": invoice, "user": user}


def test_the_subscribers_story(story, page, live_server, settings):
    from tarifa.audit.models import AuditEvent
    from tarifa.subscriptions.models import Subscription

    sub = story["sub"]
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.goto("/portal/")
    assert "/portal/login/" in page.url
    page.get_by_label("E-mail, phone or customer number").fill("ivan@example.net")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    assert page.url.endswith("/portal/")
    assert "Suspended" in page.inner_text("main")
    assert "not enough money on the account" in page.inner_text("main")
    shot(page, "1-home-suspended")

    # Top up by card: the TEST provider's page, a test card, back to the portal.
    page.get_by_role("link", name="Pay", exact=True).click()
    page.locator("form:has(input[value=card])").get_by_label("Amount").fill("60.00")
    page.get_by_role("button", name="Pay by card").click()
    assert "TEST PAYMENT PAGE" in page.get_by_test_id("test-banner").inner_text()
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("Expiry (MM/YY)").fill("12/39")
    page.get_by_label("CVC").fill("123")
    shot(page, "2-card-page")
    page.get_by_role("button", name="Pay 60.00 EUR").click()
    assert page.get_by_test_id("outcome").get_attribute("data-outcome") == "approved"
    page.locator("[data-action='return']").click()
    assert "/portal/pay/return/" in page.url
    assert "Thank you! Your payment is received." in page.inner_text("main")
    assert "Active" in page.inner_text("main")  # resumed at once, without waiting for the worker
    sub.refresh_from_db()
    assert sub.status == Subscription.Status.ACTIVE
    shot(page, "3-paid-resumed")

    # The invoice as a PDF.
    page.set_viewport_size({"width": 1200, "height": 900})
    page.get_by_role("link", name="Documents").click()
    with page.expect_download() as download:
        page.locator(f"tr:has-text('{story['invoice'].number}')").get_by_role("link", name="PDF").click()
    path = download.value.path()
    with open(path, "rb") as f:
        assert f.read(5) == b"%PDF-"
    shot(page, "4-documents")

    # Tariff change: the price and proration first, then the change.
    page.get_by_role("link", name="Services").click()
    page.get_by_role("link", name=sub.number).click()
    page.get_by_label("New tariff").select_option(label="Net 62")
    page.get_by_role("button", name="See the price").click()
    assert "Rest of this month" in page.inner_text("main")
    assert "62.00 EUR" in page.inner_text("main")
    shot(page, "5-tariff-quote")
    page.get_by_role("button", name="Confirm the change").click()
    assert "Your tariff is now Net 62." in page.inner_text("main")
    sub.refresh_from_db()
    assert sub.tariff.code == "NET-62"

    # Pause for a week, then see it paused.
    page.get_by_label("Resume on").fill((dt.date.today() + dt.timedelta(days=7)).isoformat())
    page.get_by_role("button", name="Pause the service").click()
    assert "The service is paused until" in page.inner_text("main")
    sub.refresh_from_db()
    assert sub.status == Subscription.Status.SUSPENDED
    shot(page, "6-paused")

    # Every step is in the audit trail with the portal user as actor.
    actions = set(AuditEvent.objects.filter(actor_label="portal:ivan@example.net").values_list("action", flat=True))
    assert {"login", "change_tariff"} <= actions

    # A request to the operator.
    page.get_by_role("link", name="Help").click()
    from tarifa.portal import helpdesk

    if helpdesk.available():
        page.get_by_label("Subject").fill("Router blinks red")
        page.get_by_label("How can we help?").fill("Since this morning the router blinks red.")
        page.get_by_role("button", name="Send").click()
        assert "is open" in page.inner_text("main")
        shot(page, "7-request")
    else:
        assert "Requests cannot be opened here yet" in page.inner_text("main")

    # Russian.
    page.get_by_role("button", name="Русский").click()
    assert "Помощь" in page.inner_text("header")
    page.get_by_role("link", name="Главная").click()
    assert "Мои услуги" in page.inner_text("main")
    shot(page, "8-home-ru")
