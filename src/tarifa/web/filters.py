"""API list filters, ordering and query parameters: one set of rules for every app.

Named in REST_FRAMEWORK["DEFAULT_FILTER_BACKENDS"], so every viewset gets them:

- A **reference filter** (a foreign key in `filterset_fields`, e.g. `billing_account`) takes the
  record's id *or* its human number/code (`?billing_account=HQ-A0000001`). A `fk__number` or
  `fk__code` entry also gives the plain `fk` filter.
- **Unknown query parameters** on a list are refused: 400 `validation_failed`, naming them.
  Known are the filters, `search` (with `search_fields`), `ordering`, the pagination's own
  (`page`, `page_size`, `limit`, `offset`) and a view's `extra_query_params`.
- **Invalid values** are refused by name: a filter's (django-filter's form), an `ordering` that
  names no sortable field, a page number or size that is not a positive whole number.
"""

import uuid

import django_filters
from django import forms
from django.db import models
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import exceptions
from rest_framework.filters import OrderingFilter, SearchFilter

# Fields that hold a record's human-facing identity, tried in this order.
HUMAN_FIELDS = ("number", "code", "username", "serial")


def human_field(model) -> str | None:
    names = {f.name for f in model._meta.get_fields()}
    return next((name for name in HUMAN_FIELDS if name in names), None)


class ReferenceFilter(django_filters.Filter):
    """A reference to another record: its id (UUID) or its human number/code."""

    field_class = forms.CharField

    def __init__(self, *args, related_model=None, **kwargs):
        self.related_model = related_model
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if value in (None, ""):
            return qs
        value = value.strip()
        try:
            return qs.filter(**{self.field_name: uuid.UUID(value)})
        except ValueError:
            pass
        human = human_field(self.related_model) if self.related_model is not None else None
        if human is None:
            raise exceptions.ValidationError({self.field_name: [_("“%(value)s” is not a valid id.") % {"value": value}]})
        return qs.filter(**{f"{self.field_name}__{human}__iexact": value})


class FilterSet(django_filters.FilterSet):
    """Base of every API filterset: foreign keys become ReferenceFilters."""

    @classmethod
    def filter_for_field(cls, field, field_name, lookup_expr="exact"):
        if isinstance(field, models.ForeignKey) and lookup_expr == "exact":
            label = getattr(field, "verbose_name", field_name)
            human = human_field(field.related_model)
            help_text = (_("Id or %(field)s of the %(model)s.") % {"field": human, "model": field.related_model._meta.verbose_name}
                         if human else _("Id of the %(model)s.") % {"model": field.related_model._meta.verbose_name})
            return ReferenceFilter(field_name=field_name, related_model=field.related_model, label=label,
                                   help_text=help_text)
        return super().filter_for_field(field, field_name, lookup_expr)


def _with_references(fields):
    """`billing_account__number` also gives `billing_account` (which takes the id or the number)."""
    if isinstance(fields, dict):
        extra = {name.rsplit("__", 1)[0]: ["exact"] for name in fields
                 if name.count("__") == 1 and name.rsplit("__", 1)[1] in HUMAN_FIELDS}
        return {**extra, **fields}
    fields = list(fields)
    extra = [name.rsplit("__", 1)[0] for name in fields
             if name.count("__") == 1 and name.rsplit("__", 1)[1] in HUMAN_FIELDS]
    return [*dict.fromkeys([*fields, *(e for e in extra if e not in fields)])]


class FilterBackend(DjangoFilterBackend):
    filterset_base = FilterSet

    def get_filterset_class(self, view, queryset=None):
        if getattr(view, "filterset_class", None) is None and getattr(view, "filterset_fields", None) and queryset is not None:
            meta = type("Meta", (), {"model": queryset.model, "fields": _with_references(view.filterset_fields)})
            return type("AutoFilterSet", (self.filterset_base,), {"Meta": meta})
        return super().get_filterset_class(view, queryset)

    def filter_queryset(self, request, queryset, view):
        if getattr(view, "action", None) == "list":
            check_query_params(request, view, self.get_filterset_class(view, queryset))
        return super().filter_queryset(request, queryset, view)


def known_query_params(view, filterset_class) -> set[str]:
    known = set(getattr(view, "extra_query_params", ()))
    if filterset_class is not None:
        known |= set(filterset_class.base_filters)
    for backend in getattr(view, "filter_backends", ()):
        if issubclass(backend, SearchFilter) and getattr(view, "search_fields", None):
            known.add(backend.search_param)
        if issubclass(backend, OrderingFilter):
            known.add(backend.ordering_param)
    paginator = getattr(view, "paginator", None)
    if paginator is not None:
        known |= set(getattr(paginator, "query_params", ()))
    return known


def check_query_params(request, view, filterset_class) -> None:
    unknown = sorted(set(request.query_params) - known_query_params(view, filterset_class))
    if unknown:
        raise exceptions.ValidationError({name: [_("Unknown query parameter.")] for name in unknown})


class Ordering(OrderingFilter):
    """`?ordering=` that names no sortable field is an error, not silently ignored."""

    def remove_invalid_fields(self, queryset, fields, view, request):
        valid = super().remove_invalid_fields(queryset, fields, view, request)
        invalid = [term for term in fields if term not in valid]
        if invalid:
            allowed = sorted(name for name, _label in self.get_valid_fields(queryset, view, {"request": request}))
            raise exceptions.ValidationError({self.ordering_param: [
                _("Cannot sort by %(fields)s. Sortable: %(allowed)s.") % {"fields": ", ".join(invalid),
                                                                          "allowed": ", ".join(allowed)}]})
        return valid
