"""Usage reports: rated usage by service and destination, top subscribers, rejects, imports."""

from ..framework import COUNT, DATE, MONEY, NUMBER, USAGE, Chart, Column, Report, register, sql
from .common import CURRENCY, TARIFF, USAGE_TYPE, args, choices_of, day

RATED = """
  FROM rating_usagerecord r LEFT JOIN catalog_tariff tr ON tr.id = r.tariff_id
 WHERE r.status = 'rated' AND r.start_time >= %(start)s AND r.start_time < %(end)s
   AND (%(usage_type)s::text IS NULL OR r.usage_type = %(usage_type)s)
   AND (%(currency)s::text IS NULL OR r.currency = %(currency)s)
   AND (%(tariff)s::text IS NULL OR tr.code = %(tariff)s)"""


def _units(rows):
    from tarifa.rating.models import UsageType

    measures = dict(UsageType.objects.values_list("code", "measure"))
    for r in rows:
        m = measures.get(r.get("usage_type"), "count")
        r["unit"] = {"time": "seconds", "bytes": "bytes"}.get(m, "items")
    return rows


register(Report(
    code="usage-by-service", name="Usage by service and tariff", group="Usage", permission=USAGE,
    description="Rated usage in the period per usage type and tariff: records, usage in base units (seconds, "
                "bytes, items), free units from bundles, and the cost rated.",
    source="rated usage records, by the usage's start time",
    params=[USAGE_TYPE, TARIFF, CURRENCY],
    columns=[Column("usage_type", "Usage type"), Column("tariff", "Tariff"), Column("currency", "Currency"),
             Column("records", "Records", COUNT, total=True), Column("usage", "Usage", NUMBER),
             Column("unit", "Unit"), Column("free_units", "Free units", NUMBER),
             Column("cost", "Cost", MONEY, total=True)],
    query=lambda p: _units(sql(f"""SELECT r.usage_type, coalesce(tr.code, '') AS tariff, r.currency,
       count(*) AS records, sum(r.usage) AS usage, sum(r.free_units) AS free_units, sum(r.cost) AS cost {RATED}
       GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""", args(p))),
    chart=Chart(x="usage_type", y="cost", series="currency")))

register(Report(
    code="usage-by-destination", name="Usage by destination group", group="Usage", permission=USAGE,
    description="Rated usage per destination group (the rating plan's matched destination) and usage type.",
    source="rated usage records, by start time",
    params=[USAGE_TYPE, TARIFF, CURRENCY],
    columns=[Column("destination", "Destination group"), Column("usage_type", "Usage type"),
             Column("currency", "Currency"), Column("records", "Records", COUNT, total=True),
             Column("usage", "Usage", NUMBER), Column("unit", "Unit"), Column("cost", "Cost", MONEY, total=True)],
    query=lambda p: _units(sql(f"""SELECT coalesce(nullif(r.matched_destination, ''), '(none)') AS destination,
       r.usage_type, r.currency, count(*) AS records, sum(r.usage) AS usage, sum(r.cost) AS cost {RATED}
       GROUP BY 1, 2, 3 ORDER BY 6 DESC NULLS LAST, 1""", args(p))),
    chart=Chart(x="destination", y="cost", series="currency")))

register(Report(
    code="usage-by-day", name="Usage by day", group="Usage", permission=USAGE,
    description="Rated usage records and cost per day and usage type.",
    source="rated usage records, by start time",
    params=[USAGE_TYPE, TARIFF, CURRENCY],
    columns=[Column("day", "Day", DATE), Column("usage_type", "Usage type"), Column("currency", "Currency"),
             Column("records", "Records", COUNT, total=True), Column("usage", "Usage", NUMBER),
             Column("cost", "Cost", MONEY, total=True)],
    query=lambda p: sql(f"""SELECT {day('r.start_time')} AS day, r.usage_type, r.currency, count(*) AS records,
       sum(r.usage) AS usage, sum(r.cost) AS cost {RATED} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""", args(p)),
    chart=Chart(x="day", y="records", series="usage_type", kind="line")))

