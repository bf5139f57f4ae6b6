"""The OpenAPI schema says what the server does.

drf-spectacular describes the successful answers from the serializers; this module adds
what it cannot see:

- **Error answers.** Every failure has one body, `{"error": {"code", "message", "fields"}}`
  (web.api.exception_handler). Every operation documents the statuses it can answer with
  it: 400 (bad input, unknown or invalid query parameters), 401 (no or a bad token, on
  operations that need one), 403 (no permission), 404 (no such record, or a page past the
  end), 409 (a conflict with the record's state or an Idempotency-Key used for another
  request), 422 (a business rule refused it), 429 (too many attempts; `Retry-After`), and
  for operations with a body 413 (body too large) and 415 (unsupported media type).
- **Fields as they are answered**: a read-only field whose source crosses a nullable model
  field (`cashier.username` of a payment taken without a cashier) is nullable; a URL field
  that may be blank has no `uri` format; times of day are `HH:MM[:SS]` (JSON Schema's
  `time` format demands a UTC offset, which a time of day in the operator's zone has not);
  a field class may state its schema per direction in `openapi_schema = {"request": {…},
  "response": {…}}` (e.g. durations taken as 60 or "60s", answered as an integer).
- **`Idempotency-Key`**, declared as a header parameter on the operations whose handler is
  wrapped by `web.idempotency.idempotent`: required when the decorator requires it.

Used as REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS (AutoSchema) and SPECTACULAR_SETTINGS's
POSTPROCESSING_HOOKS (document_errors).
"""

from django.core.exceptions import FieldDoesNotExist
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiParameter

from .idempotency import HEADER

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error answer of the API.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "A stable machine-readable code, e.g. validation_failed."},
                "message": {"type": "string", "description": "What went wrong, for a person."},
                "fields": {
                    "type": "object",
                    "description": "Errors by field (a dotted path for nested fields).",
                    "additionalProperties": True,
                },
            },
            "required": ["code", "message", "fields"],
        },
    },
    "required": ["error"],
}

ERRORS = {
    "400": "Bad input: a field, a query parameter or the body is invalid.",
    "401": "Not authenticated: no token, or a token that is unknown, expired or revoked.",
    "403": "The caller lacks the permission this operation needs.",
    "404": "No such record (or not visible to the caller), or a page past the end.",
    "409": "Conflicts with the record's state, or an Idempotency-Key reused for another request.",
    "422": "Refused by a business rule (e.g. insufficient funds, no rate for the destination).",
    "429": "Too many requests or attempts; retry after the number of seconds in Retry-After.",
}
BODY_ERRORS = {
    "413": "The request body is larger than the server accepts.",
    "415": "The request body's media type is not accepted.",
}
WRITE_METHODS = {"post", "put", "patch", "delete"}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}}


def _handler(view, method: str):
    """The view method that answers: a viewset's action, or an APIView's get/post/…."""
    action = getattr(view, "action", None)
    return getattr(view, action, None) if action else getattr(view, method.lower(), None)


TIME_OF_DAY = {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?$",
               "example": "20:00:00"}


def _model_fields_along(field):
    """The model fields a serializer field's dotted source walks through ([] when unknown)."""
    parent = getattr(field, "parent", None)
    model = getattr(getattr(parent, "Meta", None), "model", None)
    source = getattr(field, "source", None) or ""
    found = []
    if model is None or not source or source == "*":
        return found
    for name in source.split("."):
        try:
            model_field = model._meta.get_field(name)
        except (FieldDoesNotExist, AttributeError):
            return found
        found.append(model_field)
        model = getattr(model_field, "related_model", None)
        if model is None:
            break
    return found


class AutoSchema(SpectacularAutoSchema):
    def _get_response_bodies(self, direction="response"):
        # DELETE on a RecordViewSet archives (records are never deleted) and answers 200 with
        # the archived record, not 204 with nothing.
        read = getattr(self.view, "get_serializer_class_for_read", None)
        if self.method == "DELETE" and getattr(self.view, "archive_deletes", False):
            return {"204": {"description": "Deleted (the audit trail keeps what it was)."}}
        if self.method == "DELETE" and read is not None and getattr(self.view, "archive_service", None) is not None:
            return {"200": self._get_response_for_code(read(), "200", direction=direction)}
        return super()._get_response_bodies(direction)

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        declared = getattr(field, "openapi_schema", None)
        if declared and direction in declared:
            meta = dict(declared[direction])
            if field.help_text:
                meta.setdefault("description", str(field.help_text))
            return meta
        meta = super()._map_serializer_field(field, direction, bypass_extensions)
        if not isinstance(meta, dict) or "$ref" in meta:
            return meta
        if meta.get("format") == "time":
            meta = {**{k: v for k, v in meta.items() if k != "format"}, **TIME_OF_DAY}
        along = _model_fields_along(field)
        if direction == "response" and along:
            if any(getattr(f, "null", False) for f in along) and not meta.get("nullable"):
                meta = {**meta, "nullable": True}
        return meta

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "response" and schema.get("required"):
            from .api_nesting import guarded_names

            # Omitted for a caller who may not view their records (tarifa.web.api_nesting).
            guarded = guarded_names(serializer)
            schema["required"] = [name for name in schema["required"] if name not in guarded]
            if not schema["required"]:
                del schema["required"]
        return schema

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        along = _model_fields_along(field)
        if schema.get("format") == "uri" and (getattr(field, "allow_blank", False)
                                              or (along and getattr(along[-1], "blank", False))):
            del schema["format"]  # "" is a valid answer, not a URI

    def get_override_parameters(self):
        params = list(super().get_override_parameters())
        required = getattr(_handler(self.view, self.method), "idempotency_key_required", None)
        if required is not None:
            params.append(OpenApiParameter(
                HEADER, str, OpenApiParameter.HEADER, required=required,
                description=("Required: this request moves money or usage. " if required else "")
                + "1–200 visible ASCII characters. A retry with the same key and body replays the first "
                "answer (header Idempotent-Replayed: true); the same key with another body answers 409."))
        return params


def document_errors(result, generator, request, public):
    """POSTPROCESSING_HOOKS entry: the error answers of every operation (see the module)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            codes = dict(ERRORS)
            if method in WRITE_METHODS:
                codes.update(BODY_ERRORS)
            if operation.get("security") == [{}] or not operation.get("security", [None]):
                codes.pop("401", None)  # open to anonymous callers (e.g. POST auth/token/)
            responses = operation["responses"]
            for code, description in codes.items():
                answer = responses.setdefault(code, {"description": description})
                answer.setdefault("content", {"application/json": {"schema": ref}})
                if code == "429":
                    answer.setdefault("headers", RETRY_AFTER)
    return result


def staff_api_only(endpoints):
    """The staff schema documents /api/v1/ only: other APIs (the self-care portal's, with its own
    tokens) publish their own schema."""
    return [e for e in endpoints if e[0].startswith("/api/v1/")]
