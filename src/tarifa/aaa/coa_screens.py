"""Operator screens of the CoA side (imported by screens.py): the CoA/DM log, reconciliation runs,
NAS health, a subscriber's session history with a traffic graph, and the Disconnect button of an
online session."""

import datetime as dt

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.shortcuts import get_object_or_404, render
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from tarifa.crm.panels import register_panel
from tarifa.kernel.clock import now
from tarifa.subscriptions.models import Subscription
from tarifa.web.registry import Action, ModelScreens, Page, register, register_page
from tarifa.web.views import PermissionRequiredView

from . import coa_services, selectors
from .charts import traffic_svg
from .coa_models import CoaAttempt, ReconciliationRun
from .models import FinishedSession, Nas, Session

AREA = "Network"
HISTORY_DAYS = 30


def _disconnect(session, *, actor):
    coa_services.disconnect_session(session, actor=actor)
    return session


DISCONNECT = Action(
    "disconnect", _("Disconnect"), "aaa.change_session", _disconnect, danger=True,
    confirm=_("A Disconnect-Request is sent to the session's NAS now (retried when it does not answer). "
              "The subscriber is logged off and may log in again if their subscription allows it; the "
              "session ends here when the NAS sends its Accounting Stop. The outcome is in the CoA/DM log."))


register(ModelScreens(
    model=CoaAttempt, area=AREA, menu_label=_("CoA/DM log"),
    columns=["at", "kind", "reason", "login", "nas", "attempt", "outcome", "error_cause", "elapsed_ms"],
    detail_fields=["at", "kind", "reason", "login", "acct_session_id", "subscription", "nas", "attempt", "outcome",
                   "error_cause", "detail", "elapsed_ms", "attributes", "granted", "actor"],
    filterset_fields=["kind", "reason", "outcome", "nas"], search_fields=["login", "acct_session_id"],
    ordering=["-at"], formats={"error_cause": lambda a: a.error_cause_text},
))


register(ModelScreens(
    model=ReconciliationRun, area=AREA, menu_label=_("Reconciliation runs"),
    columns=["started_at", "trigger", "checked", "differences", "disconnected", "changed", "failed"],
    detail_fields=["started_at", "finished_at", "trigger", "checked", "differences", "disconnected", "changed",
                   "failed"],
    detail_template="aaa/reconciliationrun_detail.html", ordering=["-started_at"],
))


# -- NAS health --------------------------------------------------------------------------------

def nas_health() -> list[dict]:
    """Per NAS: last heard from, open sessions, the last CoA/DM outcome and the last day's failures."""
    day_ago = now() - dt.timedelta(days=1)
    sessions = dict(Session.objects.values("nas").annotate(n=Count("id")).values_list("nas", "n"))
    failures = dict(CoaAttempt.objects.filter(at__gte=day_ago).exclude(outcome=CoaAttempt.Outcome.ACK)
                    .values("nas").annotate(n=Count("id")).values_list("nas", "n"))
    sent = dict(CoaAttempt.objects.filter(at__gte=day_ago).values("nas").annotate(n=Count("id"))
                .values_list("nas", "n"))
    last = {}
    for row in CoaAttempt.objects.order_by("nas_id", "-at").distinct("nas_id"):
        last[row.nas_id] = row
    rows = []
    for nas in Nas.objects.order_by("name"):
        rows.append({"nas": nas, "sessions": sessions.get(nas.pk, 0), "last": last.get(nas.pk),
                     "sent": sent.get(nas.pk, 0), "failures": failures.get(nas.pk, 0),
                     "silent": nas.last_seen is None or nas.last_seen < now() - dt.timedelta(minutes=15)})
    return rows


class NasHealthView(PermissionRequiredView):
    permission = "aaa.view_nas"

    def get(self, request):
        return render(request, "aaa/nas_health.html", {"rows": nas_health()})


register_page(Page("aaa:nas_health", _("NAS health"), AREA, "aaa.view_nas"))


# -- a subscriber's sessions ---------------------------------------------------------------------

def daily_traffic(subscription, *, days: int = HISTORY_DAYS) -> list[tuple[dt.date, int, int]]:
    """(day, download, upload) of the subscription's sessions that ended in the last `days` days, and
    of its open sessions (counted on the day they started), every day present."""
    end = now()
    start = end - dt.timedelta(days=days - 1)
    totals: dict[dt.date, list[int]] = {}
    finished = (FinishedSession.objects.filter(subscription=subscription, stopped_at__gte=start)
                .annotate(day=TruncDate("stopped_at")).values("day")
                .annotate(down=Sum("bytes_out"), up=Sum("bytes_in")))
    live = (Session.objects.filter(subscription=subscription).annotate(day=TruncDate("started_at")).values("day")
            .annotate(down=Sum("bytes_out"), up=Sum("bytes_in")))
    for row in [*finished, *live]:
        t = totals.setdefault(row["day"], [0, 0])
        t[0] += row["down"] or 0
        t[1] += row["up"] or 0
    first = min([start.date(), *totals])
    out = []
    day = first
    while day <= end.date():
        down, up = totals.get(day, (0, 0))
        out.append((day, down, up))
        day += dt.timedelta(days=1)
    return out


def history_context(request, subscription, *, limit: int = 20) -> dict:
    days = daily_traffic(subscription)
    total_down = sum(d for _, d, _ in days)
    total_up = sum(u for _, _, u in days)
    return {
        "subscription": subscription,
        "open_sessions": Session.objects.filter(subscription=subscription).select_related("nas").order_by("-started_at"),
        "finished": FinishedSession.objects.filter(subscription=subscription).select_related("nas")
        .order_by("-stopped_at")[:limit],
        "chart": mark_safe(traffic_svg(days, title=str(_("Traffic per day, last %(n)d days") % {"n": len(days)})))  # noqa: S308 — built from numbers and escaped text
        if (total_down or total_up) else "",
        "total_down": total_down, "total_up": total_up, "days": len(days),
        "coa": CoaAttempt.objects.filter(subscription_id=subscription.pk).select_related("nas").order_by("-at")[:10],
        "auth": selectors.recent_attempts(subscription, limit=10),
        "can_disconnect": request.user.has_perm("aaa.change_session"),
        "disconnect_action": DISCONNECT,
    }


class SubscriptionSessionsView(PermissionRequiredView):
    permission = "aaa.view_finishedsession"

    def get(self, request, pk):
        subscription = get_object_or_404(Subscription, pk=pk)
        return render(request, "aaa/subscription_sessions.html",
                      history_context(request, subscription, limit=200))


register_panel(_("Network sessions"), "aaa/subscription_panel.html", context_func=history_context,
               permission="aaa.view_finishedsession", key="aaa-sessions", page="subscription", order=20,
               show=lambda subscription: bool(subscription.login))
