"""REST API base: authentication, permissions, pagination, one error format, viewsets.

Apps declare serializers and viewsets in their `api.py` and register them on `router`;
writes go through the app's services (`perform_create` / `perform_update` / archive).
"""

from decimal import Decimal

from django.conf import settings
from django.db import models, transaction
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import (
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.views import exception_handler as drf_exception_handler

from tarifa.kernel import periods
from tarifa.kernel.errors import DomainError, ValidationFailed
from tarifa.kernel.money import INTEGER_DIGITS, LEDGER_PLACES, parse_amount

from .api_auth import (  # noqa: F401
    BearerTokenAuthentication,
    ModelPermission,
    Pagination,
    SessionAuthentication,
)


class Router(DefaultRouter):
    """Routes only what a viewset supports: a RecordViewSet without `create_service` has no
    POST, so the OpenAPI schema does not promise writes that would answer 405."""

    def get_method_map(self, viewset, method_map):
        bound = super().get_method_map(viewset, method_map)
        unsupported = getattr(viewset, "unsupported_actions", lambda: set())()
        return {method: action for method, action in bound.items() if action not in unsupported}


router = Router(trailing_slash=True)
# Extra endpoints outside viewsets: (url path, view, name, permission), registered by apps.
extra_endpoints: list[tuple[str, object, str, str | None]] = []
# name -> sample() returning URL kwargs, for GET endpoints whose route takes arguments
# (the permission suite opens every GET endpoint).
endpoint_samples: dict[str, object] = {}


def register_endpoint(route: str, view, name: str, permission: str | None, sample=None):
    if name not in {e[2] for e in extra_endpoints}:
        extra_endpoints.append((route, view, name, permission))
    if sample is not None:
        endpoint_samples[name] = sample


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Tells the OpenAPI schema how to authenticate: `Authorization: Bearer <token>`."""

    target_class = "tarifa.web.api_auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "A token from POST /api/v1/auth/token/ (username and password)."}


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "tarifa.web.api_auth.SessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _flatten(detail):
    if isinstance(detail, dict):
        return {str(k): _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [str(x) if not isinstance(x, (dict, list)) else _flatten(x) for x in detail]
    return [str(detail)]


def first_error(fields) -> tuple[str, str]:
    """The first message in nested field errors and where it is ("lines.1.amount"): a list's
    first bad item need not be item 0, and a ListField's errors are keyed by index."""
    if isinstance(fields, dict):
        for key, value in fields.items():
            path, message = first_error(value)
            if message:
                return (f"{key}.{path}" if path else str(key)), message
        return "", ""
    if isinstance(fields, list):
        for index, value in enumerate(fields):
            if isinstance(value, (dict, list)):
                path, message = first_error(value)
                if message:
                    return (f"{index}.{path}" if path else str(index)), message
            elif str(value):
                return "", str(value)
        return "", ""
    return "", str(fields)


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


def exception_handler(exc, context):
    """Every failure as {"error": {"code", "message", "fields"}} with the right status."""
    if isinstance(exc, DomainError):
        response = Response(error_body(exc.code, exc.message, exc.fields), status=exc.status)
        if exc.status == 429:
            response["Retry-After"] = str(getattr(exc, "retry_after", None) or 60)
        return response
    if isinstance(exc, DjangoValidationError):
        fields = {k: [str(m) for m in v] for k, v in getattr(exc, "message_dict", {"non_field_errors": exc.messages}).items()}
        return Response(error_body("validation_failed", "; ".join(exc.messages), fields), status=400)
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(_("The request body is larger than %(max)s bytes.")
                              % {"max": settings.DATA_UPLOAD_MAX_MEMORY_SIZE})
    elif isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        exc = PayloadTooLarge(str(exc) or PayloadTooLarge.default_detail)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail) if isinstance(exc.detail, dict) else {"non_field_errors": _flatten(exc.detail)}
        path, text = first_error(fields)
        top = path.split(".")[0]
        message = text if top == "non_field_errors" or not path else f"{path}: {text}"
        response.data = error_body("validation_failed", message or str(_("Invalid input.")), fields)
    else:
        code = getattr(exc, "default_code", "error")
        if isinstance(exc.detail, dict):
            message = str(next(iter(exc.detail.values()), exc.default_detail))
        else:
            message = str(exc.detail)
        response.data = error_body(code, message)
        if isinstance(exc, exceptions.Throttled) or response.status_code == 429:
            response["Retry-After"] = str(int(getattr(exc, "wait", None) or 60))
    return response