TOP = 50
register(Report(
    code="top-subscribers", name="Top subscribers by usage", group="Usage", permission=USAGE, row_limit=TOP,
    description=f"The {TOP} subscriptions with the most usage of a type in the period (all types: by cost).",
    source="rated usage records, by start time",
    params=[USAGE_TYPE, TARIFF, CURRENCY],
    columns=[Column("subscription", "Subscription"), Column("customer", "Customer"), Column("tariff", "Tariff"),
             Column("currency", "Currency"), Column("records", "Records", COUNT, total=True),
             Column("usage", "Usage", NUMBER), Column("cost", "Cost", MONEY, total=True)],
    query=lambda p: sql(f"""WITH top AS (SELECT r.subscription_id, r.currency, coalesce(tr.code, '') AS tariff,
       count(*) AS records, sum(r.usage) AS usage, sum(r.cost) AS cost {RATED} AND r.subscription_id IS NOT NULL
       GROUP BY 1, 2, 3 ORDER BY {'5' if p.get('usage_type') else '6'} DESC NULLS LAST LIMIT {TOP})
       SELECT s.number AS subscription, c.number AS customer, top.tariff, top.currency, top.records, top.usage,
              top.cost
         FROM top JOIN subscriptions_subscription s ON s.id = top.subscription_id
         JOIN ledger_billingaccount ba ON ba.id = s.billing_account_id JOIN crm_customer c ON c.id = ba.customer_id
        ORDER BY {'top.usage' if p.get('usage_type') else 'top.cost'} DESC NULLS LAST, s.number""", args(p)),
    chart=Chart(x="subscription", y="cost")))

register(Report(
    code="rating-rejects", name="Rating rejects by reason", group="Usage", permission=USAGE,
    description="Usage records rejected in the period (not rated, kept to be reprocessed) by reason and source; "
                "those since superseded by a corrected import counted apart.",
    source="usage records with status rejected or superseded, by the batch's start",
    columns=[Column("reason", "Reason", labels=choices_of("rating.UsageRecord", "reason")), Column("source", "Source"),
             Column("rejected", "Rejected", COUNT, total=True),
             Column("superseded", "Corrected since", COUNT, total=True)],
    query=lambda p: sql("""SELECT coalesce(nullif(r.reason, ''), '(none)') AS reason,
       coalesce(nullif(r.source, ''), '(none)') AS source,
       count(*) FILTER (WHERE r.status = 'rejected') AS rejected,
       count(*) FILTER (WHERE r.status = 'superseded') AS superseded
       FROM rating_usagerecord r JOIN rating_usagebatch b ON b.id = r.batch_id
      WHERE r.status IN ('rejected', 'superseded') AND b.started_at >= %(start)s AND b.started_at < %(end)s
      GROUP BY 1, 2 ORDER BY 3 DESC, 1""", args(p)),
    chart=Chart(x="reason", y="rejected")))

register(Report(
    code="usage-imports", name="Usage imports", group="Usage", permission=USAGE,
    description="Usage batches (files, API, RADIUS) imported per day: lines read, rated, rejected, duplicates, "
                "and what was charged to prepaid accounts.",
    source="usage batches, by time started",
    columns=[Column("day", "Day", DATE), Column("kind", "Kind", labels=choices_of("rating.UsageBatch", "kind")),
             Column("batches", "Batches", COUNT, total=True),
             Column("read", "Read", COUNT, total=True), Column("rated", "Rated", COUNT, total=True),
             Column("rejected", "Rejected", COUNT, total=True), Column("duplicates", "Duplicates", COUNT, total=True)],
    query=lambda p: sql(f"""SELECT {day('b.started_at')} AS day, b.kind, count(*) AS batches, sum(b.read) AS read,
       sum(b.rated) AS rated, sum(b.rejected) AS rejected, sum(b.duplicates) AS duplicates
       FROM rating_usagebatch b WHERE b.started_at >= %(start)s AND b.started_at < %(end)s
      GROUP BY 1, 2 ORDER BY 1, 2""", args(p)),
    chart=Chart(x="day", y="read", series="kind")))
