"""API tokens: obtained with username and password, stored hashed, revocable, expiring."""

import datetime as dt

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tarifa.identity import services
from tarifa.identity.models import ApiToken, hash_token
from tarifa.kernel import clock

PASSWORD = "S3cure-pass-word"
TOKEN_URL = "/api/v1/auth/token/"
OWN_TOKENS_URL = "/api/v1/auth/tokens/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(make_user):
    """A superuser without a password: nobody logs in with one here, and each Argon2 hash
    costs up to a second on a busy machine."""
    return make_user(username="admin", superuser=True, password=None)


def obtain(username, password=PASSWORD, **extra):
    return APIClient().post(TOKEN_URL, {"username": username, "password": password, **extra}, format="json")


def bearer(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def assert_error(response, status, code=None):
    assert response.status_code == status, (response.status_code, response.content)
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "fields"}, body
    assert body["error"]["message"], body
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


def all_rows_text(table):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
        return repr(cursor.fetchall())


def test_username_and_password_give_a_bearer_token_that_works(make_user):
    make_user("identity.view_user", username="ivan")

    response = obtain("ivan", name="billing script")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token"].startswith("tfa_")
    assert body["username"] == "ivan" and body["name"] == "billing script"
    assert bearer(body["token"]).get("/api/v1/users/").status_code == 200
    assert ApiToken.objects.get(pk=body["id"]).last_used_at is not None


def test_the_token_is_stored_hashed_and_never_in_clear(make_user):
    make_user(username="ivan")

    secret = obtain("ivan").json()["token"]

    token = ApiToken.objects.get()
    assert token.key_hash == hash_token(secret)
    assert secret.startswith(token.prefix)
    for table in ("identity_apitoken", "audit_auditevent"):
        assert secret not in all_rows_text(table)


def test_a_user_lists_only_their_own_tokens(make_user):
    ivan, olga = make_user(username="ivan"), make_user(username="olga")
    services.issue_token(actor=olga, user=olga, name="olga's")
    secret = obtain("ivan", name="ivan's").json()["token"]

    response = bearer(secret).get(OWN_TOKENS_URL)

    assert response.status_code == 200
    assert [t["name"] for t in response.json()] == ["ivan's"]
    assert "token" not in response.json()[0] and "key_hash" not in response.json()[0]
    assert ivan.api_tokens.count() == 1


def test_revoking_own_token_makes_it_refused(make_user):
    make_user(username="ivan")
    issued = obtain("ivan").json()
    client = bearer(issued["token"])

    response = client.post(f"{OWN_TOKENS_URL}{issued['id']}/revoke/")

    assert response.status_code == 200, response.content
    assert response.json()["revoked_at"]
    error = assert_error(client.get(OWN_TOKENS_URL), 401, "authentication_failed")
    assert error["fields"] == {}


def test_a_user_cannot_revoke_someone_elses_token_through_the_own_endpoint(make_user):
    make_user(username="ivan")
    olga = make_user(username="olga")
    olgas, _secret = services.issue_token(actor=olga, user=olga)
    client = bearer(obtain("ivan").json()["token"])

    assert_error(client.post(f"{OWN_TOKENS_URL}{olgas.pk}/revoke/"), 404, "not_found")

    olgas.refresh_from_db()
    assert olgas.revoked_at is None


def test_an_administrator_with_identity_revoke_revokes_anyones_token(make_user, api):
    olga = make_user(username="olga")
    token, secret = services.issue_token(actor=olga, user=olga)
    clerk = make_user("identity.view_apitoken", username="clerk")
    admin = make_user("identity.revoke", username="secadmin")
    url = f"/api/v1/api-tokens/{token.pk}/revoke/"

    assert_error(api(clerk).post(url), 403, "permission_denied")
    assert bearer(secret).get(OWN_TOKENS_URL).status_code == 200

    response = api(admin).post(url)

    assert response.status_code == 200, response.content
    assert_error(bearer(secret).get(OWN_TOKENS_URL), 401, "authentication_failed")
    assert_error(api(admin).post(url), 409, "already_revoked")


def test_an_expired_token_is_refused(make_user):
    ivan = make_user(username="ivan")
    start = clock.now()
    _token, secret = services.issue_token(actor=ivan, user=ivan, expires_at=start + dt.timedelta(days=1))
    assert bearer(secret).get(OWN_TOKENS_URL).status_code == 200

    with clock.travel_to(start + dt.timedelta(days=1, seconds=1)):
        assert_error(bearer(secret).get(OWN_TOKENS_URL), 401, "authentication_failed")