@extend_schema_field({"type": "string", "format": "decimal", "example": "10.00"})
class AmountField(serializers.Field):
    """An amount (money, a rate, a price) as a plain decimal string, parsed by the one parser,
    `tarifa.kernel.money.parse_amount`: JSON numbers, exponents, separators and non-ASCII
    digits are refused, as are more than `places` decimals or `integer_digits` digits before
    the point. Every API field that takes an amount is one of these (a test checks it).

    Errors carry the kernel's codes: invalid_amount, amount_too_precise, amount_not_positive,
    amount_too_large; `non_negative` refuses below zero with `<field>_negative`.
    """

    def __init__(self, *, positive=False, non_negative=False, places=LEDGER_PLACES, integer_digits=INTEGER_DIGITS,
                 max_digits=None, decimal_places=None, min_value=None, max_value=None, **kwargs):
        # max_digits, decimal_places, min_value, max_value: what a ModelSerializer passes for a
        # model DecimalField (StrictModelSerializer maps those to this field).
        self.positive, self.non_negative = positive, non_negative
        self.places = decimal_places if decimal_places is not None else places
        self.integer_digits = min(max_digits - self.places, INTEGER_DIGITS) if max_digits else integer_digits
        self.min_value, self.max_value = min_value, max_value
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        name = self.field_name or "amount"
        if not isinstance(data, str):
            raise ValidationFailed(f"{name} must be a decimal string such as \"10.00\", not a JSON "
                                   f"{'number' if isinstance(data, (int, float)) else type(data).__name__}.",
                                   code="invalid_amount", fields={name: ["Give the amount as a decimal string."]})
        amount = parse_amount(data, field=name, positive=self.positive, places=self.places,
                              integer_digits=self.integer_digits)
        if self.non_negative and amount < 0:
            raise ValidationFailed(f"{name} cannot be negative.", code=f"{name}_negative",
                                   fields={name: ["Zero or more."]})
        if self.min_value is not None and amount < self.min_value:
            raise serializers.ValidationError(_("At least %(min)s.") % {"min": self.min_value})
        if self.max_value is not None and amount > self.max_value:
            raise serializers.ValidationError(_("At most %(max)s.") % {"max": self.max_value})
        return amount.quantize(Decimal(1).scaleb(-self.places))  # exact: parse_amount checked the places

    def to_representation(self, value):
        return None if value is None else f"{value:f}"


