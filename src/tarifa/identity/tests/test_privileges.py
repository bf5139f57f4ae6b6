"""Nobody raises their own rights, grants what they do not hold, or takes over a more powerful
user — through the API, the screens and the services alike (issue 11, High 1 and 3)."""

import pytest
from django.contrib.auth.hashers import check_password
from rest_framework.test import APIClient

from tarifa.audit.models import AuditEvent
from tarifa.identity import services
from tarifa.identity.models import ApiToken, Role, User
from tarifa.kernel.errors import PermissionDenied

pytestmark = pytest.mark.django_db

USER_ADMIN = ["identity.view_user", "identity.change_user"]
ADMINISTRATORS = ["identity.view_user", "identity.add_user", "identity.change_user", "identity.set_password",
                  "identity.view_role", "identity.add_role", "identity.change_role", "identity.view_apitoken",
                  "identity.add_apitoken", "identity.revoke", "audit.view_auditevent"]
NEW_PASSWORD = "Att4cker-owns-this-now"


@pytest.fixture
def superuser(make_user):
    return make_user(username="root", superuser=True, password="R00t-original-password")


@pytest.fixture
def administrators():
    return services.create_role(actor="test", name="Administrators",
                                permissions=services.permissions_by_name(ADMINISTRATORS))


def _perms(user):
    return User.objects.get(pk=user.pk).get_all_permissions()


# --- High 1: the user API -----------------------------------------------------------------------

def test_change_user_alone_cannot_set_the_superusers_password(make_user, api, superuser):
    mallory = make_user(*USER_ADMIN, username="mallory", password=None)

    response = api(mallory).patch(f"/api/v1/users/{superuser.pk}/", {"password": NEW_PASSWORD}, format="json")

    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] in ("permission_denied", "rights_exceeded")
    assert check_password("R00t-original-password", User.objects.get(pk=superuser.pk).password)
    assert APIClient().post("/api/v1/auth/token/", {"username": "root", "password": NEW_PASSWORD},
                            format="json").status_code == 401


def test_set_password_is_needed_for_a_password_through_the_api_even_for_a_lesser_user(make_user, api):
    mallory = make_user(*USER_ADMIN, username="mallory", password=None)
    clerk = make_user("identity.view_user", username="clerk", password="Cl3rk-original-password")

    response = api(mallory).patch(f"/api/v1/users/{clerk.pk}/", {"password": NEW_PASSWORD, "first_name": "X"},
                                  format="json")

    assert response.status_code == 403, response.content
    clerk.refresh_from_db()
    assert check_password("Cl3rk-original-password", clerk.password)
    assert clerk.first_name == ""  # nothing half-written


def test_with_set_password_a_lesser_users_password_is_set(make_user, api):
    admin = make_user(*USER_ADMIN, "identity.set_password", username="ada", password=None)
    clerk = make_user("identity.view_user", username="clerk", password=None)

    response = api(admin).patch(f"/api/v1/users/{clerk.pk}/", {"password": NEW_PASSWORD}, format="json")

    assert response.status_code == 200, response.content
    clerk.refresh_from_db()
    assert check_password(NEW_PASSWORD, clerk.password)


def test_set_password_does_not_reach_a_user_with_more_rights(make_user, api):
    admin = make_user(*USER_ADMIN, "identity.set_password", username="ada", password=None)
    cashier = make_user("identity.view_user", "payments.view_payment", username="cashier",
                        password="Cash1er-original-pw")

    response = api(admin).patch(f"/api/v1/users/{cashier.pk}/", {"password": NEW_PASSWORD}, format="json")

    assert response.status_code == 403, response.content
    assert "payments.view_payment" in response.json()["error"]["message"]
    cashier.refresh_from_db()
    assert check_password("Cash1er-original-pw", cashier.password)