def test_a_deactivated_users_tokens_are_refused(make_user, admin_user):
    ivan = make_user(username="ivan")
    _token, secret = services.issue_token(actor=ivan, user=ivan)

    services.deactivate_user(ivan, actor=admin_user, reason="left")

    assert_error(bearer(secret).get(OWN_TOKENS_URL), 401, "authentication_failed")
    assert_error(obtain("ivan"), 401, "invalid_credentials")


@pytest.mark.parametrize("header", ["Bearer tfa_not-a-real-token", "Bearer", "Bearer a b"])
def test_unknown_or_malformed_tokens_are_refused(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get(OWN_TOKENS_URL)

    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Bearer"


def test_no_credentials_is_401_not_authenticated(db):
    response = APIClient().get(OWN_TOKENS_URL)

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("username, password", [("ivan", "wrong-password-1"), ("nobody", PASSWORD)])
def test_wrong_credentials_are_401_invalid_credentials(make_user, username, password):
    make_user(username="ivan")

    error = assert_error(obtain(username, password), 401, "invalid_credentials")

    assert error["message"] == "Wrong username or password."
    assert not ApiToken.objects.exists()


def test_after_five_failures_even_the_right_password_is_refused(make_user):
    make_user(username="ivan")
    for _ in range(services.MAX_FAILURES_PER_USER):
        assert_error(obtain("ivan", "wrong-password-1"), 401, "invalid_credentials")

    assert_error(obtain("ivan"), 429, "login_throttled")
    assert_error(obtain("IVAN"), 429, "login_throttled")
    assert not ApiToken.objects.exists()


def test_the_throttle_window_passes(make_user):
    make_user(username="ivan")
    start = clock.now()
    with clock.travel_to(start):
        for _ in range(services.MAX_FAILURES_PER_USER):
            obtain("ivan", "wrong-password-1")
        assert_error(obtain("ivan"), 429, "login_throttled")
    with clock.travel_to(start + services.LOGIN_WINDOW + dt.timedelta(seconds=1)):
        assert obtain("ivan").status_code == 201


def test_the_token_request_refuses_unknown_fields_and_missing_ones(db):
    error = assert_error(obtain("ivan", scope="all"), 400, "validation_failed")
    assert "scope" in error["fields"]

    error = assert_error(APIClient().post(TOKEN_URL, {"username": "ivan"}, format="json"), 400, "validation_failed")
    assert "password" in error["fields"]


def test_many_failures_from_one_address_throttle_every_username_from_it(make_user, monkeypatch):
    monkeypatch.setattr(services, "MAX_FAILURES_PER_IP", 3)
    make_user(username="ivan")
    for name in ("anna", "boris", "clara"):  # guessing across names, from 127.0.0.1
        assert_error(obtain(name, "wrong-password-1"), 401, "invalid_credentials")

    assert_error(obtain("ivan"), 429, "login_throttled")
    elsewhere = APIClient().post(TOKEN_URL, {"username": "ivan", "password": PASSWORD}, format="json",
                                 REMOTE_ADDR="198.51.100.9")
    assert elsewhere.status_code == 201


def test_a_tokens_permissions_come_with_it_in_one_statement_and_changes_count_from_the_next_request(make_user):
    """token_user reads the token, its user and the user's permissions (own and through roles) in
    one statement; nothing outlives the request, so a changed role, a direct grant, a deactivated
    user or a revoked token counts from the very next request."""
    from django.contrib.auth.models import Permission
    from django.test.utils import CaptureQueriesContext

    role = services.create_role(actor="test", name="readers")
    user = services.create_user(actor="test", username="reader", roles=[role])
    token, secret = services.issue_token(actor=user, user=user, name="script")
    client = bearer(secret)
    assert_error(client.get("/api/v1/users/"), 403)

    services.update_role(role, actor="test", permissions=services.permissions_by_name(["identity.view_user"]))
    assert client.get("/api/v1/users/").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        found = services.token_user(secret)
    assert len(queries.captured_queries) == 1
    assert found is not None and found[0].has_perm("identity.view_user")
    assert not found[0].has_perm("identity.add_user")
    assert len(queries.captured_queries) == 1  # has_perm asked the database nothing

    services.update_role(role, actor="test", permissions=[])
    assert_error(client.get("/api/v1/users/"), 403)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="identity", codename="view_user"))
    assert client.get("/api/v1/users/").status_code == 200
    user.user_permissions.clear()
    assert_error(client.get("/api/v1/users/"), 403)

    services.update_role(role, actor="test", permissions=services.permissions_by_name(["identity.view_user"]))
    assert client.get("/api/v1/users/").status_code == 200
    services.revoke_token(token, actor="test")
    assert_error(client.get("/api/v1/users/"), 401)
