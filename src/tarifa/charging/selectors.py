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


# --- Rating groups, as the Diameter server reads them (cached, refreshed every REFRESH seconds) ----------------

RATING_GROUPS_REFRESH = 30.0
_rating_groups: dict = {"at": None, "map": {}}


def rating_groups() -> dict[str, str]:
    """{"10": "data", "s400": "vod"}: live Rating-Group numbers, and Service-Identifiers prefixed `s`,
    to usage type codes. Read at most every RATING_GROUPS_REFRESH seconds (a change made in this
    process is seen at once; another process, the Diameter server, within the refresh)."""
    import time

    from .models import RatingGroup

    at = _rating_groups["at"]
    if at is not None and time.monotonic() - at < RATING_GROUPS_REFRESH:
        return _rating_groups["map"]
    mapping = {}
    for kind, number, usage_type in (RatingGroup.objects.filter(archived_at__isnull=True)
                                     .values_list("kind", "number", "usage_type_id")):
        prefix = "s" if kind == RatingGroup.Kind.SERVICE_IDENTIFIER else ""
        mapping[f"{prefix}{number}"] = usage_type
    _rating_groups.update(at=time.monotonic(), map=mapping)
    return mapping


def forget_rating_groups() -> None:
    _rating_groups["at"] = None
