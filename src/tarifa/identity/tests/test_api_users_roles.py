"""Users and roles through the API: roles are sets of permissions named `app_label.codename`."""

import pytest
from rest_framework.test import APIClient

from tarifa.identity.models import Role, User

pytestmark = pytest.mark.django_db

PERMS = ["identity.view_user", "identity.view_role", "audit.view_auditevent"]


@pytest.fixture
def admin_user(make_user):
    """A superuser without a password: nobody logs in with one here, and each Argon2 hash
    costs up to a second on a busy machine."""
    return make_user(username="admin", superuser=True, password=None)


def test_a_role_made_through_the_api_gives_its_users_exactly_its_permissions(admin_user, api):
    client = api(admin_user)

    role = client.post("/api/v1/roles/", {"name": "auditors", "description": "Read the trail",
                                          "permissions": PERMS}, format="json")
    assert role.status_code == 201, role.content
    assert role.json()["permissions"] == sorted(PERMS)

    user = client.post("/api/v1/users/", {"username": "vera", "password": "Corr3ct-horse-battery",
                                          "email": "vera@example.com", "roles": ["auditors"]}, format="json")
    assert user.status_code == 201, user.content
    assert user.json()["roles"] == ["auditors"]
    assert "password" not in user.json()

    vera = User.objects.get(username="vera")
    assert vera.get_all_permissions() == set(PERMS)
    token = APIClient().post("/api/v1/auth/token/", {"username": "vera", "password": "Corr3ct-horse-battery"},
                             format="json").json()["token"]
    as_vera = APIClient()
    as_vera.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert as_vera.get("/api/v1/users/").status_code == 200
    assert as_vera.get("/api/v1/audit-events/").status_code == 200
    assert as_vera.get("/api/v1/api-tokens/").status_code == 403
    assert as_vera.post("/api/v1/roles/", {"name": "x"}, format="json").status_code == 403


def test_changing_a_roles_permissions_changes_its_users_permissions(admin_user, api, make_user):
    client = api(admin_user)
    role_id = client.post("/api/v1/roles/", {"name": "clerks", "permissions": ["identity.view_user"]},
                          format="json").json()["id"]
    client.post("/api/v1/users/", {"username": "ivan", "roles": ["clerks"]}, format="json")

    response = client.patch(f"/api/v1/roles/{role_id}/", {"permissions": ["identity.view_role"]}, format="json")

    assert response.status_code == 200, response.content
    assert User.objects.get(username="ivan").get_all_permissions() == {"identity.view_role"}


def test_an_unknown_permission_is_refused_by_name(admin_user, api):
    response = api(admin_user).post("/api/v1/roles/", {"name": "x", "permissions": ["identity.view_user",
                                                                                    "crm.fly_to_the_moon"]},
                                    format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_permission"
    assert "crm.fly_to_the_moon" in error["message"]
    assert "crm.fly_to_the_moon" in " ".join(error["fields"]["permissions"])
    assert not Role.objects.filter(name="x").exists()


def test_an_unknown_role_is_refused_by_name(admin_user, api):
    response = api(admin_user).post("/api/v1/users/", {"username": "ivan", "roles": ["nosuchrole"]}, format="json")

    assert response.status_code == 400
    assert "roles" in response.json()["error"]["fields"]
    assert not User.objects.filter(username="ivan").exists()


def test_a_weak_password_is_refused_with_the_reason(admin_user, api):
    response = api(admin_user).post("/api/v1/users/", {"username": "ivan", "password": "12345"}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "weak_password"
    assert "password" in error["fields"]
    assert not User.objects.filter(username="ivan").exists()


def test_without_identity_add_role_creating_a_role_is_403(make_user, api):
    viewer = make_user("identity.view_role", "identity.change_role")

    response = api(viewer).post("/api/v1/roles/", {"name": "mine", "permissions": ["identity.add_role"]},
                                format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not Role.objects.filter(name="mine").exists()


def test_without_identity_add_user_creating_a_user_is_403(make_user, api):
    response = api(make_user("identity.view_user")).post("/api/v1/users/", {"username": "ivan"}, format="json")

    assert response.status_code == 403
    assert not User.objects.filter(username="ivan").exists()


def test_the_permissions_endpoint_lists_names_roles_accept(make_user, api):
    response = api(make_user("identity.view_role")).get("/api/v1/permissions/")

    assert response.status_code == 200
    names = {p["name"] for p in response.json()}
    assert set(PERMS) <= names
    assert not any(n.startswith(("sessions.", "contenttypes.", "admin.", "auth.")) for n in names)


def test_deleting_a_user_deactivates_and_keeps_them(admin_user, api, make_user):
    ivan = make_user("identity.view_user", username="ivan")

    response = api(admin_user).delete(f"/api/v1/users/{ivan.pk}/", {"reason": "left"}, format="json")

    assert response.status_code == 200, response.content
    ivan.refresh_from_db()
    assert ivan.is_active is False


def test_an_administrator_cannot_deactivate_themselves(admin_user, api):
    response = api(admin_user).delete(f"/api/v1/users/{admin_user.pk}/")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "self_deactivation"


def test_a_username_cannot_be_changed_through_the_api(admin_user, api, make_user):
    ivan = make_user(username="ivan", password=None)
    client = api(admin_user)

    response = client.patch(f"/api/v1/users/{ivan.pk}/", {"username": "ivan2"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "username_immutable"
    assert client.patch(f"/api/v1/users/{ivan.pk}/", {"username": "ivan", "first_name": "Ivan"},
                        format="json").status_code == 200
    ivan.refresh_from_db()
    assert (ivan.username, ivan.first_name) == ("ivan", "Ivan")
