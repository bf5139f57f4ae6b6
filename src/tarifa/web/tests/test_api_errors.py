"""The API answers every failure in one format, and documents itself without the internet."""

import re

import pytest
import yaml
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(make_user):
    """A superuser without a password: nobody logs in with one here, and each Argon2 hash
    costs up to a second on a busy machine."""
    return make_user(username="admin", superuser=True, password=None)


def assert_error(response, status, code=None):
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "fields"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


@pytest.fixture
def admin_api(admin_user, api):
    return api(admin_user)


def test_malformed_json_is_400_parse_error(admin_api):
    response = admin_api.post("/api/v1/roles/", data='{"name": "cashiers",', content_type="application/json")

    error = assert_error(response, 400, "parse_error")
    assert error["fields"] == {}


def test_unknown_fields_are_refused_by_name(admin_api):
    response = admin_api.post("/api/v1/roles/", {"name": "cashiers", "colour": "red"}, format="json")

    error = assert_error(response, 400, "validation_failed")
    assert list(error["fields"]) == ["colour"]
    assert "colour" in error["message"]


def test_field_errors_name_the_field(admin_api):
    error = assert_error(admin_api.post("/api/v1/roles/", {"description": "no name"}, format="json"),
                         400, "validation_failed")

    assert list(error["fields"]) == ["name"]


def test_a_service_error_keeps_its_code_and_fields(admin_api):
    admin_api.post("/api/v1/users/", {"username": "ivan"}, format="json")

    error = assert_error(admin_api.post("/api/v1/users/", {"username": "IVAN"}, format="json"),
                         400, "duplicate_username")
    assert "username" in error["fields"]


@pytest.mark.parametrize("path", ["/api/v1/users/00000000-0000-7000-8000-000000000000/", "/api/v1/users/not-a-uuid/",
                                  "/api/v1/no-such-endpoint/", "/api/v1/"])
def test_not_found_is_404_in_the_error_format(admin_api, path):
    if path == "/api/v1/":  # the API root lists the endpoints
        assert admin_api.get(path).status_code == 200
        return
    assert_error(admin_api.get(path), 404, "not_found")


def test_not_found_anonymous_is_in_the_error_format_too(db):
    assert_error(APIClient().get("/api/v1/no-such-endpoint/"), 404, "not_found")


def test_method_not_allowed_is_405_in_the_error_format(admin_api, admin_user):
    from tarifa.audit.models import AuditEvent

    event = AuditEvent.objects.filter(object_id=str(admin_user.pk)).first()

    assert_error(admin_api.delete(f"/api/v1/audit-events/{event.pk}/"), 405, "method_not_allowed")
    assert_error(admin_api.put("/api/v1/auth/tokens/", {}, format="json"), 405, "method_not_allowed")
    assert_error(admin_api.get("/api/v1/auth/token/"), 405, "method_not_allowed")


def test_a_session_post_without_csrf_token_is_403_in_the_error_format(admin_user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin_user)

    error = assert_error(client.post("/api/v1/roles/", {"name": "x"}, format="json"), 403, "permission_denied")
    assert "CSRF" in error["message"]


def test_the_openapi_schema_is_served_valid_and_complete(db):
    response = APIClient().get("/api/v1/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/auth/token/", "/api/v1/users/", "/api/v1/roles/", "/api/v1/audit-events/"} <= set(schema["paths"])
    assert "post" in schema["paths"]["/api/v1/auth/token/"]
    # Only what is supported is documented: the audit trail is read-only.
    assert set(schema["paths"]["/api/v1/audit-events/"]) - {"parameters"} == {"get"}
    assert set(schema["paths"]["/api/v1/audit-events/{id}/"]) - {"parameters"} == {"get"}
    bearer = schema["components"]["securitySchemes"]["bearerAuth"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    assert {"bearerAuth": []} in schema["paths"]["/api/v1/users/"]["get"]["security"]


def test_the_schema_generates_without_errors_or_warnings_and_validates():
    """Views the generator cannot describe (no serializer, unknown field types) warn: fix them.

    Enum name collisions (two apps' `status` fields) only give generated names such as
    `Status14bEnum`; they are tolerated here (ENUM_NAME_OVERRIDES would name them).
    """
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    warnings = [w for w in GENERATOR_STATS._warn_cache if "enum naming encountered" not in w]
    errors = list(GENERATOR_STATS._error_cache)
    assert not errors and not warnings, "\n".join(errors + warnings)


def test_the_api_docs_are_served_without_any_external_url(client):
    response = client.get("/api/v1/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert not re.search(r"https?://", html), re.findall(r"https?://[^\"' ]+", html)
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert assets, html
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert client.get(asset).status_code == 200, asset
