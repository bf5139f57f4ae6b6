"""Filters shared by the customer list screen and the API."""

import django_filters
from django.utils.translation import gettext_lazy as _

from . import selectors
from .models import Customer, TaxScheme


class CustomerFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=Customer.Kind.choices, label=_("Kind"))
    status = django_filters.ChoiceFilter(choices=Customer.Status.choices, label=_("Status"))
    tax_scheme = django_filters.ModelChoiceFilter(queryset=TaxScheme.objects.all(), to_field_name="code",
                                                  label=_("Tax scheme"))
    tags = django_filters.CharFilter(method="filter_tags", label=_("Tags"),
                                     help_text=_("Comma-separated; customers having all of them."))

    class Meta:
        model = Customer
        fields = ["kind", "status", "tax_scheme", "tags"]

    def filter_tags(self, queryset, name, value):
        from .services import normalize_tags

        tags = normalize_tags(value)
        return queryset.filter(tags__contains=tags) if tags else queryset


class CustomerApiFilter(CustomerFilter):
    search = django_filters.CharFilter(method="filter_search", label=_("Search"),
                                       help_text=_("Name, number, phone, e-mail, document number or tax id."))

    class Meta(CustomerFilter.Meta):
        fields = CustomerFilter.Meta.fields + ["search"]

    def filter_search(self, queryset, name, value):
        return selectors.search_customers(value, queryset)
