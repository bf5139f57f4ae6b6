"""Operations reports: bill runs, charge runs, notifications, background jobs."""

from ..framework import COUNT, DATE, MONEY, OPERATIONS, Chart, Column, Report, register, sql
from .common import args, choices_of, day

register(Report(
    code="bill-runs", name="Bill runs", group="Operations", permission=OPERATIONS,
    description="Bill runs started in the period: cycle, period, status, accounts to invoice, invoiced, "
                "skipped, and how long each took.",
    source="billing bill runs, by time started",
    columns=[Column("started", "Started", DATE), Column("cycle", "Bill cycle"), Column("period", "Period"),
             Column("status", "Status", labels=choices_of("billing.BillRun", "status")), Column("dry_run", "Dry run"), Column("accounts", "Accounts", COUNT, total=True),
             Column("invoiced", "Invoiced", COUNT, total=True), Column("skipped", "Skipped", COUNT, total=True),
             Column("seconds", "Duration", "duration", total=True)],
    query=lambda p: sql(f"""SELECT {day('r.started_at')} AS started, c.code AS cycle, r.period, r.status,
       CASE WHEN r.dry_run THEN 'Yes' ELSE 'No' END AS dry_run, r.accounts, r.invoiced, r.skipped,
       CAST(extract(epoch FROM (r.finished_at - r.started_at)) AS bigint) AS seconds
       FROM billing_billrun r JOIN billing_billcycle c ON c.id = r.cycle_id
      WHERE r.started_at >= %(start)s AND r.started_at < %(end)s ORDER BY r.started_at""", args(p)),
    chart=Chart(x="period", y="invoiced", series="cycle")))

register(Report(
    code="charge-runs", name="Charge runs", group="Operations", permission=OPERATIONS,
    description="The daily recurring-fee runs in the period: charges computed, posted and refused (over the "
                "limit), subscriptions suspended and resumed, and the run's duration.",
    source="subscriptions' charge runs, by the day charged (as of)",
    columns=[Column("as_of", "As of", DATE), Column("staged", "Computed", COUNT, total=True),
             Column("inserted", "Posted", COUNT, total=True), Column("refused", "Refused", COUNT, total=True),
             Column("suspended", "Suspended", COUNT, total=True), Column("resumed", "Resumed", COUNT, total=True),
             Column("seconds", "Duration", "duration", total=True)],
    query=lambda p: sql("""SELECT r.as_of, r.staged, r.inserted, r.refused, r.suspended, r.resumed,
       CAST(extract(epoch FROM (r.finished_at - r.started_at)) AS bigint) AS seconds
       FROM subscriptions_chargerun r WHERE r.as_of BETWEEN %(day_from)s AND %(day_to)s ORDER BY r.started_at""",
                        args(p)),
    chart=Chart(x="as_of", y="inserted", kind="line")))

register(Report(
    code="notifications", name="Notifications", group="Operations", permission=OPERATIONS,
    description="Customer notifications created in the period per event, channel and delivery status "
                "(sent, failed, kept in the local outbox, skipped).",
    source="integrations' notification log, by time created",
    columns=[Column("event", "Event", labels=choices_of("integrations.Notification", "event")),
             Column("channel", "Channel", labels=choices_of("integrations.Notification", "channel")),
             Column("status", "Status", labels=choices_of("integrations.Notification", "status")),
             Column("notifications", "Notifications", COUNT, total=True)],
    query=lambda p: sql("""SELECT n.event, coalesce(nullif(n.channel, ''), '(none)') AS channel, n.status,
       count(*) AS notifications FROM integrations_notification n
      WHERE n.created_at >= %(start)s AND n.created_at < %(end)s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""", args(p)),
    chart=Chart(x="event", y="notifications", series="status")))

register(Report(
    code="jobs", name="Background jobs", group="Operations", permission=OPERATIONS, period=False,
    description="Background jobs in the queue by task and state (to do, doing, succeeded, failed, cancelled).",
    source="procrastinate's job table",
    columns=[Column("task", "Task"), Column("queue", "Queue"), Column("status", "State"),
             Column("jobs", "Jobs", COUNT, total=True)],
    query=lambda p: sql("""SELECT task_name AS task, queue_name AS queue, status::text AS status, count(*) AS jobs
       FROM procrastinate_jobs GROUP BY 1, 2, 3 ORDER BY 1, 3"""),
    chart=Chart(x="status", y="jobs")))

register(Report(
    code="invoice-settlement", name="Invoice settlement", group="Operations", permission=OPERATIONS,
    description="Allocations of payments to invoices per day and currency: how much of the invoices was "
                "settled by money that came in.",
    source="billing allocations, by time allocated",
    columns=[Column("day", "Day", DATE), Column("currency", "Currency"),
             Column("allocations", "Allocations", COUNT, total=True), Column("amount", "Settled", MONEY, total=True)],
    query=lambda p: sql(f"""SELECT {day('a.created_at')} AS day, i.currency, count(*) AS allocations,
       sum(a.amount) AS amount FROM billing_allocation a JOIN billing_invoice i ON i.id = a.invoice_id
      WHERE a.created_at >= %(start)s AND a.created_at < %(end)s GROUP BY 1, 2 ORDER BY 1, 2""", args(p))))
