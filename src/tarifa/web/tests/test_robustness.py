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


# --- amounts: one parser for every field -------------------------------------------------

def _tarifa_subclasses(base):
    seen, stack = set(), [base]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                stack.append(sub)
    return sorted((c for c in seen if c.__module__.startswith("tarifa.")), key=lambda c: c.__qualname__)


def _serializer_fields(serializer):
    from rest_framework import serializers

    for name, field in serializer.fields.items():
        yield name, field
        child = getattr(field, "child", None)
        if isinstance(child, serializers.Field):
            yield f"{name}[]", child


def test_every_api_field_that_takes_a_decimal_uses_the_one_amount_parser():
    """A writable DecimalField/FloatField accepts "1e2", "5_000" and full-width digits, and
    raised decimal.Overflow on "1e1000000": every amount goes through AmountField instead."""
    from rest_framework import serializers

    offenders = []
    for cls in _tarifa_subclasses(serializers.Serializer):
        if issubclass(cls, serializers.ModelSerializer) and not hasattr(cls, "Meta"):
            continue  # an abstract base
        try:
            instance = cls()
            fields = list(_serializer_fields(instance))
        except Exception as exc:  # pragma: no cover - a serializer that cannot be built alone
            offenders.append(f"{cls.__module__}.{cls.__qualname__}: cannot be inspected ({exc!r})")
            continue
        for name, field in fields:
            if isinstance(field, (serializers.DecimalField, serializers.FloatField)) and not field.read_only:
                offenders.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
    assert not offenders, offenders


def test_every_form_field_that_takes_a_decimal_uses_the_one_amount_parser():
    from django import forms

    offenders = []
    for cls in _tarifa_subclasses(forms.BaseForm):
        for name, field in getattr(cls, "base_fields", {}).items():
            if isinstance(field, (forms.DecimalField, forms.FloatField)):
                offenders.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
    assert not offenders, offenders


@pytest.mark.parametrize("raw", ["1e1000000", "1" * 30, "5_000", "\uff15\uff10", "1e2", "1,5"])
def test_amounts_in_the_api_are_plain_decimal_strings(admin_api, raw):
    """A tax rate (numeric(7, 4)) and a tariff's recurring fee: refused by name, nothing written."""
    from django.apps import apps

    tax = apps.get_model("catalog", "Tax")
    before = tax.objects.count()

    error = assert_error(admin_api.post("/api/v1/taxes/", {"code": "VATX", "name": "VAT", "rate": raw,
                                                           "valid_from": "2026-01-01"}, format="json"), 400)

    assert "rate" in error["fields"], error
    assert tax.objects.count() == before


@pytest.mark.parametrize("raw", ["1e1000000", "1" * 30, "5_000", "\uff15", "1e2"])
def test_amounts_in_ui_forms_are_plain_decimal_strings(admin_user, client, raw):
    """The tax form's rate (a model DecimalField) and the adjustment form's amount (a service
    parse): a field error, nothing written, never a 500."""
    from django.apps import apps

    client.force_login(admin_user)
    client.raise_request_exception = False
    tax = apps.get_model("catalog", "Tax")

    response = client.post("/catalog/tax/add/", {"code": "VATX", "name": "VAT", "rate": raw,
                                                  "valid_from": "2026-01-01"})

    assert response.status_code == 200, response.status_code
    assert response.context["form"].errors.get("rate"), response.context["form"].errors
    assert not tax.objects.filter(code="VATX").exists()


def test_the_form_amount_field_cleans_to_a_decimal():
    from decimal import Decimal

    from django import forms

    from tarifa.web.forms import AmountField

    assert AmountField().clean(" 10.50 ") == Decimal("10.5")
    assert AmountField(required=False).clean("") is None
    with pytest.raises(forms.ValidationError):
        AmountField(min_value=0).clean("-1")
    with pytest.raises(forms.ValidationError):
        AmountField(max_digits=7, decimal_places=4).clean("1000")


# --- list parameters: filters, ordering, pagination ------------------------------------------

