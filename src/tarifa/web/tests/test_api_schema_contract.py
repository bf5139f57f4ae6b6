"""The OpenAPI schema's contract (tarifa.web.schema): error answers, Idempotency-Key, answered types."""

import pytest
import yaml
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = APIClient().get("/api/v1/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def operations(schema):
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "responses" in op:
                yield path, method, op


def test_every_operation_documents_its_error_answers_in_the_error_format(schema):
    assert schema["components"]["schemas"]["Error"]["required"] == ["error"]
    missing = []
    for path, method, op in operations(schema):
        expected = {"400", "403", "404", "409", "422", "429"}
        if op.get("security") != [{}]:
            expected.add("401")
        if method in ("post", "put", "patch", "delete"):
            expected |= {"413", "415"}
        for code in expected - set(op["responses"]):
            missing.append(f"{method.upper()} {path} {code}")
        for code in expected:
            answer = op["responses"].get(code, {})
            body = answer.get("content", {}).get("application/json", {}).get("schema", {})
            # One schema, or one of several where a protocol dictates another body (rlm_rest's reject)
            refs = {body.get("$ref")} | {one.get("$ref") for one in body.get("oneOf", [])}
            if code in op["responses"] and "#/components/schemas/Error" not in refs:
                missing.append(f"{method.upper()} {path} {code} not in the error format")
    assert not missing, missing[:20]
    throttled = schema["paths"]["/api/v1/auth/token/"]["post"]["responses"]["429"]
    assert "Retry-After" in throttled["headers"]
    # Anonymous operations do not promise 401.
    assert "401" not in schema["paths"]["/api/v1/auth/token/"]["post"]["responses"]


def _idempotency(op):
    return next((p for p in op.get("parameters", []) if p["in"] == "header" and p["name"] == "Idempotency-Key"), None)


def test_idempotency_key_is_declared_where_the_server_reads_it(schema):
    required = _idempotency(schema["paths"]["/api/v1/payments/"]["post"])
    assert required is not None and required["required"] is True
    optional = _idempotency(schema["paths"]["/api/v1/usage/"]["post"])
    assert optional is not None and not optional.get("required", False)
    assert _idempotency(schema["paths"]["/api/v1/payments/"]["get"]) is None
    assert _idempotency(schema["paths"]["/api/v1/customers/"]["post"]) is None


def test_answered_fields_have_the_types_the_server_answers(schema):
    props = schema["components"]["schemas"]
    # Read-only fields through a nullable foreign key or column answer null.
    assert props["Payment"]["properties"]["cashier"]["nullable"] is True
    assert props["Shift"]["properties"]["counted_cash"]["nullable"] is True
    assert props["Invoice"]["properties"]["credited_invoice"]["nullable"] is True
    assert props["Tariff"]["properties"]["current_price"]["nullable"] is True
    # A URL that may be blank is not promised as a URI; a time of day has no UTC offset.
    assert "format" not in props["Gateway"]["properties"]["api_url"]
    start = props["Timing"]["properties"]["start_time"]
    assert "format" not in start and start["pattern"].startswith("^")
    # Durations: answered in base units, accepted as base units or "60s".
    assert props["RateSlot"]["properties"]["rate_unit"]["type"] == "integer"
    assert {"type": "string", "example": "60s"} in props["PatchedRateSlotRequest"]["properties"]["rate_unit"]["oneOf"]


def test_delete_archives_and_is_documented_as_answering_the_archived_record(schema):
    answers = schema["paths"]["/api/v1/services/{id}/"]["delete"]["responses"]
    assert "204" not in answers
    assert answers["200"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Service"
