"""Daily aggregates: closed days are read from `DailyFigure` (rolled up by the nightly job or
`tarifa reports rollup --from --to`), today from the live tables (a bounded query: one day).

A report uses them through `combine()`: when every closed day of the period has been rolled up
and the report's filters are ones the aggregates keep, the closed days come from the figures
and today from the live query; otherwise the whole period is the live query. Either way the
same rows come out (a test compares them)."""

import datetime as dt
from decimal import Decimal

from tarifa.kernel.clock import today

from .framework import bounds, sql, tz_name
from .models import RolledUpDay

# The filters the aggregates keep, per measure.
KEPT = {"revenue": {"currency", "service_type", "branch"}, "payments": {"currency", "channel", "branch"}}


def closed_days(params) -> tuple[dt.date, dt.date] | None:
    last = min(params["to"], today() - dt.timedelta(days=1))
    return (params["from"], last) if params["from"] <= last else None


def usable(params, measure: str) -> bool:
    given = {k for k, v in params.items() if v not in (None, "") and k not in ("from", "to")}
    if not given <= KEPT[measure]:
        return False
    span = closed_days(params)
    if span is None:
        return False
    days = (span[1] - span[0]).days + 1
    return RolledUpDay.objects.filter(day__range=span).count() == days


def combine(params, measure: str, *, live, closed, key: tuple, sums: tuple, order: tuple) -> list[dict]:
    """Rows of a report from the aggregates (closed days) and the live query (today), summed by key."""
    if not usable(params, measure):
        return live(params)
    start, end = closed_days(params)
    rows = closed(start, end)
    if params["to"] >= today():
        rows += live({**params, "from": max(params["from"], today())})
    merged: dict = {}
    for r in rows:
        k = tuple(r[c] for c in key)
        if k in merged:
            for s in sums:
                merged[k][s] = (merged[k][s] or 0) + (r[s] or 0)
        else:
            merged[k] = dict(r)
    return sorted(merged.values(), key=lambda r: tuple(str(r[c]) for c in order))


def figures(measure: str, start: dt.date, end: dt.date, params, *, by: str, dimension_as: str) -> list[dict]:
    """DailyFigure rows of a measure grouped by day or dimension, with the kept filters applied."""
    group = "day" if by == "day" else f"dimension AS {dimension_as}"
    return sql(f"""SELECT {group}, currency, sum(count) AS count, sum(amount) AS amount
        FROM reports_dailyfigure WHERE measure = %(m)s AND day BETWEEN %(a)s AND %(b)s
         AND (%(dim)s::text IS NULL OR dimension = %(dim)s)
         AND (%(currency)s::text IS NULL OR currency = %(currency)s)
         AND (%(branch)s::text IS NULL OR branch = %(branch)s)
       GROUP BY 1, 2""", {"m": measure, "a": start, "b": end, "currency": params.get("currency"),
                          "branch": params.get("branch"),
                          "dim": params.get("service_type") if measure == "revenue" else params.get("channel")})


# --- the roll-up ---------------------------------------------------------------------------------

ROLLUP = """
WITH ra AS (SELECT id, split_part(code, ':', 2) AS st FROM ledger_ledgeraccount WHERE code LIKE 'revenue:%%'),
mv AS (
  SELECT t.created_at, t.currency, t.branch, ra.st, t.amount FROM ledger_transfer t JOIN ra ON ra.id = t.credit_account_id
   WHERE t.created_at >= %(start)s AND t.created_at < %(end)s
  UNION ALL
  SELECT t.created_at, t.currency, t.branch, ra.st, -t.amount FROM ledger_transfer t JOIN ra ON ra.id = t.debit_account_id
   WHERE t.created_at >= %(start)s AND t.created_at < %(end)s)
INSERT INTO reports_dailyfigure (day, measure, dimension, branch, currency, amount, count)
SELECT (created_at AT TIME ZONE %(tz)s)::date, 'revenue', st, branch, currency, sum(amount), count(*)
  FROM mv GROUP BY 1, 3, 4, 5
UNION ALL
SELECT (received_at AT TIME ZONE %(tz)s)::date, 'payments', channel, branch, currency, sum(amount), count(*)
  FROM payments_payment WHERE received_at >= %(start)s AND received_at < %(end)s GROUP BY 1, 3, 4, 5
UNION ALL
SELECT (reversed_at AT TIME ZONE %(tz)s)::date, 'payments_reversed', channel, branch, currency, sum(amount), count(*)
  FROM payments_payment WHERE reversed_at >= %(start)s AND reversed_at < %(end)s GROUP BY 1, 3, 4, 5
"""


