import django_filters

from tarifa.kernel.clock import now
from tarifa.web.filters import FilterSet

from .models import Ticket


class TicketFilter(FilterSet):
    """`?customer=` (id or number), `type=` (code), `step=` (code), `assignee=` (username or "me"),
    `overdue=true`, `open=true`."""

    type = django_filters.CharFilter(field_name="ticket_type__code")
    step = django_filters.CharFilter(field_name="step__code")
    assignee = django_filters.CharFilter(method="filter_assignee")
    overdue = django_filters.BooleanFilter(method="filter_overdue")
    open = django_filters.BooleanFilter(field_name="closed_at", lookup_expr="isnull")

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
