"""A response never carries what the caller may not view (issue 11, High 4).

Every router endpoint is opened (list and detail) as a user holding only that endpoint's view
permission; no nested record of a type the user may not view appears in the answer — checked
along the serializer's declared nesting and, independently, by looking up every nested `id`
among the records of the types the user may not view.
"""

import uuid

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import models
from django.urls import reverse
from rest_framework.test import APIClient

import tarifa.urls  # noqa: F401  (importing the URLconf registers every app's endpoints)
from tarifa.testing.demo import demo_loaded
from tarifa.web import api
from tarifa.web.api_nesting import nested_fields, view_permission

ENDPOINTS = sorted((basename, viewset) for _prefix, viewset, basename in api.router.registry
                   if getattr(viewset, "queryset", None) is not None)


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    with demo_loaded(django_db_blocker):
        yield


@pytest.fixture
def as_user(demo, db):
    """as_user(*perms) -> an API client of a user holding exactly these permissions."""
    role_model = apps.get_model("identity", "Role")
    made = {"n": 0}

    def make(*perms):
        made["n"] += 1
        role = role_model.objects.create(name=f"nesting role {made['n']}")
        for name in perms:
            app, codename = name.split(".")
            role.permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
        user = get_user_model().objects.create(username=f"nesting-user-{made['n']}")
        user.roles.add(role)
        client = APIClient()
        client.force_authenticate(user)
        client.user = get_user_model().objects.get(pk=user.pk)
        return client

    return make


def _uuid_models():
    return [m for m in apps.get_models()
            if m._meta.app_label in {c.label for c in apps.get_app_configs() if c.name.startswith("tarifa.")}
            and isinstance(m._meta.pk, models.UUIDField)]


def _nested_ids(value, depth=0) -> set[str]:
    """The `id` of every object nested inside an item (not the item's own)."""
    found = set()
    if isinstance(value, dict):
        if depth > 0 and isinstance(value.get("id"), str):
            found.add(value["id"])
        for item in value.values():
            found |= _nested_ids(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            found |= _nested_ids(item, depth + 1)
    return found


def _check(item: dict, serializer, user, allowed: set) -> None:
    for name, model, inner in nested_fields(serializer):
        if model is not None and model not in allowed and not user.has_perm(view_permission(model)):
            assert name not in item, f"{name} ({model._meta.label}) answered without {view_permission(model)}"
        elif isinstance(item.get(name), dict):
            _check(item[name], inner, user, allowed)
        elif isinstance(item.get(name), list):
            for sub in item[name]:
                if isinstance(sub, dict):
                    _check(sub, inner, user, allowed)
    ids = {i for i in _nested_ids(item) if _is_uuid(i)}
    if ids:
        for model in _uuid_models():
            if model in allowed or user.has_perm(view_permission(model)):
                continue
            leaked = model._base_manager.filter(pk__in=ids).values_list("pk", flat=True)[:3]
            assert not leaked, f"nested {model._meta.label} {list(leaked)} answered without {view_permission(model)}"


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
        return True
    except ValueError:
        return False


def _parts(serializer) -> set:
    meta = getattr(serializer, "Meta", None)
    parts = set()
    for name in getattr(meta, "nested_parts", ()):
        field = serializer.fields.get(name)
        inner = getattr(field, "child", field)
        model = getattr(getattr(inner, "Meta", None), "model", None)
        if model is None and hasattr(serializer, f"get_{name}"):
            annotation = getattr(getattr(type(serializer), f"get_{name}"), "_spectacular_annotation", {}) or {}
            target = annotation.get("field")
            model = getattr(getattr(getattr(target, "child", target), "Meta", None), "model", None)
        if model is not None:
            parts.add(model)
    return parts


@pytest.mark.parametrize("basename,viewset", ENDPOINTS, ids=[b for b, _v in ENDPOINTS])
def test_no_nested_record_beyond_the_callers_view_permission(basename, viewset, as_user):
    model = viewset.queryset.model
    client = as_user(view_permission(model))
    serializer = viewset.serializer_class()
    allowed = {model} | _parts(serializer)

    listing = client.get(reverse(f"api:{basename}-list"), {"page_size": 25})
    assert listing.status_code == 200, listing.content[:300]
    body = listing.json()
    items = body["results"] if isinstance(body, dict) and "results" in body else body
    assert items, f"no {basename} in the demo data to check"
    if isinstance(items[0], dict) and items[0].get("id"):
        detail = client.get(reverse(f"api:{basename}-detail", args=[items[0]["id"]]))
        assert detail.status_code == 200, detail.content[:300]
        items = [*items, detail.json()]
    for item in items:
        _check(item, serializer, client.user, allowed)


def test_every_nested_serializer_names_the_records_it_shows():
    """A nested serializer without a model could not be checked: it must declare one
    (`Meta.nested_models`) or be a part of its parent (`Meta.nested_parts`)."""
    unknown = [f"{basename}.{name}" for basename, viewset in ENDPOINTS
               for name, model, _inner in nested_fields(viewset.serializer_class()) if model is None]
    assert not unknown


def test_customers_embed_accounts_contacts_and_addresses_only_for_those_who_may_view_them(as_user):
    viewer = as_user("crm.view_customer")
    listed = viewer.get("/api/v1/customers/").json()["results"]
    customer = next(c for c in listed if c["number"])
    detail = viewer.get(f"/api/v1/customers/{customer['id']}/").json()

    assert viewer.get("/api/v1/accounts/").status_code == 403
    for answer in (*listed, detail):
        assert not {"billing_accounts", "contacts", "addresses"} & set(answer), sorted(answer)
    assert detail["number"] == customer["number"]

    clerk = as_user("crm.view_customer", "ledger.view_billingaccount", "crm.view_contact")
    full = clerk.get(f"/api/v1/customers/{customer['id']}/").json()
    assert "billing_accounts" in full and "contacts" in full and "addresses" not in full
    assert any("balance" in a for a in full["billing_accounts"]) or full["billing_accounts"] == []
