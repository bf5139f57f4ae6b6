"""Reads about serving other branches' subscribers (the screens, the API, the demo harness)."""

from django.db.models import Count, Sum

from .models import ForeignPayment, ReceivedPayment


def pending_for(account_number: str):
    """Foreign payments taken here for `account_number` not yet applied by its owner."""
    return ForeignPayment.objects.filter(account_number=str(account_number).strip().upper(),
                                         status=ForeignPayment.Status.PENDING).order_by("created_at")


def totals_by_branch() -> dict:
    """{owner branch: {status: {currency: (count, amount)}}}: what this branch took for each other branch."""
    out: dict = {}
    for row in (ForeignPayment.objects.values("owner_branch", "status", "currency")
                .annotate(n=Count("id"), total=Sum("amount")).order_by("owner_branch", "status", "currency")):
        out.setdefault(row["owner_branch"], {}).setdefault(row["status"], {})[row["currency"]] = (row["n"], row["total"])
    return out


def received_by_branch() -> dict:
    """{sender: {currency: (count, amount)}}: what this branch applied from each other branch."""
    out: dict = {}
    for row in (ReceivedPayment.objects.values("sender", "currency").annotate(n=Count("id"), total=Sum("amount"))
                .order_by("sender", "currency")):
        out.setdefault(row["sender"], {})[row["currency"]] = (row["n"], row["total"])
    return out
