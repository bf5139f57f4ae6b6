import django_filters
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.web.filters import FilterSet

from .models import Ticket


class TicketFilter(FilterSet):
    """`?customer=` (id or number), `type=` (code), `step=` (code), `assignee=` (username or "me"),
    `overdue=true`, `open=true`, `watched=true` (tickets the caller watches; `false`: those they do not)."""

    type = django_filters.CharFilter(field_name="ticket_type__code")
    step = django_filters.CharFilter(field_name="step__code")
    assignee = django_filters.CharFilter(method="filter_assignee")
    overdue = django_filters.BooleanFilter(method="filter_overdue")
    open = django_filters.BooleanFilter(field_name="closed_at", lookup_expr="isnull")
    watched = django_filters.BooleanFilter(method="filter_watched", label=_("Watched by me"))

    class Meta:
        model = Ticket
        fields = ["customer", "priority", "subscription"]

    def filter_assignee(self, queryset, name, value):
        if value == "me":
            user = getattr(self.request, "user", None)
            return queryset.filter(assignee=user) if user is not None and user.pk else queryset.none()
        return queryset.filter(assignee__username=value)

    def filter_overdue(self, queryset, name, value):
        cond = {"closed_at__isnull": True, "due_at__lt": now()}
        return queryset.filter(**cond) if value else queryset.exclude(**cond)

    def filter_watched(self, queryset, name, value):
        user = getattr(self.request, "user", None)
        if user is None or not user.pk:
            return queryset.none() if value else queryset
        return queryset.filter(watchers=user) if value else queryset.exclude(watchers=user)


class TicketScreenFilter(django_filters.FilterSet):
    """The ticket list screen's filters: type, step, priority, assignee and "watched by me"."""

    watched = django_filters.BooleanFilter(method="filter_watched", label=_("Watched by me"))

    class Meta:
        model = Ticket
        fields = ["ticket_type", "step", "priority", "assignee"]

    filter_watched = TicketFilter.filter_watched
