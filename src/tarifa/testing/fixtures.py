"""pytest fixtures for Tarifa's tests: users with given permissions, API clients."""

import os

import pytest

os.environ.setdefault("PLAYWRIGHT_BROWSERS_PATH", "0")


@pytest.fixture
def make_user(db):
    """make_user("crm.view_customer", ...) -> a staff user holding a role with those permissions."""
    from tarifa.identity import services
    from tarifa.identity.models import Role

    counter = {"n": 0}

    def make(*perms, username=None, password="S3cure-pass-word", superuser=False):
        counter["n"] += 1
        name = username or f"user{counter['n']}"
        roles = []
        if perms:
            role = Role.objects.filter(name=f"role-{name}").first() or services.create_role(
                actor="test", name=f"role-{name}", permissions=services.permissions_by_name(perms))
            roles.append(role)
        return services.create_user(actor="test", username=name, password=password, roles=roles,
                                    is_superuser=superuser)

    return make


@pytest.fixture
def admin_user(make_user):
    return make_user(username="admin", superuser=True)


@pytest.fixture
def api(db):
    """An API client factory: api(user) -> DRF APIClient authenticated with a bearer token."""
    from rest_framework.test import APIClient

    from tarifa.identity import services

    def make(user=None):
        client = APIClient()
        if user is not None:
            _token, secret = services.issue_token(actor=user, user=user, name="test")
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    return make


@pytest.fixture
def staff_client(client):
    """staff_client(user) -> Django test client logged in as user."""

    def make(user):
        client.force_login(user)
        return client

    return make


# --- Browser tests (Playwright + Debian's Chromium); helpers in tarifa.testing.browser ---------

@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session. Missing Chromium: skip locally, fail in CI (CI=true)."""
    from tarifa.testing import browser as b

    reason = b.missing_browser()
    if reason:
        if b.in_ci():
            pytest.fail(f"Browser tests cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread from here on; Django
    # refuses ORM calls from a thread with a running loop unless told it is safe (it is: the
    # test code is synchronous, and the live server answers from its own thread).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = b.launch(playwright)
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server, transactional_db):
    """A fresh browser page (own cookies) whose relative URLs resolve against live_server."""
    from tarifa.testing import browser as b

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # see `browser`; also when a test replaced os.environ
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(b.DEFAULT_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _transactional(request) -> bool:
    marker = request.node.get_closest_marker("django_db")
    if marker is not None and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        return True
    return bool({"transactional_db", "live_server", "django_db_reset_sequences"} & set(request.fixturenames))


@pytest.fixture(autouse=True)
def job_queue_emptied(request):
    """procrastinate's tables are not Django models, so the flush after a transactional test
    leaves the jobs it deferred: a later test's one-shot worker would run them. Emptied here."""
    if not _transactional(request):
        yield
        return
    request.getfixturevalue("_django_db_helper")
    yield
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_periodic_defers; DELETE FROM procrastinate_jobs")
