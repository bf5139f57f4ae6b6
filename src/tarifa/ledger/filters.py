"""Filters for transfers, shared by the screens and the API."""

import uuid

import django_filters
from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .models import BillingAccount, Transfer

DATE = forms.DateInput(attrs={"type": "date"})


def _either_side(queryset, ledger_ids):
    return queryset.filter(Q(debit_account_id__in=ledger_ids) | Q(credit_account_id__in=ledger_ids))


class TransferFilter(django_filters.FilterSet):
    account = django_filters.CharFilter(method="filter_account", label=_("Account"),
                                        help_text=_("Either side: a ledger account id or code, or a billing account "
                                                    "number (e.g. HQ-A0000001 or cash:DESK1)."))
    billing_account = django_filters.UUIDFilter(method="filter_billing_account", label=_("Billing account id"))
    date_from = django_filters.DateFilter(field_name="created_at", lookup_expr="date__gte", label=_("From"),
                                          widget=DATE)
    date_to = django_filters.DateFilter(field_name="created_at", lookup_expr="date__lte", label=_("To"), widget=DATE)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    tag = django_filters.CharFilter(method="filter_tag", label=_("Tag"),
                                    help_text=_("name:value, e.g. channel:cash (or just a name)."))

    class Meta:
        model = Transfer
        fields = ["kind", "currency", "reference_type", "reference_id", "idempotency_key"]

    def filter_account(self, queryset, name, value):
        value = value.strip()
        try:
            return _either_side(queryset, [uuid.UUID(value)])
        except ValueError:
            pass
        from .models import LedgerAccount

        ledger = LedgerAccount.objects.filter(Q(code=value) | Q(billing_account__number__iexact=value)) \
            .values("pk")
        return _either_side(queryset, ledger)

    def filter_billing_account(self, queryset, name, value):
        return _either_side(queryset, BillingAccount.objects.filter(pk=value).values("ledger_account_id"))

    def filter_tag(self, queryset, name, value):
        tag, sep, tag_value = value.strip().partition(":")
        if not sep:
            return queryset.filter(tags__has_key=tag)
        return queryset.filter(tags__contains={tag: tag_value})


class TransferScreenFilter(TransferFilter):
    """The screen's filter form: the fields an operator types, not the API's ids and instants."""

    class Meta(TransferFilter.Meta):
        fields = ["kind", "currency"]

    @classmethod
    def get_filters(cls):
        filters = super().get_filters()
        for name in ("billing_account", "created_after", "created_before", "reference_type", "reference_id",
                     "idempotency_key"):
            filters.pop(name, None)
        return filters
