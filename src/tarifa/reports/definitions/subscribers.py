"""Subscriber reports: the base, growth, churn, suspensions, tariffs."""

from ..framework import COUNT, DATE, SUBSCRIBERS, Chart, Column, Report, register, sql
from .common import SERVICE, SERVICE_TYPE, TARIFF, args, choices_of, day

FILTERS = """
   AND (%(service)s::text IS NULL OR sv.code = %(service)s)
   AND (%(service_type)s::text IS NULL OR st.code = %(service_type)s)
   AND (%(tariff)s::text IS NULL OR tr.code = %(tariff)s)"""
JOINS = """
  JOIN catalog_service sv ON sv.id = s.service_id JOIN catalog_servicetype st ON st.id = sv.service_type_id
  JOIN catalog_tariff tr ON tr.id = s.tariff_id"""

# A subscription is active on day d when it was activated on or before d and not terminated by then.
SUBSCRIBERS_SQL = f"""
SELECT sv.code AS service, sv.name AS service_name,
       count(*) FILTER (WHERE s.activated_on < %(day_from)s
                          AND (s.terminated_on IS NULL OR s.terminated_on >= %(day_from)s)) AS at_start,
       count(*) FILTER (WHERE s.activated_on BETWEEN %(day_from)s AND %(day_to)s) AS activated,
       count(*) FILTER (WHERE s.terminated_on BETWEEN %(day_from)s AND %(day_to)s) AS terminated,
       count(*) FILTER (WHERE s.activated_on <= %(day_to)s
                          AND (s.terminated_on IS NULL OR s.terminated_on > %(day_to)s)) AS at_end,
       count(*) FILTER (WHERE s.status = 'active') AS active_now,
       count(*) FILTER (WHERE s.status = 'suspended') AS suspended_now,
       count(*) FILTER (WHERE s.status = 'pending') AS pending_now
  FROM subscriptions_subscription s {JOINS}
 WHERE true {FILTERS}
 GROUP BY 1, 2 ORDER BY 1
"""


def subscribers(params):
    rows = sql(SUBSCRIBERS_SQL, args(params))
    for r in rows:
        r["net_additions"] = r["activated"] - r["terminated"]
    return rows


register(Report(
    code="subscribers", name="Subscribers", group="Subscribers", permission=SUBSCRIBERS,
    description="Subscriptions per service: in service at the start of the period, activated and terminated "
                "in it, net additions, in service at its end; and today's active, suspended and pending.",
    source="subscriptions (activation and termination dates, status)",
    params=[SERVICE, SERVICE_TYPE, TARIFF],
    columns=[Column("service", "Service"), Column("service_name", "Name"),
             Column("at_start", "At start", COUNT, total=True), Column("activated", "Activated", COUNT, total=True),
             Column("terminated", "Terminated", COUNT, total=True),
             Column("net_additions", "Net additions", COUNT, total=True), Column("at_end", "At end", COUNT, total=True),
             Column("active_now", "Active now", COUNT, total=True),
             Column("suspended_now", "Suspended now", COUNT, total=True),
             Column("pending_now", "Pending now", COUNT, total=True)],
    query=subscribers, chart=Chart(x="service", y="at_end")))

GROWTH = f"""
WITH a AS (SELECT s.activated_on AS day, count(*) AS n FROM subscriptions_subscription s {JOINS}
            WHERE s.activated_on BETWEEN %(day_from)s AND %(day_to)s {FILTERS} GROUP BY 1),
     t AS (SELECT s.terminated_on AS day, count(*) AS n FROM subscriptions_subscription s {JOINS}
            WHERE s.terminated_on BETWEEN %(day_from)s AND %(day_to)s {FILTERS} GROUP BY 1)
SELECT coalesce(a.day, t.day) AS day, coalesce(a.n, 0) AS activated, coalesce(t.n, 0) AS terminated,
       coalesce(a.n, 0) - coalesce(t.n, 0) AS net
  FROM a FULL JOIN t ON t.day = a.day ORDER BY 1
"""

register(Report(
    code="subscriber-growth", name="Subscriber growth", group="Subscribers", permission=SUBSCRIBERS,
    description="Activations, terminations and net additions per day.",
    source="subscriptions' activation and termination dates",
    params=[SERVICE, SERVICE_TYPE, TARIFF],
    columns=[Column("day", "Day", DATE), Column("activated", "Activated", COUNT, total=True),
             Column("terminated", "Terminated", COUNT, total=True), Column("net", "Net additions", COUNT, total=True)],
    query=lambda p: sql(GROWTH, args(p)), chart=Chart(x="day", y="net", kind="line")))

CHURN = f"""
SELECT coalesce(nullif(c.cause, ''), 'unspecified') AS cause, coalesce(nullif(left(c.reason, 100), ''), '(no reason)') AS reason,
       sv.code AS service, count(*) AS terminations
  FROM subscriptions_statuschange c JOIN subscriptions_subscription s ON s.id = c.subscription_id {JOINS}
 WHERE c.to_status = 'terminated' AND c.at >= %(start)s AND c.at < %(end)s {FILTERS}
 GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2
"""

register(Report(
    code="churn-by-reason", name="Churn by reason", group="Subscribers", permission=SUBSCRIBERS,
    description="Terminations in the period by cause and the reason given, per service.",
    source="subscription status changes to terminated",
    params=[SERVICE, SERVICE_TYPE, TARIFF],
    columns=[Column("cause", "Cause"), Column("reason", "Reason"), Column("service", "Service"),
             Column("terminations", "Terminations", COUNT, total=True)],
    query=lambda p: sql(CHURN, args(p)), chart=Chart(x="cause", y="terminations")))

