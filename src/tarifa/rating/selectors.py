"""Reads of rating that other apps (billing, reports, portal) may use."""

import datetime as dt
from decimal import Decimal

from django.db.models import Count, Sum

from .models import RatedUsage, UsageType

_measures: dict[str, str] = {}


def measure_of(usage_type: str) -> str:
    """time, bytes or count for a usage type code (cached; unknown types count items)."""
    found = _measures.get(usage_type)
    if found is None:
        row = UsageType.objects.filter(code=usage_type).values_list("measure", flat=True).first()
        found = row or "count"
        if row is not None:
            _measures[usage_type] = found
    return found


def usage_types() -> dict[str, UsageType]:
    return {t.code: t for t in UsageType.objects.filter(archived_at__isnull=True)}


def postpaid_usage(*, billing_account, start: dt.datetime, end: dt.datetime):
    """Rated usage of a postpaid account in [start, end): what its invoice charges."""
    return RatedUsage.objects.filter(billing_account=billing_account, payment_mode="postpaid",
                                     start_time__gte=start, start_time__lt=end)


def usage_totals(*, billing_account, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Per usage type: records, usage (base units), free units and cost, for an account and period."""
    rows = (RatedUsage.objects.filter(billing_account=billing_account, start_time__gte=start, start_time__lt=end)
            .values("usage_type", "currency").annotate(records=Count("id"), usage=Sum("usage"),
                                                       free_units=Sum("free_units"), cost=Sum("cost"))
            .order_by("usage_type"))
    return [{**r, "cost": r["cost"] or Decimal(0)} for r in rows]
