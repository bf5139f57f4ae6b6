"""Reads of subscriptions that other apps may use."""

import datetime as dt

from .models import IdentifierAssignment, Subscription


def owner_of_identifier(value: str, at: dt.datetime) -> Subscription | None:
    """The subscription that held identifier `value` (any kind) at instant `at`, or None."""
    row = (IdentifierAssignment.objects.filter(value=value, valid_from__lte=at)
           .exclude(valid_until__lte=at).select_related("subscription").order_by("-valid_from").first())
    return row.subscription if row else None


def tariff_on(subscription: Subscription, day: dt.date):
    """The tariff a subscription was under on `day` (its tariff periods), or None."""
    period = (subscription.tariff_periods.filter(valid_from__lte=day).exclude(valid_until__lte=day)
              .select_related("tariff").order_by("-valid_from").first())
    return period.tariff if period else None
