"""Reads of online charging other apps may use (the AAA server, billing, the portal)."""

from decimal import Decimal

from django.db.models import Sum

from .models import ChargingSession, Reservation


def open_sessions(billing_account):
    return ChargingSession.objects.filter(billing_account=billing_account, state=ChargingSession.State.OPEN)


def reserved(billing_account) -> Decimal:
    """Money held by the open reservations of an account."""
    return (Reservation.objects.filter(billing_account=billing_account, state=Reservation.State.OPEN)
            .aggregate(total=Sum("amount"))["total"] or Decimal(0))


def session_for_call(*, subscription_id, destination: str, start, tolerance_s: int = 5):
    """The closed online session of a call (semi-online matching of a CDR), or None."""
    import datetime as dt

    delta = dt.timedelta(seconds=tolerance_s)
    return (ChargingSession.objects.filter(subscription_id=subscription_id, destination=destination,
                                           started_at__gte=start - delta, started_at__lte=start + delta,
                                           kind=ChargingSession.Kind.SESSION)
            .exclude(state=ChargingSession.State.REFUSED).order_by("started_at").first())
