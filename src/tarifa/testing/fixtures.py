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
