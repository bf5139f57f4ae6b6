"""A response never carries what the caller may not view (issue 11).

An endpoint checks one permission — `crm.view_customer` for `/customers/` — but its serializer
may embed other records: a customer's billing accounts with their balances, its contacts and
addresses. The caller may lack the permission to view those (and get 403 on `/accounts/`), so
the API would leak through the nesting what it refuses directly.

One mechanism for every endpoint: the JSON renderer (`JSONRenderer`, the API's default) walks
each response built by a serializer (`serializer.data` keeps its serializer) along the
serializer's fields, and drops every nested field whose records the caller may not view
(`<app>.view_<model>`). A nested field is:
- a nested serializer (`FooSerializer(many=True)`) — its records are `Meta.model`;
- a `SerializerMethodField` annotated with `@extend_schema_field(FooSerializer(...))`;
- unless listed in the parent serializer's `Meta.nested_parts`: records that are part of the
  parent's own data (an invoice's lines), shown to whoever may view the parent.
A nested serializer without a model is named in `Meta.nested_models = {"field": "app.Model"}`.
The OpenAPI schema lists such fields as optional (`tarifa.web.schema`).
`tests/test_api_nesting.py` walks every endpoint as a user holding only its view permission.
"""

from django.apps import apps
from rest_framework import renderers, serializers
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList


def _as_serializer(value):
    if isinstance(value, type) and issubclass(value, serializers.BaseSerializer):
        value = value()
    if isinstance(value, serializers.ListSerializer):
        value = value.child
    return value if isinstance(value, serializers.BaseSerializer) else None


def nested_fields(serializer) -> list[tuple[str, type | None, object]]:
    """[(field name, model of its records or None, inner serializer)] for every readable nested
    field of `serializer` that is not one of its `Meta.nested_parts`."""
    meta = getattr(serializer, "Meta", None)
    parts = set(getattr(meta, "nested_parts", ()))
    declared = getattr(meta, "nested_models", {})
    found = []
    for name, field in serializer.fields.items():
        if field.write_only or name in parts:
            continue
        inner = _as_serializer(field)
        if inner is None and isinstance(field, serializers.SerializerMethodField):
            method = getattr(type(serializer), field.method_name or f"get_{name}", None)
            annotation = getattr(method, "_spectacular_annotation", None) or {}
            inner = _as_serializer(annotation.get("field") if isinstance(annotation, dict) else None)
        if inner is None:
            continue
        model = getattr(getattr(inner, "Meta", None), "model", None)
        if name in declared:
            model = apps.get_model(declared[name])
        found.append((name, model, inner))
    return found


def view_permission(model) -> str:
    return f"{model._meta.app_label}.view_{model._meta.model_name}"


def guarded_names(serializer) -> set[str]:
    """The fields a response may omit for a caller without the view permission of their records."""
    return {name for name, model, _inner in nested_fields(serializer) if model is not None}


def prune(data, serializer, may_view, memo=None):
    """`data` (as `serializer` made it) without the nested fields whose records the caller may
    not view; `may_view(model) -> bool`."""
    memo = {} if memo is None else memo
    if isinstance(serializer, serializers.ListSerializer):
        return [prune(item, serializer.child, may_view, memo) for item in data] if isinstance(data, list) else data
    if not isinstance(data, dict):
        return data
    if id(serializer) not in memo:
        memo[id(serializer)] = (serializer, nested_fields(serializer))  # the serializer kept: ids stay unique
    for name, model, inner in memo[id(serializer)][1]:
        if name not in data:
            continue
        if model is not None and not may_view(model):
            del data[name]
        elif isinstance(data[name], list):
            data[name] = [prune(item, inner, may_view, memo) for item in data[name]]
        elif isinstance(data[name], dict):
            data[name] = prune(data[name], inner, may_view, memo)
    return data


def prune_response(data, user):
    """Prune every serializer-made part of a response body (also inside a pagination envelope)."""
    if user is None or not getattr(user, "is_authenticated", False) or getattr(user, "is_superuser", False):
        return data
    cache: dict = {}

    def may_view(model):
        if model not in cache:
            cache[model] = user.has_perm(view_permission(model))
        return cache[model]

    if isinstance(data, (ReturnDict, ReturnList)) and getattr(data, "serializer", None) is not None:
        return prune(data, data.serializer, may_view)
    if isinstance(data, dict):
        for key, value in list(data.items()):
            if isinstance(value, (ReturnDict, ReturnList)) and getattr(value, "serializer", None) is not None:
                data[key] = prune(value, value.serializer, may_view)
    return data


class JSONRenderer(renderers.JSONRenderer):
    """DRF's JSON renderer, pruning nested records the caller may not view (see module doc)."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        request = (renderer_context or {}).get("request")
        if request is not None and data is not None:
            data = prune_response(data, getattr(request, "user", None))
        return super().render(data, accepted_media_type, renderer_context)
