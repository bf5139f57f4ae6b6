"""In a real browser: a storekeeper receives routers with a barcode scanner (each serial typed and
ended with Enter), then issues one to a technician, installs it at a customer, takes it back
broken and writes it off; the device page shows the whole history."""

import os

import pytest

from tarifa.inventory import services
from tarifa.inventory.models import Device, Item, Location
from tarifa.testing.browser import login, menu

pytestmark = pytest.mark.browser

ADMIN_PASSWORD = "S3cure-pass-word"  # the admin_user fixture's
SHOTS = os.environ.get("TARIFA_SCREENSHOTS")  # a directory: save screenshots there (checking by eye)


def shot(page, name):
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"inventory-{name}.png"), full_page=True)


def test_scanner_receipt_then_the_device_life(page, live_server, admin_user, django_user_model):
    from tarifa.crm import services as crm

    warehouse = services.create_location(actor="system", code="WH1", name="Main warehouse", kind="warehouse")
    tech = django_user_model.objects.create_user(username="tom", first_name="Tom", last_name="Tech")
    van = services.technician_location(tech)
    customer = crm.create_customer(actor="system", kind="individual", first_name="Ann", last_name="Lee")
    services.create_item(actor="system", code="RT-1", name="AX3000", vendor="Acme", kind=Item.Kind.ROUTER,
                         currency="USD", cost="40")
    services.receive(actor="system", warehouse=warehouse, item=Item.objects.get(), serials=["KNOWN-1"])

    login(page, live_server, "admin", ADMIN_PASSWORD)
    menu(page, "Goods receipt (scanner)")
    page.select_option("#id_warehouse", label="Main warehouse")
    page.select_option("#id_item", label="Acme AX3000")
    scan = page.get_by_test_id("scan")
    for serial in ("SCAN-001", "SCAN-002", "SCAN-003", "SCAN-002"):
        scan.type(serial)
        scan.press("Enter")
    assert page.get_by_test_id("scan-count").inner_text() == "3"
    assert "scanned already" in page.locator("#scan-note").inner_text()
    # A serial already in stock: refused by the server with its line, nothing received.
    scan.type("KNOWN-1")
    scan.press("Enter")
    shot(page, "1-scanned")
    page.get_by_test_id("post-receipt").click()
    assert "line 4: KNOWN-1 is already known" in page.get_by_test_id("refused").inner_text()
    assert not Device.objects.filter(serial__startswith="SCAN").exists()
    shot(page, "2-refused")
    # Take it off the list and post again.
    page.locator('#scanned li[data-serial="KNOWN-1"] button').click()
    assert page.get_by_test_id("scan-count").inner_text() == "3"
    page.get_by_test_id("post-receipt").click()
    assert page.locator("h1").inner_text().startswith("Stock location: Main warehouse")
    assert "Received 3" in page.locator(".messages").inner_text()
    assert sorted(Device.objects.filter(location=warehouse).values_list("serial", flat=True)) == [
        "KNOWN-1", "SCAN-001", "SCAN-002", "SCAN-003"]
    shot(page, "3-received")

    # Issue SCAN-001 to the technician, install it, take it back broken, write it off.
    page.get_by_role("link", name="SCAN-001", exact=True).click()
    page.locator('[data-action="move"]').click()
    page.select_option("#id_to_location", label=van.name)
    page.get_by_role("button", name="Move").click()
    assert Device.objects.get(serial="SCAN-001").location == van
    page.locator('[data-action="install"]').click()
    page.fill("#id_customer", customer.number)
    page.fill("#id_subscription_ref", "HQ-S0000001")
    page.get_by_role("button", name="Install at a customer").click()
    assert Device.objects.get(serial="SCAN-001").location.kind == Location.Kind.CUSTOMER
    page.locator('[data-action="move"]').click()
    page.select_option("#id_to_location", label="Main warehouse")
    page.select_option("#id_condition", label="Broken")
    page.fill("#id_reason", "No Wi-Fi")
    page.get_by_role("button", name="Move").click()
    page.locator('[data-action="write-off"]').click()
    page.fill("#id_reason", "Beyond repair")
    page.get_by_role("button", name="Write off").click()
    history = page.get_by_test_id("moves").inner_text()
    for kind in ("Receipt", "Issue to technician", "Install", "Return", "Write-off"):
        assert kind in history, history
    assert "Beyond repair" in history and "HQ-S0000001" in history
    shot(page, "4-history")
    assert Device.objects.get(serial="SCAN-001").location.kind == Location.Kind.SCRAP
    page.goto("/inventory/check/")
    assert "All invariants hold" in page.get_by_test_id("inventory-check-result").inner_text()
