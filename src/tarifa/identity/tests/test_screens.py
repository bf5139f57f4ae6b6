"""Staff screens: logging in and out, roles and users, what a user sees and may do."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from tarifa.identity import services
from tarifa.identity.models import ApiToken, Role, User

pytestmark = pytest.mark.django_db

PASSWORD = "S3cure-pass-word"
LOGIN = "/login/"


@pytest.fixture
def admin(make_user, client):
    client.force_login(make_user(username="admin", superuser=True, password=None))
    return client


def test_the_login_page_shows_the_form(client):
    response = client.get(LOGIN)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html and 'name="password"' in html and "csrfmiddlewaretoken" in html


def test_anonymous_users_are_sent_to_the_login_page_and_back(client, make_user):
    make_user("identity.view_user", username="ivan")

    response = client.get("/identity/user/")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/identity/user/"

    logged_in = client.post(LOGIN, {"username": "ivan", "password": PASSWORD, "next": "/identity/user/"})
    assert logged_in.status_code == 302 and logged_in["Location"] == "/identity/user/"
    assert client.get("/identity/user/").status_code == 200


def test_login_lands_on_the_dashboard_and_refuses_foreign_redirects(client, make_user):
    make_user(username="ivan")

    response = client.post(LOGIN, {"username": "ivan", "password": PASSWORD, "next": "https://evil.example/"})

    assert response.status_code == 302 and response["Location"] == reverse("web:dashboard")
    dashboard = client.get(reverse("web:dashboard"))
    assert dashboard.status_code == 200  # even without identity.view_dashboard: it is the landing page
    assert 'data-testid="current-user">ivan<' in dashboard.content.decode()


def test_a_wrong_password_shows_an_error(client, make_user):
    make_user(username="ivan")

    response = client.post(LOGIN, {"username": "ivan", "password": "not-the-password"})

    assert response.status_code == 200
    assert "Wrong username or password." in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_an_inactive_user_cannot_log_in(client, make_user):
    ivan = make_user(username="ivan")
    services.deactivate_user(ivan, actor="test")

    response = client.post(LOGIN, {"username": "ivan", "password": PASSWORD})

    assert "Wrong username or password." in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_after_five_failures_the_login_is_throttled(client, make_user):
    make_user(username="ivan")
    for _ in range(services.MAX_FAILURES_PER_USER):
        client.post(LOGIN, {"username": "ivan", "password": "not-the-password"})

    response = client.post(LOGIN, {"username": "ivan", "password": PASSWORD})

    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_logout_is_a_post(admin):
    assert admin.get("/logout/").status_code == 405

    response = admin.post("/logout/")

    assert response.status_code == 302 and response["Location"] == LOGIN
    assert admin.get("/identity/user/").status_code == 302


def test_csrf_is_enforced_on_forms(make_user):
    make_user(username="ivan")
    browser = Client(enforce_csrf_checks=True)

    assert browser.post(LOGIN, {"username": "ivan", "password": PASSWORD}).status_code == 403

    browser.force_login(User.objects.get(username="ivan"))
    assert browser.post("/logout/").status_code == 403
    admin = make_user(username="boss", superuser=True, password=None)
    browser.force_login(admin)
    assert browser.post("/identity/role/add/", {"name": "sneaky"}).status_code == 403
    assert not Role.objects.filter(name="sneaky").exists()


def test_csrf_token_from_the_page_is_accepted(make_user):
    make_user(username="ivan")
    browser = Client(enforce_csrf_checks=True)
    browser.get(LOGIN)
    token = browser.cookies["csrftoken"].value

    response = browser.post(LOGIN, {"username": "ivan", "password": PASSWORD, "csrfmiddlewaretoken": token})

    assert response.status_code == 302


def test_a_role_is_made_with_the_permission_checkboxes(admin):
    form = admin.get("/identity/role/add/").context["form"]
    choices = {label: pk for pk, label in form.fields["permissions"].choices}
    assert "Users: view" in choices and not any(c.startswith("Sessions") for c in choices)

    response = admin.post("/identity/role/add/", {"name": "auditors", "description": "Read only",
                                                  "permissions": [choices["Users: view"].value,
                                                                  choices["Audit events: view"].value]})

    role = Role.objects.get(name="auditors")
    assert response.status_code == 302 and response["Location"] == f"/identity/role/{role.pk}/"
    assert sorted(services.permission_name(p) for p in role.permissions.all()) == [
        "audit.view_auditevent", "identity.view_user"]
    page = admin.get(response["Location"]).content.decode()
    assert "Users: <span" in page and "Read only" in page


def test_the_role_editor_groups_permissions_by_area_in_words(admin):
    """Not 339 raw codes: areas (fieldsets), one row per kind of record, boxes named "Customers: view"."""
    html = admin.get("/identity/role/add/").content.decode()
    legends = re.findall(r"<legend>([^<]+)</legend>", html)
    assert legends[:3] == ["Customers", "Subscriptions", "Accounts and ledger"]
    assert "Users and roles" in legends and len(legends) == len(set(legends))
    assert 'aria-label="Customers: view"' in html and 'aria-label="Customers: archive"' in html
    assert 'aria-label="Payments: reverse payments"' in html
    visible = re.sub(r"<[^>]+>", " ", html)
    assert "crm.view_customer" not in visible and "payments.reverse" not in visible  # codes only in tooltips
    assert 'title="crm.view_customer"' in html


def test_a_duplicate_role_name_is_a_field_error(admin):
    services.create_role(actor="test", name="Cashiers")

    response = admin.post("/identity/role/add/", {"name": "cashiers"})

    assert response.status_code == 200
    assert response.context["form"].errors["name"] == ["A role with this name already exists."]


def test_editing_a_role_changes_its_permissions(admin):
    role = services.create_role(actor="test", name="clerks",
                                permissions=services.permissions_by_name(["identity.view_user"]))
    form = admin.get(f"/identity/role/{role.pk}/edit/").context["form"]
    assert form.initial["permissions"] == list(role.permissions.values_list("pk", flat=True))
    view_role = services.permissions_by_name(["identity.view_role"])[0]

    response = admin.post(f"/identity/role/{role.pk}/edit/", {"name": "clerks", "permissions": [view_role.pk]})

    assert response.status_code == 302
    assert [p.codename for p in role.permissions.all()] == ["view_role"]


def test_a_user_is_made_with_roles_and_a_password(admin, client):
    role = services.create_role(actor="test", name="viewers",
                                permissions=services.permissions_by_name(["identity.view_user"]))

    response = admin.post("/identity/user/add/", {"username": "vera", "first_name": "Vera", "roles": [role.pk],
                                                  "password": "Corr3ct-horse-battery"})

    vera = User.objects.get(username="vera")
    assert response.status_code == 302
    assert list(vera.roles.all()) == [role]
    assert vera.get_all_permissions() == {"identity.view_user"}
    page = admin.get(f"/identity/user/{vera.pk}/").content.decode()
    assert "viewers" in page


def test_a_viewer_sees_no_buttons_and_is_refused_anyway(client, make_user):
    ivan = make_user(username="ivan", password=None)
    viewer = make_user("identity.view_user", "identity.view_role", username="viewer", password=None)
    client.force_login(viewer)

    html = client.get(f"/identity/user/{ivan.pk}/").content.decode()

    assert 'data-action="edit"' not in html
    for action in ("set-password", "deactivate", "issue-token"):
        assert f'data-action="{action}"' not in html
    refused = client.get(f"/identity/user/{ivan.pk}/edit/")
    assert refused.status_code == 403
    assert 'data-testid="forbidden"' in refused.content.decode()
    assert client.post(f"/identity/user/{ivan.pk}/edit/", {"first_name": "X"}).status_code == 403
    for action in ("set-password", "deactivate", "issue-token"):
        assert client.post(f"/identity/user/{ivan.pk}/do/{action}/", {"password": "Corr3ct-horse-battery"}
                           ).status_code == 403
    assert client.get("/identity/role/add/").status_code == 403
    ivan.refresh_from_db()
    assert ivan.is_active and ivan.first_name == "" and not ivan.has_usable_password()
    assert not ivan.api_tokens.exists()


def test_a_user_with_change_permission_sees_edit(client, make_user):
    ivan = make_user(username="ivan", password=None)
    client.force_login(make_user("identity.view_user", "identity.change_user", username="hr", password=None))

    html = client.get(f"/identity/user/{ivan.pk}/").content.decode()

    assert 'data-action="edit"' in html and 'data-action="deactivate"' in html
    assert 'data-action="set-password"' not in html  # that needs identity.set_password


def test_set_password_checks_its_strength(admin, make_user):
    ivan = make_user(username="ivan", password=None)
    url = f"/identity/user/{ivan.pk}/do/set-password/"

    weak = admin.post(url, {"password": "ivan"})
    assert weak.status_code == 200 and "password" in weak.context["form"].errors

    assert admin.post(url, {"password": "Corr3ct-horse-battery"}).status_code == 302
    ivan.refresh_from_db()
    assert ivan.check_password("Corr3ct-horse-battery")


def test_deactivating_a_user_revokes_their_tokens_and_can_be_undone(admin, make_user):
    ivan = make_user(username="ivan", password=None)
    token, _secret = services.issue_token(actor="test", user=ivan)

    assert admin.post(f"/identity/user/{ivan.pk}/do/deactivate/").status_code == 302

    ivan.refresh_from_db()
    token.refresh_from_db()
    assert not ivan.is_active and token.revoked_at is not None
    assert admin.post(f"/identity/user/{ivan.pk}/do/reactivate/").status_code == 302
    ivan.refresh_from_db()
    assert ivan.is_active


def test_an_administrator_cannot_deactivate_themselves(client, make_user):
    boss = make_user(username="boss", superuser=True, password=None)
    client.force_login(boss)

    response = client.post(f"/identity/user/{boss.pk}/do/deactivate/", follow=True)

    assert "You cannot deactivate yourself." in response.content.decode()
    boss.refresh_from_db()
    assert boss.is_active


def test_an_issued_token_is_shown_once_and_stored_hashed(admin, make_user):
    ivan = make_user(username="ivan", password=None)

    response = admin.post(f"/identity/user/{ivan.pk}/do/issue-token/", {"name": "script"}, follow=True)

    html = response.content.decode()
    token = ApiToken.objects.get(user=ivan)
    secret = next(word for word in html.replace("<", " ").split() if word.startswith("tfa_"))
    assert token.key_hash != secret and services.token_user(secret) == (ivan, token)
    assert secret not in admin.get(f"/identity/user/{ivan.pk}/").content.decode()
    assert secret not in admin.get(f"/identity/apitoken/{token.pk}/").content.decode()


def test_revoking_a_token_from_its_page(admin, make_user):
    ivan = make_user(username="ivan", password=None)
    token, secret = services.issue_token(actor="test", user=ivan)
    page = admin.get(f"/identity/apitoken/{token.pk}/").content.decode()
    assert 'data-action="revoke"' in page

    assert admin.post(f"/identity/apitoken/{token.pk}/do/revoke/").status_code == 302

    assert services.token_user(secret) is None
    assert 'data-action="revoke"' not in admin.get(f"/identity/apitoken/{token.pk}/").content.decode()


def test_a_deactivated_users_open_session_ends(client, make_user):
    ivan = make_user("identity.view_user", username="ivan", password=None)
    client.force_login(ivan)
    assert client.get("/identity/user/").status_code == 200

    services.deactivate_user(ivan, actor="test")

    assert client.get("/identity/user/").status_code == 302


def test_dashboard_figures_need_identity_view_dashboard(client, make_user, monkeypatch):
    from tarifa.web import dashboard

    monkeypatch.setattr(dashboard, "_widgets", [(None, lambda request: {"label": "Customers", "value": 42})])
    client.force_login(make_user(username="ivan", password=None))
    assert client.get("/").context["widgets"] == []

    client.force_login(make_user("identity.view_dashboard", username="boss", password=None))
    assert client.get("/").context["widgets"] == [{"label": "Customers", "value": 42}]