@extend_schema_field({"type": "string", "pattern": r"^\d{4}-(0[1-9]|1[0-2])$", "example": "2026-10"})
class PeriodField(serializers.CharField):
    """A billing period `YYYY-MM` in the supported years, by tarifa.kernel.periods."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError(_("YYYY-MM, e.g. 2026-10."))
        try:
            return periods.parse_period(data, field=self.field_name or "period")
        except DomainError as exc:
            raise serializers.ValidationError(next(iter(exc.fields.values()))) from None


# The most items a list or object field of a request may hold unless the field says otherwise
# (a ListField's or many=True serializer's `max_length`): 100,000 tags were accepted.
MAX_ITEMS = 1000


def item_limit(field) -> int:
    return getattr(field, "max_length", None) or MAX_ITEMS


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know (a typo must not be silently ignored), and lists or
    objects with more items than the field's `max_length`, or MAX_ITEMS (one bound for every
    list and JSON field of the API; the JSON parser bounds the nesting)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            known = {name for name, f in self.fields.items() if not f.read_only}
            unknown = sorted(set(data) - known)
            if unknown:
                raise serializers.ValidationError({name: [_("Unknown field.")] for name in unknown})
            too_many = {}
            for name, value in data.items():
                if isinstance(value, (list, dict)) and len(value) > item_limit(self.fields[name]):
                    too_many[name] = [_("At most %(n)s items.") % {"n": item_limit(self.fields[name])}]
            if too_many:
                raise serializers.ValidationError(too_many)
        return super().to_internal_value(data)


class StrictModelSerializer(StrictSerializer, serializers.ModelSerializer):
    serializer_field_mapping = {**serializers.ModelSerializer.serializer_field_mapping,
                                models.DecimalField: AmountField}


def missing_arguments(service, data, *, skip=()) -> None:
    """Refuses (400, by field) what a service requires and the request did not give: a field the
    serializer leaves optional (a model default) but the service takes without default was a
    TypeError, i.e. a 500."""
    import inspect

    try:
        parameters = inspect.signature(service).parameters.values()
    except (TypeError, ValueError):
        return
    missing = [p.name for p in parameters
               if p.kind is p.KEYWORD_ONLY and p.default is p.empty and p.name not in data and p.name not in skip]
    if missing:
        raise exceptions.ValidationError({name: [_("This field is required.")] for name in missing})


class RecordViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """List/get plus create/update/archive through services.

    Subclasses set `create_service(*, actor, **data)`, `update_service(obj, *, actor, **data)`
    and `archive_service(obj, *, actor, reason)`; missing ones disable the method.
    DELETE archives (records are never deleted) and takes an optional `reason`; it answers the
    archived record, or 204 when `archive_deletes` (parts of another record, deleted for real).
    """

    required_permission = None  # set per @action(required_permission=...)
    create_service = None
    update_service = None
    archive_service = None
    archive_deletes = False  # True: archive_service deletes the record; DELETE answers 204
    write_serializer_class = None
    lookup_value_regex = "[0-9a-f-]{36}"

    @classmethod
    def unsupported_actions(cls) -> set[str]:
        missing = set()
        if cls.create_service is None:
            missing.add("create")
        if cls.update_service is None:
            missing |= {"update", "partial_update"}
        if cls.archive_service is None:
            missing.add("destroy")
        return missing

    def get_serializer_class(self):
        if self.action in ("create", "update", "partial_update") and self.write_serializer_class:
            return self.write_serializer_class
        return super().get_serializer_class()

    def get_service(self, name):
        func = getattr(type(self), name, None)
        if func is None:
            raise exceptions.MethodNotAllowed(self.request.method)
        return func.__func__ if hasattr(func, "__func__") else func

    def create(self, request, *args, **kwargs):
        service = self.get_service("create_service")
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        missing_arguments(service, serializer.validated_data, skip={"actor"})
        obj = service(actor=request.user, **serializer.validated_data)
        return Response(self.get_serializer_class_for_read()(obj, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        service = self.get_service("update_service")
        partial = kwargs.pop("partial", False)
        obj = self.get_object()
        serializer = self.get_serializer(obj, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        obj = service(obj, actor=request.user, **serializer.validated_data)
        return Response(self.get_serializer_class_for_read()(obj, context=self.get_serializer_context()).data)

    def partial_update(self, request, *args, **kwargs):
        kwargs["partial"] = True
        return self.update(request, *args, **kwargs)

    def destroy(self, request, *args, **kwargs):
        service = self.get_service("archive_service")
        obj = self.get_object()
        reason = request.data.get("reason", "") if hasattr(request, "data") and isinstance(request.data, dict) else ""
        with transaction.atomic():  # the answer is part of the change: a failure writes nothing
            result = service(obj, actor=request.user, reason=str(reason)[:500])
            if self.archive_deletes:
                # A part of another record (a prefix, a rate slot, a binding) is really deleted
                # (the audit keeps it): nothing to show.
                return Response(status=status.HTTP_204_NO_CONTENT)
            return Response(self.get_serializer_class_for_read()(result, context=self.get_serializer_context()).data)

    def get_serializer_class_for_read(self):
        return self.serializer_class