def test_nobody_gives_themselves_the_administrators_role(make_user, api, administrators):
    mallory = make_user(*USER_ADMIN, username="mallory", password=None)

    response = api(mallory).patch(f"/api/v1/users/{mallory.pk}/",
                                  {"roles": ["role-mallory", "Administrators"]}, format="json")

    assert response.status_code == 403, response.content
    assert "own rights" in response.json()["error"]["message"]
    assert _perms(mallory) == set(USER_ADMIN)
    assert list(User.objects.get(pk=mallory.pk).roles.values_list("name", flat=True)) == ["role-mallory"]


def test_nobody_grants_another_user_a_role_with_rights_they_do_not_hold(make_user, api, administrators):
    mallory = make_user(*USER_ADMIN, username="mallory", password=None)
    accomplice = make_user("identity.view_user", username="accomplice", password=None)

    response = api(mallory).patch(f"/api/v1/users/{accomplice.pk}/", {"roles": ["Administrators"]}, format="json")

    assert response.status_code == 403, response.content
    assert response.json()["error"]["fields"]["roles"]
    assert _perms(accomplice) == {"identity.view_user"}


def test_nobody_creates_a_user_with_a_role_beyond_their_rights(make_user, api, administrators):
    hr = make_user("identity.view_user", "identity.add_user", username="hr", password=None)

    response = api(hr).post("/api/v1/users/", {"username": "sock", "roles": ["Administrators"]}, format="json")

    assert response.status_code == 403, response.content
    assert not User.objects.filter(username="sock").exists()


def test_a_role_within_the_granters_rights_is_granted(make_user, api):
    admin = make_user(*USER_ADMIN, "identity.view_role", username="ada", password=None)
    readers = services.create_role(actor="test", name="readers",
                                   permissions=services.permissions_by_name(["identity.view_role"]))
    clerk = make_user("identity.view_user", username="clerk", password=None)

    response = api(admin).patch(f"/api/v1/users/{clerk.pk}/", {"roles": ["role-clerk", "readers"]}, format="json")

    assert response.status_code == 200, response.content
    assert _perms(clerk) == {"identity.view_user", "identity.view_role"}
    assert readers.users.filter(pk=clerk.pk).exists()


def test_only_a_superuser_changes_a_superuser(make_user, api, superuser):
    admin = make_user(*ADMINISTRATORS, username="ada", password=None)

    edit = api(admin).patch(f"/api/v1/users/{superuser.pk}/", {"email": "attacker@example.com"}, format="json")
    deactivate = api(admin).delete(f"/api/v1/users/{superuser.pk}/")

    assert edit.status_code == 403, edit.content
    assert "superuser" in edit.json()["error"]["message"]
    assert deactivate.status_code == 403, deactivate.content
    root = User.objects.get(pk=superuser.pk)
    assert root.email == "" and root.is_active
    with pytest.raises(PermissionDenied):
        services.create_user(actor=admin, username="root2", is_superuser=True)
    with pytest.raises(PermissionDenied):
        services.update_user(User.objects.get(pk=admin.pk), actor=admin, is_superuser=True)
    assert not User.objects.filter(is_superuser=True).exclude(pk=superuser.pk).exists()


def test_a_superuser_changes_a_superuser(superuser, make_user, api):
    other = make_user(username="root-two", superuser=True, password=None)

    response = api(superuser).patch(f"/api/v1/users/{other.pk}/", {"email": "two@example.com"}, format="json")

    assert response.status_code == 200, response.content


# --- role editing is granting ---------------------------------------------------------------------

def test_a_role_is_made_only_with_permissions_the_maker_holds(make_user, api):
    admin = make_user("identity.view_role", "identity.add_role", username="ada", password=None)

    refused = api(admin).post("/api/v1/roles/", {"name": "cash", "permissions": ["payments.add_payment"]},
                              format="json")
    allowed = api(admin).post("/api/v1/roles/", {"name": "viewers", "permissions": ["identity.view_role"]},
                              format="json")

    assert refused.status_code == 403, refused.content
    assert "payments.add_payment" in refused.json()["error"]["message"]
    assert not Role.objects.filter(name="cash").exists()
    assert allowed.status_code == 201, allowed.content


