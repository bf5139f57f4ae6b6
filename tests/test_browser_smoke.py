"""The UI in a real browser: log in as admin and land on the dashboard."""

import pytest

from tarifa.testing.browser import login

pytestmark = pytest.mark.browser


def test_admin_logs_in_and_sees_the_dashboard(page, live_server, admin_user):
    page.goto(live_server.url + "/")
    assert "/login/" in page.url  # anonymous visitors are sent to the login form

    login(page, live_server, "admin", "S3cure-pass-word")

    assert page.url.rstrip("/") == live_server.url
    assert page.locator("h1").first.inner_text() == "Dashboard"
    # The admin's menu: Jobs is in the Administration group.
    assert page.locator("nav.side a", has_text="Jobs").count() >= 1


def test_wrong_password_is_refused(page, live_server, admin_user):
    with pytest.raises(AssertionError, match="refused"):
        login(page, live_server, "admin", "not-the-password")
    assert page.locator("h1").first.inner_text() == "Log in to Tarifa"
