"""The global search in the top bar and at GET /api/v1/search/?q=: one box that finds a customer by
name, customer/account/invoice/payment/subscription number, phone number in any notation, login,
e-mail or document number; results grouped by kind, each linking to its record.

Apps declare what they can find in `<app>/finders.py` (discovered at first use; web knows no app):

    register(Finder("customers", _("Customers"), "crm.view_customer", find=lambda query, limit: ...,
                    detail=lambda customer: customer.number))

A kind is searched only for a user holding its permission, and a record the user's screen would not
show (the screen's own `queryset` restriction) is left out: a result the user may not view is never
shown, neither in the page nor in the API.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from django.apps import apps
from django.shortcuts import redirect, render
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from . import registry
from .views import PermissionRequiredView

MAX_PER_KIND = 10
MIN_QUERY = 2


@dataclass
class Finder:
    kind: str  # e.g. "customers"
    label: str  # e.g. "Customers"
    permission: str  # the view permission of the records found
    find: Callable  # find(query, limit) -> iterable of model instances (best first)
    detail: Callable | None = None  # detail(obj) -> str, the line under the record's name
    order: int = 50


_finders: dict[str, Finder] = {}
_discovered = False


def register(finder: Finder) -> Finder:
    _finders[finder.kind] = finder
    return finder


def finders() -> list[Finder]:
    global _discovered
    if not _discovered:
        for config in apps.get_app_configs():
            if config.name.startswith("tarifa."):
                try:
                    importlib.import_module(f"{config.name}.finders")
                except ModuleNotFoundError as exc:
                    if exc.name != f"{config.name}.finders":
                        raise
        _discovered = True
    return sorted(_finders.values(), key=lambda f: (f.order, f.kind))


class _Request:
    """What a screen's `queryset(request)` reads, for callers without an HTTP request."""

    def __init__(self, user):
        self.user = user


def search(user, query: str, *, request=None, limit: int = MAX_PER_KIND) -> list[dict]:
    """[{"kind", "label", "results": [{"id", "text", "detail", "url"}]}] of the kinds with results."""
    query = (query or "").strip()
    if len(query) < MIN_QUERY or user is None or not user.is_authenticated:
        return []
    request = request or _Request(user)
    groups = []
    for finder in finders():
        if not user.has_perm(finder.permission):
            continue
        found = list(finder.find(query, limit))
        if found:
            screens = registry.screens_for(found[0])
            if screens is not None and screens.queryset is not None:  # the screen's own restriction
                allowed = set(screens.get_queryset(request).filter(pk__in=[o.pk for o in found])
                              .values_list("pk", flat=True))
                found = [o for o in found if o.pk in allowed]
        results = []
        for obj in found[:limit]:
            results.append({"id": str(obj.pk), "text": str(obj),
                            "detail": finder.detail(obj) if finder.detail else "",
                            "url": registry.url_for(obj) or ""})
        if results:
            groups.append({"kind": finder.kind, "label": str(finder.label), "results": results})
    return groups


class SearchView(PermissionRequiredView):
    """The results page of the top bar's search box (any logged-in user; results by permission)."""

    permission = None

    def get(self, request):
        query = request.GET.get("q", "").strip()
        groups = search(request.user, query, request=request)
        total = sum(len(g["results"]) for g in groups)
        if total == 1 and request.GET.get("go") != "0":  # one hit: straight to the record
            return redirect(groups[0]["results"][0]["url"])
        return render(request, "web/search.html", {"global_query": query, "groups": groups, "total": total,
                                                   "too_short": 0 < len(query) < MIN_QUERY})


class _ResultSerializer(serializers.Serializer):
    id = serializers.CharField()
    text = serializers.CharField()
    detail = serializers.CharField()
    url = serializers.CharField()


class _GroupSerializer(serializers.Serializer):
    kind = serializers.CharField()
    label = serializers.CharField()
    results = _ResultSerializer(many=True)


class _SearchResponseSerializer(serializers.Serializer):
    query = serializers.CharField()
    groups = _GroupSerializer(many=True)


class SearchAPIView(APIView):
    """GET /api/v1/search/?q=…: the global search, results grouped by kind, only what the caller may view."""

    required_permission = None  # any authenticated caller; each kind needs its view permission

    @extend_schema(parameters=[OpenApiParameter("q", str, description="what to find (2 characters or more)")],
                   responses=_SearchResponseSerializer)
    def get(self, request):
        query = request.query_params.get("q", "").strip()
        return Response({"query": query, "groups": search(request.user, query, request=request)})