SUSPENSIONS = f"""
WITH b AS (SELECT x.cause, sv.code AS service, x.started_on AS started, x.ended_on AS ended
             FROM subscriptions_suspension x JOIN subscriptions_subscription s ON s.id = x.subscription_id {JOINS}
            WHERE (x.started_on BETWEEN %(day_from)s AND %(day_to)s OR x.ended_on BETWEEN %(day_from)s AND %(day_to)s)
                  {FILTERS})
SELECT cause, service,
       count(*) FILTER (WHERE started BETWEEN %(day_from)s AND %(day_to)s) AS suspended,
       count(*) FILTER (WHERE ended BETWEEN %(day_from)s AND %(day_to)s) AS resumed,
       round(avg(ended - started) FILTER (WHERE ended BETWEEN %(day_from)s AND %(day_to)s), 1) AS avg_days
  FROM b GROUP BY 1, 2 ORDER BY 1, 2
"""

register(Report(
    code="suspensions", name="Suspensions and resumptions", group="Subscribers", permission=SUBSCRIBERS,
    description="Suspensions started and ended (service resumed) in the period by cause (balance, dunning, "
                "customer request, operator) and service, with the average length of those that ended.",
    source="subscription suspensions (start and end days)",
    params=[SERVICE, SERVICE_TYPE, TARIFF],
    columns=[Column("cause", "Cause", labels=choices_of("subscriptions.Suspension", "cause")),
             Column("service", "Service"), Column("suspended", "Suspended", COUNT, total=True),
             Column("resumed", "Resumed", COUNT, total=True), Column("avg_days", "Average days", "number")],
    query=lambda p: sql(SUSPENSIONS, args(p)), chart=Chart(x="cause", y="suspended")))

TARIFFS = f"""
SELECT tr.code AS tariff, tr.name AS tariff_name, sv.code AS service,
       count(*) FILTER (WHERE s.status = 'active') AS active,
       count(*) FILTER (WHERE s.status = 'suspended') AS suspended,
       count(*) FILTER (WHERE s.status = 'pending') AS pending,
       count(*) FILTER (WHERE s.activated_on BETWEEN %(day_from)s AND %(day_to)s) AS activated,
       count(*) FILTER (WHERE s.terminated_on BETWEEN %(day_from)s AND %(day_to)s) AS terminated
  FROM subscriptions_subscription s {JOINS}
 WHERE true {FILTERS}
 GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1
"""

register(Report(
    code="subscriptions-by-tariff", name="Subscriptions by tariff", group="Subscribers", permission=SUBSCRIBERS,
    description="Per tariff: subscriptions active, suspended and pending today; activated and terminated in the period.",
    source="subscriptions",
    params=[SERVICE, SERVICE_TYPE, TARIFF],
    columns=[Column("tariff", "Tariff"), Column("tariff_name", "Name"), Column("service", "Service"),
             Column("active", "Active", COUNT, total=True), Column("suspended", "Suspended", COUNT, total=True),
             Column("pending", "Pending", COUNT, total=True), Column("activated", "Activated", COUNT, total=True),
             Column("terminated", "Terminated", COUNT, total=True)],
    query=lambda p: sql(TARIFFS, args(p)), chart=Chart(x="tariff", y="active")))

TARIFF_CHANGES = f"""
WITH ch AS (
  SELECT tp.valid_from AS day, tr.code AS new_tariff,
         (SELECT t0.code FROM subscriptions_tariffperiod p0 JOIN catalog_tariff t0 ON t0.id = p0.tariff_id
           WHERE p0.subscription_id = tp.subscription_id AND p0.valid_until = tp.valid_from LIMIT 1) AS old_tariff
    FROM subscriptions_tariffperiod tp JOIN subscriptions_subscription s ON s.id = tp.subscription_id {JOINS}
   WHERE tp.valid_from BETWEEN %(day_from)s AND %(day_to)s {FILTERS})
SELECT old_tariff, new_tariff, count(*) AS changes FROM ch WHERE old_tariff IS NOT NULL
 GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2
"""

register(Report(
    code="tariff-changes", name="Tariff changes", group="Subscribers", permission=SUBSCRIBERS,
    description="Tariff changes taking effect in the period: from which tariff to which, how many.",
    source="subscriptions' tariff periods (one starting where the previous ended)",
    params=[SERVICE, SERVICE_TYPE, TARIFF],
    columns=[Column("old_tariff", "From tariff"), Column("new_tariff", "To tariff"),
             Column("changes", "Changes", COUNT, total=True)],
    query=lambda p: sql(TARIFF_CHANGES, args(p)), chart=Chart(x="new_tariff", y="changes", series="old_tariff")))

NEW_CUSTOMERS = """
SELECT {cd} AS day, c.kind, count(*) AS customers
  FROM crm_customer c
 WHERE c.created_at >= %(start)s AND c.created_at < %(end)s
 GROUP BY 1, 2 ORDER BY 1, 2
"""

register(Report(
    code="new-customers", name="New customers", group="Subscribers", permission=SUBSCRIBERS,
    description="Customers registered per day, individuals and organisations.",
    source="customers by time registered",
    columns=[Column("day", "Day", DATE), Column("kind", "Kind", labels=choices_of("crm.Customer", "kind")),
             Column("customers", "Customers", COUNT, total=True)],
    query=lambda p: sql(NEW_CUSTOMERS.format(cd=day("c.created_at")), args(p)),
    chart=Chart(x="day", y="customers", series="kind")))