def rollup(day_from: dt.date, day_to: dt.date) -> int:
    """(Re)compute the figures of the closed days day_from..day_to (today and later are refused:
    they are not closed). Idempotent: a day's figures are replaced. Returns the days rolled up."""
    from django.db import connection, transaction

    from tarifa.kernel.clock import now
    from tarifa.kernel.errors import ValidationFailed

    if day_to >= today():
        raise ValidationFailed("Only closed days (before today) are rolled up.", code="day_not_closed",
                               fields={"to": ["Before today."]})
    if day_from > day_to:
        raise ValidationFailed("The period starts after it ends.", code="invalid_period", fields={"from": ["After to."]})
    start, end = bounds({"from": day_from, "to": day_to})
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM reports_dailyfigure WHERE day BETWEEN %s AND %s", [day_from, day_to])
        cursor.execute(ROLLUP, {"start": start, "end": end, "tz": tz_name()})
        days = [day_from + dt.timedelta(days=i) for i in range((day_to - day_from).days + 1)]
        RolledUpDay.objects.filter(day__in=days).delete()
        RolledUpDay.objects.bulk_create([RolledUpDay(day=d, rolled_up_at=now()) for d in days])
    return len(days)


def revenue(params, rows_live, *, by: str) -> list[dict]:
    """Revenue rows (by service type or by day) from the figures for closed days and `rows_live`
    for today."""
    def closed(a, b):
        out = []
        for r in figures("revenue", a, b, params, by=by, dimension_as="service_type"):
            row = {("day" if by == "day" else "service_type"): r["day" if by == "day" else "service_type"],
                   "currency": r["currency"], "revenue": r["amount"] or Decimal(0)}
            if by != "day":
                row["movements"] = r["count"]
            out.append(row)
        return out

    if by == "day":
        return combine(params, "revenue", live=rows_live, closed=closed, key=("day", "currency"),
                       sums=("revenue",), order=("day", "currency"))
    return combine(params, "revenue", live=rows_live, closed=closed, key=("service_type", "currency"),
                   sums=("movements", "revenue"), order=("currency", "service_type"))


def payments(params, rows_live) -> list[dict]:
    def closed(a, b):
        got: dict = {}
        for measure, field in (("payments", "amount"), ("payments_reversed", "reversed")):
            for r in sql("""SELECT day, dimension AS channel, currency, sum(count) AS count, sum(amount) AS amount
                  FROM reports_dailyfigure WHERE measure = %(m)s AND day BETWEEN %(a)s AND %(b)s
                   AND (%(channel)s::text IS NULL OR dimension = %(channel)s)
                   AND (%(currency)s::text IS NULL OR currency = %(currency)s)
                   AND (%(branch)s::text IS NULL OR branch = %(branch)s) GROUP BY 1, 2, 3""",
                         {"m": measure, "a": a, "b": b, "channel": params.get("channel"),
                          "currency": params.get("currency"), "branch": params.get("branch")}):
                row = got.setdefault((r["day"], r["channel"], r["currency"]), {
                    "day": r["day"], "channel": r["channel"], "currency": r["currency"], "payments": 0,
                    "amount": Decimal(0), "reversed": Decimal(0)})
                row[field] = r["amount"]
                if measure == "payments":
                    row["payments"] = r["count"]
        for row in got.values():
            row["net"] = row["amount"] - row["reversed"]
        return list(got.values())

    return combine(params, "payments", live=rows_live, closed=closed, key=("day", "channel", "currency"),
                   sums=("payments", "amount", "reversed", "net"), order=("day", "channel", "currency"))
