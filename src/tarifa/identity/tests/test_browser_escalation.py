"""In a real browser (issue 11): a user administrator tries to make themselves an administrator
and to set the superuser's password, and is refused with a clear message on the page."""

import os

import pytest
from django.contrib.auth.hashers import check_password

from tarifa.identity import services
from tarifa.identity.models import User
from tarifa.testing.browser import login, menu

pytestmark = pytest.mark.browser

ADMIN_PASSWORD = "S3cure-pass-word"  # the admin_user fixture's
UMA_PASSWORD = "Us3r-admin-passw0rd"
SHOTS = os.environ.get("TARIFA_SCREENSHOTS")  # a directory: keep screenshots of the story there


def shot(page, name):
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def test_a_user_administrator_cannot_become_administrator_nor_take_over_the_superuser(page, live_server,
                                                                                      admin_user):
    administrators = services.create_role(actor="test", name="Administrators", permissions=services.permissions_by_name(
        ["identity.view_user", "identity.add_user", "identity.change_user", "identity.set_password",
         "identity.view_role", "identity.add_role", "identity.change_role", "identity.view_apitoken",
         "identity.add_apitoken", "identity.revoke", "audit.view_auditevent", "payments.view_payment"]))
    user_admins = services.create_role(actor="test", name="User administrators", permissions=services.permissions_by_name(
        ["identity.view_user", "identity.add_user", "identity.change_user", "identity.set_password",
         "identity.view_role"]))
    services.create_user(actor="test", username="uma", password=UMA_PASSWORD, roles=[user_admins])

    login(page, live_server, "uma", UMA_PASSWORD)

    # 1. Uma ticks "Administrators" on her own user and saves.
    menu(page, "Users")
    page.locator("table.data").get_by_role("link", name="uma", exact=True).click()
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Administrators", exact=True).check()
    page.get_by_role("button", name="Save").click()

    error = page.locator(".errorlist").first
    assert "You cannot raise your own rights" in error.inner_text()
    assert "identity.add_role" in error.inner_text()
    shot(page, "1-own-rights-refused")
    uma = User.objects.get(username="uma")
    assert list(uma.roles.values_list("name", flat=True)) == ["User administrators"]
    assert not administrators.users.exists()

    # 2. Uma sets the superuser's password.
    menu(page, "Users")
    page.locator("table.data").get_by_role("link", name="admin", exact=True).click()
    page.get_by_role("link", name="Set password").click()
    page.fill("#id_password", "Uma-owns-the-system-now")
    page.get_by_role("button", name="Set password").click()

    message = page.locator(".errorlist").first
    assert "Only a superuser may set the password of a superuser (admin)." in message.inner_text()
    shot(page, "2-superuser-password-refused")
    assert check_password(ADMIN_PASSWORD, User.objects.get(username="admin").password)

    # 3. And the superuser still logs in with their own password.
    page.get_by_role("button", name="Log out").click()
    login(page, live_server, "admin", ADMIN_PASSWORD)
    assert page.get_by_test_id("current-user").inner_text() == "admin"
