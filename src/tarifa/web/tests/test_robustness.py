"""Bad input is a clear 4xx in the API's error format, on every registered route, never a 500.

The routes come from the registry (like the permission suite), so a new viewset, endpoint or
screen is covered the moment it is registered.
"""

import uuid

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

import tarifa.urls  # noqa: F401  (registers every app's pages and endpoints)
from tarifa.web import api, registry

pytestmark = pytest.mark.django_db
ANY_UUID = uuid.UUID(int=0)


def assert_error(response, status, code=None):
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


@pytest.fixture
def admin_user(make_user):
    return make_user(username="admin", superuser=True, password=None)


@pytest.fixture
def admin_api(admin_user, api):
    client = api(admin_user)
    client.raise_request_exception = False
    return client


def router_urls():
    for _prefix, viewset, basename in api.router.registry:
        yield f"api:{basename}-list", reverse(f"api:{basename}-list")
        yield f"api:{basename}-detail", reverse(f"api:{basename}-detail", args=[ANY_UUID])
        for act in viewset.get_extra_actions():
            name = f"api:{basename}-{act.url_name}"
            yield name, reverse(name, args=[ANY_UUID] if act.detail else [])


ROUTES = list(router_urls())


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "FROBNICATE"])
def test_unknown_http_methods_are_405_on_every_route(admin_api, method):
    failures = []
    for name, url in ROUTES:
        response = admin_api.generic(method, url)
        if response.status_code != 405 or response.json()["error"]["code"] != "method_not_allowed":
            failures.append((name, response.status_code, response.content[:120]))
    assert not failures, failures


def test_trace_anonymous_is_405_too(db):
    assert_error(APIClient(raise_request_exception=False).generic("TRACE", "/api/v1/users/"), 405,
                 "method_not_allowed")


def test_a_list_fields_error_on_its_second_item_names_that_item(admin_api):
    """ListField errors are keyed by index ({1: [...]}): the error handler crashed with KeyError: 0."""
    error = assert_error(admin_api.post("/api/v1/tax-schemes/",
                                        {"code": "T1", "name": "T", "exempt_tax_codes": ["VAT", "X" * 40]},
                                        format="json"), 400, "validation_failed")

    assert error["fields"] == {"exempt_tax_codes": {"1": ["Ensure this field has no more than 32 characters."]}}
    assert error["message"].startswith("exempt_tax_codes.1: ")


def test_first_error_finds_a_message_anywhere():
    from tarifa.web.api import first_error

    assert first_error({"lines": [{}, {}, {"amount": ["Bad."]}]}) == ("lines.2.amount", "Bad.")
    assert first_error({"tags": {"3": ["Too long."]}}) == ("tags.3", "Too long.")
    assert first_error({"non_field_errors": ["No."]}) == ("non_field_errors", "No.")
    assert first_error({}) == ("", "")


@pytest.mark.parametrize("header", ["Bearer \u2603", "\u2603", "Bearer caf\xe9", "Bearer a\x00b", "Bearer a b"])
def test_a_malformed_authorization_header_is_401(db, header):
    client = APIClient(raise_request_exception=False)
    error = assert_error(client.get("/api/v1/users/", HTTP_AUTHORIZATION=header), 401)
    assert error["code"] in {"authentication_failed", "not_authenticated"}


@pytest.mark.parametrize("as_admin", [False, True], ids=["anonymous", "admin"])
def test_deeply_nested_json_is_a_parse_error(admin_api, as_admin):
    client = admin_api if as_admin else APIClient(raise_request_exception=False)
    url = "/api/v1/roles/" if as_admin else "/api/v1/auth/token/"
    body = "[" * 100_000 + "]" * 100_000

    assert_error(client.post(url, data=body, content_type="application/json"), 400, "parse_error")
    assert_error(client.post(url, data='{"a": ' * 40 + "1" + "}" * 40, content_type="application/json"),
                 400, "parse_error")


def test_a_nul_character_in_json_is_a_parse_error(admin_api):

    response = admin_api.post("/api/v1/roles/", data='{"name": "a\\u0000b"}', content_type="application/json")

    assert_error(response, 400, "parse_error")


def test_a_json_body_over_the_limit_is_413_in_the_error_format(admin_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = admin_api.post("/api/v1/roles/", data='{"name": "' + "x" * 2000 + '"}',
                              content_type="application/json")

    error = assert_error(response, 413, "payload_too_large")
    assert "1000" in error["message"]


def test_request_data_too_big_inside_a_view_is_413_json(admin_api, settings):
    """Without a Content-Length (chunked), Django notices only when the body is read."""
    from django.core.exceptions import RequestDataTooBig

    from tarifa.web.api import exception_handler

    response = exception_handler(RequestDataTooBig("too big"), {})
    assert response.status_code == 413 and response.data["error"]["code"] == "payload_too_large"


API_LISTS = [(name, url) for name, url in ROUTES if name.endswith("-list")]


def test_a_nul_in_any_api_query_parameter_is_400(admin_api):
    failures = []
    for name, url in API_LISTS:
        for param in ("search", "q", "id"):
            response = admin_api.get(url, {param: "a\x00b"})
            if response.status_code != 400 or param not in response.json()["error"]["fields"]:
                failures.append((name, param, response.status_code, response.content[:120]))
    assert not failures, failures


SCREENS = registry.all_screens()


def test_a_nul_in_a_ui_search_is_400_on_every_list_page(admin_user, client):
    client.force_login(admin_user)
    client.raise_request_exception = False
    failures = []
    for screens in SCREENS:
        response = client.get(screens.url("list"), {"q": "\x00"})
        if response.status_code != 400:
            failures.append((screens.url("list"), response.status_code))
    for page in registry.all_pages():
        response = client.get(reverse(page.name), {"q": "x\x00"})
        if response.status_code != 400:
            failures.append((page.name, response.status_code))
    assert not failures, failures


def test_a_throttled_login_is_429_with_retry_after_on_the_page_and_the_api(make_user, client):
    make_user(username="ivan", password="S3cure-pass-word")
    for _ in range(5):
        assert client.post("/login/", {"username": "ivan", "password": "wrong-password"}).status_code == 200

    page = client.post("/login/", {"username": "ivan", "password": "S3cure-pass-word"})
    token = APIClient().post("/api/v1/auth/token/", {"username": "ivan", "password": "S3cure-pass-word"},
                             format="json")

    assert page.status_code == 429 and "Too many failed login attempts" in page.content.decode()
    assert int(page["Retry-After"]) == 900
    assert "_auth_user_id" not in client.session
    assert_error(token, 429, "login_throttled")
    assert int(token["Retry-After"]) == 900


def test_every_429_carries_retry_after():
    from rest_framework.exceptions import Throttled

    from tarifa.kernel.errors import DomainError
    from tarifa.web.api import exception_handler

    assert exception_handler(DomainError("Slow down.", code="x", status=429), {})["Retry-After"] == "60"
    assert exception_handler(DomainError("Slow down.", status=429, retry_after=5), {})["Retry-After"] == "5"
    assert exception_handler(Throttled(wait=12), {})["Retry-After"] == "12"