def _list_viewsets():
    return [(basename, viewset) for _prefix, viewset, basename in api.router.registry
            if "list" in (api.router.get_method_map(viewset, {"get": "list"}).values())]


LISTS = _list_viewsets()


@pytest.mark.parametrize("params,field", [
    ({"no_such_filter": "1"}, "no_such_filter"),
    ({"page": "abc"}, "page"), ({"page": "0"}, "page"), ({"page_size": "0"}, "page_size"),
    ({"page_size": "100000"}, "page_size"), ({"limit": "-1"}, "limit"), ({"limit": "1001"}, "limit"),
    ({"offset": "x"}, "offset"), ({"limit": "5", "page": "2"}, "page"),
    ({"ordering": "no_such_column"}, "ordering"),
], ids=lambda v: "&".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else v)
def test_invalid_list_parameters_are_400_naming_them_on_every_list(admin_api, params, field):
    failures = []
    for basename, _viewset in LISTS:
        response = admin_api.get(reverse(f"api:{basename}-list"), params)
        if response.status_code != 400 or field not in response.json()["error"]["fields"]:
            failures.append((basename, response.status_code, response.content[:150]))
    assert not failures, failures


def test_every_reference_filter_takes_an_id_or_a_number(admin_api):
    """A foreign key filter answered 400 "not a valid UUID" for `HQ-A…` (payments), or was
    missing so that the parameter was ignored (subscriptions' billing_account)."""
    from tarifa.web.filters import FilterBackend, ReferenceFilter, human_field

    backend, failures, seen = FilterBackend(), [], 0
    for basename, viewset in LISTS:
        view = viewset()
        fs_class = backend.get_filterset_class(view, viewset.queryset)
        if fs_class is None:
            continue
        for name, flt in fs_class.base_filters.items():
            if not isinstance(flt, ReferenceFilter):
                continue
            seen += 1
            url = reverse(f"api:{basename}-list")
            by_id = admin_api.get(url, {name: str(ANY_UUID)})
            by_number = admin_api.get(url, {name: "HQ-X0000000"})
            expected = 200 if human_field(flt.related_model) else 400
            if by_id.status_code != 200 or by_number.status_code != expected:
                failures.append((basename, name, by_id.status_code, by_number.status_code, by_number.content[:100]))
    assert seen > 20 and not failures, failures


def test_filters_by_account_number_limit_and_offset_on_real_records(admin_api):
    from django.apps import apps

    from tarifa.web.demo_loader import load_demo

    load_demo(actor="demo")
    payment = apps.get_model("payments", "Payment").objects.order_by("pk").first()
    subscription = apps.get_model("subscriptions", "Subscription").objects.order_by("pk").first()

    for url, obj in (("/api/v1/payments/", payment), ("/api/v1/subscriptions/", subscription)):
        account = obj.billing_account
        by_number = admin_api.get(url, {"billing_account": account.number, "page_size": 1000}).json()
        by_id = admin_api.get(url, {"billing_account": str(account.pk), "page_size": 1000}).json()
        everything = admin_api.get(url, {"page_size": 1000}).json()
        ids = {row["id"] for row in by_number["results"]}
        assert str(obj.pk) in ids and ids == {row["id"] for row in by_id["results"]}
        assert len(ids) < everything["count"], "the filter must filter"

        first_two = admin_api.get(url, {"limit": 2}).json()
        next_one = admin_api.get(url, {"limit": 1, "offset": 1}).json()
        assert len(first_two["results"]) == 2 and first_two["count"] == everything["count"]
        assert next_one["results"][0]["id"] == first_two["results"][1]["id"]
        assert "offset=3" in first_two["next"] or "offset=2" in first_two["next"]


# --- imported files ---------------------------------------------------------------------------

IMPORTS = [s for s in SCREENS if s.import_fields and s.create]


