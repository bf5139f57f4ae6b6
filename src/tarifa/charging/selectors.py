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
