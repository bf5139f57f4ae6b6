"""In a real browser: an administrator makes a read-only role and a user holding it; that
user sees only what the role allows and is refused the rest."""


import pytest

from tarifa.testing.browser import login, menu

pytestmark = pytest.mark.browser

ADMIN_PASSWORD = "S3cure-pass-word"  # the admin_user fixture's
VERA_PASSWORD = "Corr3ct-horse-battery"


def nav_links(page) -> set[str]:
    return {text.strip() for text in page.locator("nav.side a").all_text_contents()}  # closed groups too


def test_a_read_only_role_shows_only_its_screens(page, live_server, admin_user):
    login(page, live_server, "admin", ADMIN_PASSWORD)

    # The role: three view permissions, ticked on the role form.
    menu(page, "Roles")
    page.get_by_test_id("add").click()
    page.fill("#id_name", "Auditors")
    page.fill("#id_description", "Read users, roles and the audit trail")
    for permission in ("Users: view", "Roles: view", "Audit events: view"):
        page.get_by_label(permission, exact=True).check()
    page.get_by_role("button", name="Save").click()
    assert page.locator("h1").inner_text().startswith("Role: Auditors")
    assert "Audit events: view" in page.get_by_test_id("role-permissions").inner_text()

    # The user holding it, with a password.
    menu(page, "Users")
    page.get_by_test_id("add").click()
    page.fill("#id_username", "vera")
    page.fill("#id_first_name", "Vera")
    page.get_by_label("Auditors", exact=True).check()
    page.fill("#id_password", VERA_PASSWORD)
    page.get_by_role("button", name="Save").click()
    assert page.locator("h1").inner_text() == "User: vera"

    page.get_by_role("button", name="Log out").click()
    assert "/login/" in page.url

    # Vera sees only what her role allows.
    login(page, live_server, "vera", VERA_PASSWORD)
    assert page.get_by_test_id("current-user").inner_text() == "vera"
    links = nav_links(page)
    assert {"Users", "Roles", "Audit trail"} <= links
    assert not links & {"Jobs", "API tokens", "Branches"}

    menu(page, "Users")
    assert page.locator("h1").inner_text() == "Users"
    assert page.get_by_test_id("add").count() == 0
    assert page.get_by_role("link", name="Import CSV").count() == 0

    page.locator("table.data").get_by_role("link", name="admin", exact=True).click()
    assert page.locator("h1").inner_text() == "User: admin"
    assert page.locator("[data-action]").count() == 0  # no Edit, no actions
    assert page.get_by_test_id("history").is_visible()

    response = page.goto("/identity/role/add/")
    assert response.status == 403
    assert page.get_by_test_id("forbidden").is_visible()
    assert page.locator("#id_name").count() == 0