@pytest.mark.parametrize("screens", IMPORTS, ids=[s.url_name("import") for s in IMPORTS])
@pytest.mark.parametrize("problem", ["nul", "huge_field"])
def test_every_import_screen_refuses_nul_and_huge_fields_with_a_message(admin_user, client, screens, problem):
    """A field over the csv module's limit (131072 characters) answered 500 on every import screen."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(admin_user)
    client.raise_request_exception = False
    before = screens.model._default_manager.count()
    value = "a\x00b" if problem == "nul" else "x" * 200_000
    body = ",".join(screens.import_fields) + "\n" + ",".join([value] * len(screens.import_fields)) + "\n"

    response = client.post(screens.url("import"), {"file": SimpleUploadedFile("in.csv", body.encode())})

    assert response.status_code == 400, response.status_code
    assert response.context["errors"] or response.context["form"].errors
    assert screens.model._default_manager.count() == before


# --- upload limits -------------------------------------------------------------------------------

def test_uploads_over_their_limit_are_413_before_the_body_is_read(admin_user, client, api, settings):
    """Usage files and bank statements had no limit (a 200 MB file was parsed); each has its own
    setting now, checked on the request's length before the body is read, like every upload."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.TARIFA_MAX_USAGE_FILE_BYTES = 100_000
    settings.TARIFA_MAX_STATEMENT_FILE_BYTES = 100_000
    settings.TARIFA_MAX_UPLOAD_BYTES = 100_000
    client.force_login(admin_user)
    client.raise_request_exception = False
    big = b"x" * 300_000

    usage = client.post("/rating/usage-import/", {"file": SimpleUploadedFile("u.csv", big), "format": "csv"})
    statement = client.post("/payments/bankstatement/add/", {"file": SimpleUploadedFile("s.csv", big)})
    customers = client.post("/crm/customer/import/", {"file": SimpleUploadedFile("c.csv", big)})
    statement_api = api(admin_user).post("/api/v1/bank-statements/", {"file": SimpleUploadedFile("s.csv", big)},
                                         format="multipart")

    for response in (usage, statement, customers):
        assert response.status_code == 413, response.status_code
    assert "TARIFA_MAX_USAGE_FILE_BYTES" in usage.content.decode()
    assert "tarifa usage import" in usage.content.decode()
    assert "TARIFA_MAX_STATEMENT_FILE_BYTES" in statement.content.decode()
    error = assert_error(statement_api, 413, "payload_too_large")
    assert "TARIFA_MAX_STATEMENT_FILE_BYTES" in error["message"]


