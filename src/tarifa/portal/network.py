"""What the portal shows of a line's network sessions (the aaa app) and of the devices at the
customer's premises (inventory, with the subscriptions app's rent/sale/installment agreements):
one place that turns the scoped querysets of `Scope` into rows for the pages and the API."""

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tarifa.subscriptions.device_models import DeviceAgreement

RECENT_SESSIONS = 10

HOW = {"installed": _("Installed"), "rent": _("Rented"), "sale": _("Sold"), "installments": _("In installments")}


def _session(s, *, open_: bool) -> dict:
    seconds = int((timezone.now() - s.started_at).total_seconds()) if open_ else s.session_time
    return {"id": s.pk, "started_at": s.started_at, "stopped_at": None if open_ else s.stopped_at,
            "duration": max(seconds, s.session_time if open_ else 0), "ip": s.framed_ip or "",
            "download": s.bytes_out, "upload": s.bytes_in}


def sessions(scope, subscription) -> dict:
    """{"current": [...], "recent": [...]} of one line (already looked up through the scope)."""
    current = scope.sessions().filter(subscription=subscription).order_by("-started_at")
    recent = scope.finished_sessions().filter(subscription=subscription).order_by("-stopped_at")[:RECENT_SESSIONS]
    return {"current": [_session(s, open_=True) for s in current],
            "recent": [_session(s, open_=False) for s in recent]}


def devices(scope, subscription=None) -> list[dict]:
    """The devices this user sees (of one line, if given), each with how the customer has it."""
    qs = scope.devices().order_by("item__name", "serial")
    found = list(qs)
    agreements = {}
    for a in (DeviceAgreement.objects.filter(device__in=[d.pk for d in found])
              .select_related("subscription").order_by("started_on", "created_at")):
        agreements[a.device_id] = a  # the latest wins
    rows = []
    for d in found:
        a = agreements.get(d.pk)
        if a is not None and a.mode == DeviceAgreement.Mode.RENT and a.ended_on is not None:
            a = None  # a rent that ended: the device is only installed now
        line = a.subscription if a is not None else None
        if subscription is not None and not (
                (line is not None and line.pk == subscription.pk)
                or d.subscription_ref in (str(subscription.pk), subscription.number)):
            continue
        how = a.mode if a is not None else "installed"
        left = max(a.installments - a.installments_charged, 0) if how == "installments" else None
        rows.append({"id": d.pk, "item": d.item.name, "serial": d.serial, "mac": d.mac, "how": how,
                     "how_display": HOW[how], "installments_left": left,
                     "installment_amount": a.installment_amount if how == "installments" else None,
                     "monthly": a.amount if how == "rent" else None, "currency": a.currency if a else "",
                     "subscription": line.number if line is not None else (
                         subscription.number if subscription is not None else "")})
    return rows
