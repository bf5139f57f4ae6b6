"""In a real browser: an operator edits a script (a new version), tests it against a subscription
(dry run) and reads the run: its result, log and calls; nothing changed."""

import datetime as dt

import pytest

from tarifa.scripts import services
from tarifa.scripts.models import Script
from tarifa.subscriptions import services as subscriptions
from tarifa.subscriptions.models import Subscription
from tarifa.subscriptions.tests.helpers import customer_account, make_catalog, pay
from tarifa.testing.browser import login

pytestmark = pytest.mark.browser

SOURCE = """\
local ticket = context.ticket
local acc = account(ticket.account)
log("balance", acc.balance, acc.currency)
local s = suspend(ticket.subscription, "tried in the editor")
log("would be", s.status)
if tonumber(acc.balance) < 100 then return {veto = "balance below 100"} end
return {}
"""


def test_edit_save_and_dry_run_a_script(page, live_server, admin_user):
    tariffs = make_catalog(start=dt.date(2024, 1, 1))
    account = customer_account()
    pay(account, "40")
    sub = subscriptions.create_subscription(actor="test", billing_account=account, tariff=tariffs["NET-31"],
                                            login="browser-script", activate=True)
    script = services.create_script(actor="test", code="gate", name="Gate", source="return {}")

    login(page, live_server, "admin", "S3cure-pass-word")
    page.goto(f"{live_server.url}/scripts/script/{script.pk}/edit/")
    page.fill("[data-testid=script-source]", SOURCE)
    page.fill("#id_note", "balance gate")
    page.get_by_role("button", name="Save").click()
    page.wait_for_load_state("domcontentloaded")
    assert "Source — version 2" in page.locator("main").inner_text()
    assert Script.objects.get(pk=script.pk).current_version.number == 2

    page.locator("[data-action=test]").click()
    page.fill("#id_subscription", sub.number)
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state("domcontentloaded")
    assert "/scripts/scriptrun/" in page.url
    assert "OK" in page.locator("[data-testid=run-outcome]").inner_text()
    assert "balance below 100" in page.locator("[data-testid=run-value]").inner_text()
    log = page.locator("[data-testid=run-log]").inner_text()
    account.ledger_account.refresh_from_db()
    assert f"balance {account.ledger_account.balance:.2f} EUR" in log and "would be suspended" in log
    calls = page.locator("[data-testid=run-calls]").inner_text()
    assert "suspend" in calls and "done" in calls
    assert Subscription.objects.get(pk=sub.pk).status == "active"  # a dry run: rolled back

    page.goto(f"{live_server.url}/scripts/scriptrun/")
    assert "gate" in page.locator("main").inner_text()