def test_each_upload_has_its_own_limit(admin_user, client, settings):
    """A usage file larger than the general limit but within its own is taken."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.TARIFA_MAX_UPLOAD_BYTES = 100_000
    settings.TARIFA_MAX_USAGE_FILE_BYTES = 1_000_000
    client.force_login(admin_user)
    client.raise_request_exception = False
    lines = "".join(f"r{i},src,nobody,1,voice,2024-03-01T09:00:00Z,60\n" for i in range(5000))
    body = ("record_id,source,subject,destination,type,start_time,usage\n" + lines).encode()
    assert 100_000 < len(body) < 1_000_000

    response = client.post("/rating/usage-import/", {"file": SimpleUploadedFile("u.csv", body), "format": "csv"})

    assert response.status_code == 302, response.status_code


# --- a logged-in user without the permission gets 403, never the login form -------------------

def _all_ui_urls():
    """Every URL pattern outside the API, with sample arguments (the zero UUID, a slug)."""
    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(resolver, prefix=""):
        for entry in resolver.url_patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                yield from walk(entry, route)
            elif isinstance(entry, URLPattern):
                yield route

    import re

    for route in walk(get_resolver()):
        if route.startswith(("api/", "static/", "media/")) or route in ("login/", "logout/", "healthz"):
            continue
        url = "/" + re.sub(r"<uuid:[^>]+>", str(ANY_UUID), route)
        url = re.sub(r"<slug:[^>]+>", "x", url)
        url = re.sub(r"<int:[^>]+>", "1", url)
        url = re.sub(r"<(str:)?[^>]+>", "x", url)
        if "^" in url or "(?" in url:
            continue
        yield url


def test_a_logged_in_user_without_permission_never_lands_on_the_login_form(make_user, client):
    user = make_user(username="nobody", password=None)
    client.force_login(user)
    client.raise_request_exception = False
    redirected = []
    urls = sorted(set(_all_ui_urls()))
    for url in urls:
        response = client.get(url)
        # The staff login form (the self-care portal's pages send to the portal's own login).
        if response.status_code in (301, 302) and response.get("Location", "").startswith("/login/"):
            redirected.append(url)
        assert response.status_code < 500, (url, response.status_code)
    assert len(urls) > 50 and not redirected, redirected


# --- CSV exports cannot carry formulas -------------------------------------------------------------

def test_the_csv_writer_defuses_formulas_but_keeps_numbers():
    import io
    from decimal import Decimal

    from tarifa.web.csvexport import SafeWriter

    buffer = io.StringIO()
    SafeWriter(buffer).writerow(
        ['=HYPERLINK("http://x","Click")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "-4.50", "+15550001",
         Decimal("-1.5"), 7, "plain", ""])

    import csv

    row = next(csv.reader(io.StringIO(buffer.getvalue(), newline="")))
    assert row == ["'=HYPERLINK(\"http://x\",\"Click\")", "'+1+1", "'-2+3", "'@SUM(A1)", "'\tx", "'\rx", "-4.50",
                   "+15550001", "-1.5", "7", "plain", ""]


def test_a_formula_in_a_customer_name_is_text_in_the_export(admin_user, client):
    """=HYPERLINK(…) typed as a name came out as a live formula in the customers CSV."""
    from django.apps import apps

    client.force_login(admin_user)

    api_client = APIClient()
    api_client.force_authenticate(admin_user)  # the API lets any text into a name
    created = api_client.post("/api/v1/customers/", {"kind": "individual", "first_name": '=HYPERLINK("http://evil","x")',
                                                     "last_name": "@Smith"}, format="json")
    assert created.status_code == 201, created.content[:300]
    customer = apps.get_model("crm", "Customer").objects.get(pk=created.json()["id"])

    export = client.get("/crm/customer/", {"export": "csv"})
    text = b"".join(export.streaming_content).decode()

    assert str(customer.pk) in text
    assert ',=HYPERLINK' not in text and ',@Smith' not in text and ",\"=HYPERLINK" not in text
    assert "'=HYPERLINK" in text or "'@Smith" in text


# --- list and object fields are bounded ------------------------------------------------------------

def test_list_fields_are_bounded(admin_api):
    """100,000 tags were accepted."""
    from django.apps import apps

    customers = apps.get_model("crm", "Customer")
    before = customers.objects.count()

    response = admin_api.post("/api/v1/customers/", {"kind": "individual", "first_name": "A", "last_name": "B",
                                                     "tags": [f"t{i}" for i in range(100_000)]}, format="json")

    error = assert_error(response, 400, "validation_failed")
    assert error["fields"] == {"tags": ["At most 1000 items."]}
    assert customers.objects.count() == before


def test_every_write_serializer_of_the_api_is_strict():
    """StrictSerializer is where unknown fields and oversized lists are refused: a plain
    serializer taking input would skip both."""
    from rest_framework import serializers

    from tarifa.web.api import StrictSerializer

    offenders = []
    for _prefix, viewset, basename in api.router.registry:
        for action in ("create", "update"):
            if not getattr(viewset, f"{action}_service", None):
                continue
            view = viewset(action=action, request=None, format_kwarg=None, kwargs={})
            cls = view.get_serializer_class()
            if issubclass(cls, serializers.BaseSerializer) and not issubclass(cls, StrictSerializer):
                offenders.append(f"{basename} {action}: {cls.__qualname__}")
    assert not offenders, offenders


def test_a_nul_in_a_multipart_field_is_a_parse_error(admin_api):
    """A lookup by a multipart field (attachments' customer, say) took NUL to PostgreSQL."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = admin_api.post("/api/v1/attachments/", {"customer": "HQ-C\x00", "title": "x",
                                                       "file": SimpleUploadedFile("a.txt", b"hello")},
                              format="multipart")

    assert_error(response, 400, "parse_error")