def test_editing_a_role_adds_only_permissions_the_editor_holds(make_user, api):
    admin = make_user("identity.view_role", "identity.change_role", username="ada", password=None)
    clerks = services.create_role(actor="test", name="clerks",
                                  permissions=services.permissions_by_name(["identity.view_role"]))

    response = api(admin).patch(f"/api/v1/roles/{clerks.pk}/",
                                {"permissions": ["identity.view_role", "payments.add_payment"]}, format="json")

    assert response.status_code == 403, response.content
    assert sorted(services.permission_name(p) for p in clerks.permissions.all()) == ["identity.view_role"]


def test_nobody_adds_permissions_to_a_role_they_hold(make_user, api):
    # Ada holds identity.view_user through a second role; she may not copy it into the role she edits
    # and holds (that is how a role editor widens their own reach unseen).
    admin = make_user("identity.view_role", "identity.change_role", username="ada", password=None)
    extra = services.create_role(actor="test", name="extra",
                                 permissions=services.permissions_by_name(["identity.view_user"]))
    services.update_user(admin, actor="test", roles=[*admin.roles.all(), extra])
    own = admin.roles.get(name="role-ada")

    response = api(admin).patch(f"/api/v1/roles/{own.pk}/", {"permissions": [
        "identity.view_role", "identity.change_role", "identity.view_user"]}, format="json")

    assert response.status_code == 403, response.content
    assert "hold this role" in response.json()["error"]["message"]


def test_nobody_strips_a_role_of_permissions_they_do_not_hold(make_user, api):
    admin = make_user("identity.view_role", "identity.change_role", username="ada", password=None)
    cashiers = services.create_role(actor="test", name="cashiers", permissions=services.permissions_by_name(
        ["payments.view_payment", "payments.add_payment"]))

    response = api(admin).patch(f"/api/v1/roles/{cashiers.pk}/", {"permissions": ["payments.view_payment"]},
                                format="json")

    assert response.status_code == 403, response.content
    assert cashiers.permissions.count() == 2


# --- High 3: tokens -----------------------------------------------------------------------------------

def test_an_administrator_without_payment_rights_cannot_mint_a_token_for_the_superuser(make_user, superuser,
                                                                                       staff_client):
    admin = make_user(*ADMINISTRATORS, username="ada")
    client = staff_client(admin)

    response = client.post(f"/identity/user/{superuser.pk}/do/issue-token/", {"name": "mine now"})

    assert response.status_code == 200  # the form again, with the reason
    assert "Only a superuser may issue an API token for a superuser" in response.content.decode()
    assert not ApiToken.objects.filter(user=superuser).exists()
    with pytest.raises(PermissionDenied):
        services.issue_token(actor=admin, user=superuser, name="through the service")


def test_a_token_for_a_user_with_more_rights_is_refused(make_user):
    admin = make_user(*ADMINISTRATORS, username="ada", password=None)
    cashier = make_user("payments.view_payment", "payments.add_payment", username="cashier", password=None)

    with pytest.raises(PermissionDenied) as refused:
        services.issue_token(actor=admin, user=cashier, name="x")

    assert "payments.add_payment" in refused.value.message
    assert not ApiToken.objects.filter(user=cashier).exists()


def test_a_token_for_a_lesser_user_is_issued_and_audited_naming_issuer_and_user(make_user, api):
    admin = make_user(*ADMINISTRATORS, username="ada", password=None)
    clerk = make_user("identity.view_user", username="clerk", password=None)

    token, secret = services.issue_token(actor=admin, user=clerk, name="script")

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/users/").status_code == 200
    on_token = AuditEvent.objects.get(object_id=str(token.pk), action="issue_for_other")
    on_user = AuditEvent.objects.get(object_id=str(clerk.pk), action="token_issued_by_other")
    for event in (on_token, on_user):
        assert event.actor_id == admin.pk
        assert event.changes["issued_by"][1] == "ada" and event.changes["user"][1] == "clerk"
        assert "issued by ada for clerk" in event.message
