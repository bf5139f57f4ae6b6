"""Browser tests: Playwright driving Debian's Chromium (/usr/bin/chromium), never a downloaded browser.

The fixtures (`browser`, `page`) are in tarifa.testing.fixtures; tests using them are
marked `browser` and run against pytest-django's `live_server`:

    @pytest.mark.browser
    def test_something(page, live_server, admin_user):
        login(page, live_server, "admin", "S3cure-pass-word")
        page.get_by_role("link", name="Customers").click()

Without Chromium the fixtures skip the test on a developer's machine and fail it in CI
(CI=true), so a CI run never passes with its browser tests silently missing.
"""

import os
import shutil

CHROMIUM = os.environ.get("TARIFA_CHROMIUM", "/usr/bin/chromium")
# No GPU, no sandbox (tests run as root in containers), and no background traffic: this
# machine has no network beyond loopback, and Chromium's own update/sync calls would fail.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEFAULT_TIMEOUT_MS = 15_000


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def missing_browser() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which(CHROMIUM):
        return f"Chromium not found at {CHROMIUM} (install Debian's package: apt-get install chromium; `make test` does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]'; `make test` does)"
    return None


def launch(playwright):
    """Headless Chromium from Debian, through Playwright."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def login(page, live_server, username: str, password: str):
    """Log in through the real login form; fails with the form's message if the login is refused."""
    base = live_server.url if hasattr(live_server, "url") else str(live_server)
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.locator("form button[type=submit]").click()
    page.wait_for_load_state("domcontentloaded")
    if "/login/" in page.url:
        errors = page.locator(".errorlist").all_inner_texts()
        raise AssertionError(f"Login as {username!r} refused: {' '.join(errors) or 'still on the login page'}")
    return page


def menu(page, label: str):
    """Click the menu entry `label`, opening its group (Front office, Cash desk, …) first."""
    # a link in a closed group is hidden (not in the accessibility tree): find its group by the text
    group = page.locator("nav.side details.menu-group", has=page.locator(f'a:text-is("{label}")'))
    if group.count() and group.first.get_attribute("open") is None:
        group.first.locator("summary").click()
    page.locator("nav.side").get_by_role("link", name=label, exact=True).click()
    page.wait_for_load_state("domcontentloaded")
    return page
