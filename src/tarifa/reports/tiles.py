"""The dashboard's tiles (web.dashboard.widget): each shown to the users who may open its report,
each linking to it, with a small SVG chart where a trend says more than a number."""

import datetime as dt
from decimal import Decimal

from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from tarifa.kernel.clock import today
from tarifa.kernel.money import format_amount
from tarifa.web.dashboard import widget

from . import framework, svg
from .framework import CASH, FINANCE, OPERATIONS, SUBSCRIBERS


def _url(code, **params):
    from urllib.parse import urlencode

    return reverse(f"reports:{code}") + (("?" + urlencode(params)) if params else "")


def _amounts(per_currency: dict) -> str:
    return " · ".join(format_amount(v, cur) for cur, v in sorted(per_currency.items())) or format_amount(Decimal(0), None)


def _run(code, **params):
    report = framework.get(code)
    return framework.run(report, framework.parse_params(report, {k: str(v) for k, v in params.items()}))


@widget(CASH)
def payments_today(request):
    t = today()
    result = _run("payments-by-channel", **{"from": t - dt.timedelta(days=13), "to": t})
    todays = [r for r in result.rows if r["day"] == t]
    per: dict = {}
    for r in todays:
        per[r["currency"]] = per.get(r["currency"], Decimal(0)) + r["amount"]
    days = [t - dt.timedelta(days=n) for n in range(13, -1, -1)]
    by_day: dict = {d: Decimal(0) for d in days}
    for r in result.rows:
        by_day[r["day"]] = by_day.get(r["day"], Decimal(0)) + r["amount"]  # all currencies: the shape only
    chart = svg.chart([(d.isoformat(), "", by_day[d]) for d in days], kind="bar", width=200, height=48, small=True,
                      title=_("Payments, last 14 days"))
    return {"label": _("Payments today"), "value": sum(r["payments"] for r in todays), "detail": _amounts(per),
            "chart": mark_safe(chart), "url": _url("payments-by-channel", **{"from": t, "to": t})}


@widget(SUBSCRIBERS)
def subscribers(request):
    from django.db.models import Count

    from tarifa.subscriptions.models import Subscription

    counts = dict(Subscription.objects.filter(status__in=["active", "suspended"]).values_list("status")
                  .annotate(n=Count("id")))
    suspended = counts.get("suspended", 0)
    return {"label": _("Active subscribers"), "value": counts.get("active", 0),
            "detail": _("%(n)s suspended") % {"n": suspended}, "url": _url("subscribers")}


@widget(FINANCE)
def revenue_month(request):
    t = today()
    first = t.replace(day=1)
    last_first = (first - dt.timedelta(days=1)).replace(day=1)
    last_same = min(last_first + dt.timedelta(days=(t - first).days), first - dt.timedelta(days=1))
    now_rows = _run("revenue-by-day", **{"from": first, "to": t}).rows
    then_rows = _run("revenue-by-day", **{"from": last_first, "to": last_same}).rows
    per_now: dict = {}
    per_then: dict = {}
    for r in now_rows:
        per_now[r["currency"]] = per_now.get(r["currency"], Decimal(0)) + r["revenue"]
    for r in then_rows:
        per_then[r["currency"]] = per_then.get(r["currency"], Decimal(0)) + r["revenue"]
    series = {_("last month"): {}, _("this month"): {}}
    for name, rows in ((_("this month"), now_rows), (_("last month"), then_rows)):
        for r in rows:
            series[name][r["day"].day] = series[name].get(r["day"].day, Decimal(0)) + r["revenue"]
    points = [(str(d), name, values.get(d, Decimal(0))) for d in range(1, t.day + 1)
              for name, values in series.items()]
    chart = svg.chart(points, kind="line", width=200, height=48, small=True,
                      title=_("Revenue per day, this month and last"))
    return {"label": _("Revenue this month"), "value": _amounts(per_now),
            "detail": _("same days last month: %(v)s") % {"v": _amounts(per_then)},
            "chart": mark_safe(chart), "url": _url("revenue-by-day", **{"from": first, "to": t})}


@widget(FINANCE)
def receivables(request):
    from django.db.models import F, Sum

    from tarifa.billing.models import Invoice
    from tarifa.ledger.models import LedgerAccount

    owed = dict(LedgerAccount.objects.filter(kind="customer", debits_posted__gt=F("credits_posted"))
                .values_list("currency").annotate(s=Sum(F("debits_posted") - F("credits_posted"))))
    overdue = dict(Invoice.objects.filter(kind="invoice", state="overdue").values_list("currency")
                   .annotate(s=Sum(F("total") - F("paid_amount") - F("credited_amount"))))
    return {"label": _("Receivables"), "value": _amounts(owed),
            "detail": _("overdue invoices: %(v)s") % {"v": _amounts(overdue)}, "alert": bool(overdue),
            "url": _url("receivables-aging")}


@widget(OPERATIONS)
def failed_jobs(request):
    from procrastinate.contrib.django.models import ProcrastinateJob

    failed = ProcrastinateJob.objects.filter(status="failed").count()
    return {"label": _("Failed background jobs"), "value": failed, "alert": failed > 0, "url": _url("jobs")}
