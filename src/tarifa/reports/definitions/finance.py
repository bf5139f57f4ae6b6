"""Financial reports: revenue (from the ledger's revenue accounts), receivables, taxes, invoices."""

from tarifa.kernel.clock import today

from .. import aggregates
from ..framework import COUNT, DATE, FINANCE, MONEY, NUMBER, Chart, Column, Report, register, sql
from .common import BRANCH, CURRENCY, SERVICE_TYPE, TARIFF, args, choices_of, day

# Every posted movement on a `revenue:<service type>` account in the period: credits add, debits
# (reversals, inclusive taxes moved to taxes payable, corrections) subtract. Net revenue is what
# the revenue accounts gained, exactly as the ledger holds it.
REVENUE = """
WITH ra AS (SELECT id, code, split_part(code, ':', 2) AS service_type FROM ledger_ledgeraccount
            WHERE code LIKE 'revenue:%%'
              AND (%(service_type)s::text IS NULL OR code = 'revenue:' || %(service_type)s::text)),
mv AS (
  SELECT t.created_at, t.currency, t.branch, t.tags, t.kind, ra.service_type, t.amount AS amount
    FROM ledger_transfer t JOIN ra ON ra.id = t.credit_account_id
   WHERE t.created_at >= %(start)s AND t.created_at < %(end)s
  UNION ALL
  SELECT t.created_at, t.currency, t.branch, t.tags, t.kind, ra.service_type, -t.amount
    FROM ledger_transfer t JOIN ra ON ra.id = t.debit_account_id
   WHERE t.created_at >= %(start)s AND t.created_at < %(end)s
)
SELECT {select} FROM mv
 WHERE (%(currency)s::text IS NULL OR mv.currency = %(currency)s)
   AND (%(branch)s::text IS NULL OR mv.branch = %(branch)s)
   AND (%(tariff)s::text IS NULL OR mv.tags->>'tariff' = %(tariff)s)
 GROUP BY {group} ORDER BY {order}
"""


def _revenue_live(select, group, order):
    return lambda params: sql(REVENUE.format(select=select, group=group, order=order), args(params))


def revenue_by_service(params):
    live = _revenue_live("service_type, currency, count(*) AS movements, sum(amount) AS revenue",
                         "service_type, currency", "currency, service_type")
    return aggregates.revenue(params, live, by="service_type")


register(Report(
    code="revenue-by-service", name="Revenue by service type", group="Finance", permission=FINANCE,
    description="Net revenue per service type and currency in the period: what the ledger's revenue accounts "
                "gained (charges, usage and fees credited, less reversals and inclusive taxes moved out).",
    source="ledger transfers crediting or debiting `revenue:<service type>` accounts, by transfer time",
    params=[CURRENCY, SERVICE_TYPE, BRANCH, TARIFF],
    columns=[Column("service_type", "Service type"), Column("currency", "Currency"),
             Column("movements", "Movements", COUNT, total=True), Column("revenue", "Revenue", MONEY, total=True)],
    query=revenue_by_service, chart=Chart(x="service_type", y="revenue", series="currency")))


def revenue_by_day(params):
    live = _revenue_live(f"{day('created_at')} AS day, currency, sum(amount) AS revenue", "1, currency", "1, currency")
    return aggregates.revenue(params, live, by="day")


register(Report(
    code="revenue-by-day", name="Revenue by day", group="Finance", permission=FINANCE,
    description="Net revenue per day and currency (all service types unless one is chosen).",
    source="as revenue-by-service, per day of the transfer",
    params=[CURRENCY, SERVICE_TYPE, BRANCH, TARIFF],
    columns=[Column("day", "Day", DATE), Column("currency", "Currency"), Column("revenue", "Revenue", MONEY, total=True)],
    query=revenue_by_day, chart=Chart(x="day", y="revenue", series="currency", kind="line")))

register(Report(
    code="revenue-by-tariff", name="Revenue by tariff", group="Finance", permission=FINANCE,
    description="Net revenue per tariff: recurring and one-time fees carry their tariff; usage and other "
                "revenue without one is shown as '(no tariff)'.",
    source="as revenue-by-service, grouped by the transfer's `tariff` tag",
    params=[CURRENCY, SERVICE_TYPE, BRANCH, TARIFF],
    columns=[Column("tariff", "Tariff"), Column("currency", "Currency"),
             Column("movements", "Movements", COUNT, total=True), Column("revenue", "Revenue", MONEY, total=True)],
    query=lambda p: sql(REVENUE.format(
        select="coalesce(tags->>'tariff', '(no tariff)') AS tariff, currency, count(*) AS movements, "
               "sum(amount) AS revenue", group="1, currency", order="currency, revenue DESC"), args(p)),
    chart=Chart(x="tariff", y="revenue", series="currency")))

register(Report(
    code="revenue-by-branch", name="Revenue by branch", group="Finance", permission=FINANCE,
    description="Net revenue per branch that posted it, and currency.",
    source="as revenue-by-service, grouped by the transfer's branch code",
    params=[CURRENCY, SERVICE_TYPE, BRANCH],
    columns=[Column("branch", "Branch"), Column("currency", "Currency"),
             Column("movements", "Movements", COUNT, total=True), Column("revenue", "Revenue", MONEY, total=True)],
    query=lambda p: sql(REVENUE.format(select="branch, currency, count(*) AS movements, sum(amount) AS revenue",
                                       group="branch, currency", order="currency, branch"), args(p, tariff=None)),
    chart=Chart(x="branch", y="revenue", series="currency")))

ARPU = """
WITH rev AS (
  SELECT mv_currency AS currency, sum(amount) AS revenue FROM (
    SELECT t.currency AS mv_currency, t.amount FROM ledger_transfer t
      JOIN ledger_ledgeraccount a ON a.id = t.credit_account_id AND a.code LIKE 'revenue:%%'
     WHERE t.created_at >= %(start)s AND t.created_at < %(end)s
    UNION ALL
    SELECT t.currency, -t.amount FROM ledger_transfer t
      JOIN ledger_ledgeraccount a ON a.id = t.debit_account_id AND a.code LIKE 'revenue:%%'
     WHERE t.created_at >= %(start)s AND t.created_at < %(end)s) x GROUP BY 1),
subs AS (
  SELECT ba.currency, count(DISTINCT s.billing_account_id) AS accounts, count(*) AS subscriptions
    FROM subscriptions_subscription s JOIN ledger_billingaccount ba ON ba.id = s.billing_account_id
   WHERE s.activated_on <= %(day_to)s AND (s.terminated_on IS NULL OR s.terminated_on > %(day_from)s)
   GROUP BY 1)
SELECT coalesce(rev.currency, subs.currency) AS currency, coalesce(rev.revenue, 0) AS revenue,
       coalesce(subs.accounts, 0) AS accounts, coalesce(subs.subscriptions, 0) AS subscriptions,
       CASE WHEN subs.accounts > 0 THEN round(coalesce(rev.revenue, 0) / subs.accounts, 6) END AS arpu,
       CASE WHEN subs.subscriptions > 0 THEN round(coalesce(rev.revenue, 0) / subs.subscriptions, 6) END AS arps
  FROM rev FULL JOIN subs ON subs.currency = rev.currency
 WHERE (%(currency)s::text IS NULL OR coalesce(rev.currency, subs.currency) = %(currency)s)
 ORDER BY 1
"""

register(Report(
    code="arpu", name="ARPU", group="Finance", permission=FINANCE,
    description="Average revenue per paying account (ARPU) and per subscription in the period, per currency: "
                "net revenue divided by the accounts (subscriptions) that had a service active in the period.",
    source="revenue accounts of the ledger; subscriptions active at some time in the period",
    params=[CURRENCY],
    columns=[Column("currency", "Currency"), Column("revenue", "Revenue", MONEY, total=True),
             Column("accounts", "Accounts", COUNT, total=True), Column("subscriptions", "Subscriptions", COUNT, total=True),
             Column("arpu", "ARPU (per account)", MONEY), Column("arps", "Per subscription", MONEY)],
    query=lambda p: sql(ARPU, args(p)), chart=Chart(x="currency", y="arpu")))

# Receivables aging: each indebted customer account's debt (−balance) is laid on its most recent
# debits (charges, taxes, fees…): the newest debit covers the debt first (what was paid went to the
# oldest), so the debt's age is the age of the debits it is made of. The buckets of an account add
# up to its debt, and the report's totals to the receivables of the ledger.
AGING = """
WITH debt AS (
  SELECT la.id, la.currency, la.debits_posted - la.credits_posted AS owed
    FROM ledger_ledgeraccount la
   WHERE la.kind = 'customer' AND la.debits_posted > la.credits_posted
     AND (%(currency)s::text IS NULL OR la.currency = %(currency)s)),
d AS (
  SELECT debt.id, debt.owed, t.amount, t.created_at,
         sum(t.amount) OVER (PARTITION BY debt.id ORDER BY t.created_at DESC, t.id DESC) AS running
    FROM debt JOIN ledger_transfer t ON t.debit_account_id = debt.id),
part AS (
  SELECT id, greatest(0, least(amount, owed - (running - amount))) AS part,
         %(as_of)s - {created_day} AS age
    FROM d WHERE running - amount < owed)
SELECT c.number AS customer_number, CASE WHEN c.kind = 'organization' THEN c.legal_name ELSE trim(c.first_name || ' ' || c.last_name) END AS customer, ba.number AS account, debt.currency,
       sum(part.part) FILTER (WHERE part.age <= 30) AS d0_30,
       sum(part.part) FILTER (WHERE part.age BETWEEN 31 AND 60) AS d31_60,
       sum(part.part) FILTER (WHERE part.age BETWEEN 61 AND 90) AS d61_90,
       sum(part.part) FILTER (WHERE part.age > 90) AS d90_plus,
       debt.owed AS total
  FROM part JOIN debt ON debt.id = part.id
  JOIN ledger_billingaccount ba ON ba.ledger_account_id = debt.id
  JOIN crm_customer c ON c.id = ba.customer_id
 GROUP BY c.number, 2, ba.number, debt.currency, debt.owed
 ORDER BY debt.currency, debt.owed DESC, ba.number
"""


def aging(params):
    rows = sql(AGING.format(created_day=day("d.created_at")), args(params, as_of=today()))
    for r in rows:
        for k in ("d0_30", "d31_60", "d61_90", "d90_plus"):
            r[k] = r[k] or 0
    return rows


register(Report(
    code="receivables-aging", name="Receivables aging", group="Finance", permission=FINANCE, period=False,
    description="What customers owe today (accounts with a negative balance), by the age of the debt: "
                "0–30, 31–60, 61–90 and over 90 days; the newest charges make up the debt (payments settle "
                "the oldest first). Per customer account and in total.",
    source="customer ledger accounts' posted totals (balance) and their debit transfers (age)",
    params=[CURRENCY],
    columns=[Column("customer_number", "Customer"), Column("customer", "Name"), Column("account", "Account"),
             Column("currency", "Currency"), Column("d0_30", "0–30 days", MONEY, total=True),
             Column("d31_60", "31–60 days", MONEY, total=True), Column("d61_90", "61–90 days", MONEY, total=True),
             Column("d90_plus", "Over 90 days", MONEY, total=True), Column("total", "Owed", MONEY, total=True)],
    query=aging))

# Taxes as the invoices state them (their tax summaries), by invoice date; credit notes subtract.
TAXES = """
SELECT e->>'code' AS tax, (e->>'rate')::numeric AS rate, (e->>'inclusive')::boolean AS inclusive, i.currency,
       count(DISTINCT i.id) AS documents,
       sum(CASE WHEN i.kind = 'credit_note' THEN -1 ELSE 1 END * (e->>'base')::numeric) AS base,
       sum(CASE WHEN i.kind = 'credit_note' THEN -1 ELSE 1 END * (e->>'tax')::numeric) AS tax_amount
  FROM billing_invoice i CROSS JOIN LATERAL jsonb_array_elements(i.tax_summary) e
 WHERE i.state <> 'draft' AND i.invoice_date BETWEEN %(day_from)s AND %(day_to)s
   AND (%(currency)s::text IS NULL OR i.currency = %(currency)s)
 GROUP BY 1, 2, 3, 4 ORDER BY 4, 1, 2
"""


def taxes(params):
    rows = sql(TAXES, args(params))
    for r in rows:
        r["inclusive"] = "included in prices" if r["inclusive"] else "added to prices"
    return rows


register(Report(
    code="taxes", name="Taxes per rate", group="Finance", permission=FINANCE,
    description="Tax per tax code and rate in the period, as the issued invoices state it (credit notes "
                "subtract): the taxable base and the tax, per currency.",
    source="issued invoices' and credit notes' tax summaries, by invoice date",
    params=[CURRENCY],
    columns=[Column("tax", "Tax"), Column("rate", "Rate, %", NUMBER), Column("inclusive", "Prices"),
             Column("currency", "Currency"), Column("documents", "Documents", COUNT, total=True),
             Column("base", "Taxable base", MONEY, total=True), Column("tax_amount", "Tax", MONEY, total=True)],
    query=taxes, chart=Chart(x="tax", y="tax_amount", series="currency")))

INVOICES = """
SELECT i.invoice_date AS day, i.currency, count(*) AS issued, sum(i.total) AS total,
       sum(i.paid_amount) AS paid, sum(i.total - i.paid_amount - i.credited_amount) AS outstanding,
       count(*) FILTER (WHERE i.state = 'overdue') AS overdue,
       coalesce(sum(i.total - i.paid_amount - i.credited_amount) FILTER (WHERE i.state = 'overdue'), 0) AS overdue_amount
  FROM billing_invoice i
 WHERE i.kind = 'invoice' AND i.state <> 'draft' AND i.invoice_date BETWEEN %(day_from)s AND %(day_to)s
   AND (%(currency)s::text IS NULL OR i.currency = %(currency)s)
 GROUP BY 1, 2 ORDER BY 1, 2
"""

register(Report(
    code="invoices", name="Invoices issued, paid and overdue", group="Finance", permission=FINANCE,
    description="Invoices issued per invoice date and currency: their total, what has been paid, what is "
                "outstanding, and how many (and how much) are overdue today.",
    source="billing invoices (not drafts, not credit notes), by invoice date",
    params=[CURRENCY],
    columns=[Column("day", "Invoice date", DATE), Column("currency", "Currency"),
             Column("issued", "Issued", COUNT, total=True), Column("total", "Total", MONEY, total=True),
             Column("paid", "Paid", MONEY, total=True), Column("outstanding", "Outstanding", MONEY, total=True),
             Column("overdue", "Overdue", COUNT, total=True),
             Column("overdue_amount", "Overdue amount", MONEY, total=True)],
    query=lambda p: sql(INVOICES, args(p)), chart=Chart(x="day", y="total", series="currency")))

CREDIT_NOTES = """
SELECT i.invoice_date AS day, i.number, c.number AS customer, o.number AS credited_invoice, i.currency,
       i.subtotal AS net, i.tax_total AS tax, i.total, i.reason
  FROM billing_invoice i JOIN crm_customer c ON c.id = i.customer_id
  LEFT JOIN billing_invoice o ON o.id = i.credited_invoice_id
 WHERE i.kind = 'credit_note' AND i.state <> 'draft' AND i.invoice_date BETWEEN %(day_from)s AND %(day_to)s
   AND (%(currency)s::text IS NULL OR i.currency = %(currency)s)
 ORDER BY 1, 2
"""

register(Report(
    code="credit-notes", name="Credit notes", group="Finance", permission=FINANCE,
    description="Credit notes issued in the period: the invoice each credits, net, tax and total, the reason.",
    source="billing invoices of kind credit note, by date",
    params=[CURRENCY],
    columns=[Column("day", "Date", DATE), Column("number", "Credit note"), Column("customer", "Customer"),
             Column("credited_invoice", "Credits invoice"), Column("currency", "Currency"),
             Column("net", "Net", MONEY, total=True), Column("tax", "Tax", MONEY, total=True),
             Column("total", "Total", MONEY, total=True), Column("reason", "Reason")],
    query=lambda p: sql(CREDIT_NOTES, args(p))))

LEDGER_KINDS = """
SELECT t.kind, t.currency, count(*) AS transfers, sum(t.amount) AS amount
  FROM ledger_transfer t
 WHERE t.created_at >= %(start)s AND t.created_at < %(end)s
   AND (%(currency)s::text IS NULL OR t.currency = %(currency)s)
   AND (%(branch)s::text IS NULL OR t.branch = %(branch)s)
 GROUP BY 1, 2 ORDER BY 2, 1
"""

register(Report(
    code="ledger-movements", name="Ledger movements by kind", group="Finance", permission=FINANCE,
    description="Every transfer of the period by kind (payment, charge, tax, refund, reversal, adjustment, "
                "voucher, …) and currency: how many and how much.",
    source="ledger transfers by transfer time",
    params=[CURRENCY, BRANCH],
    columns=[Column("kind", "Kind", labels=choices_of("ledger.Transfer", "kind")), Column("currency", "Currency"),
             Column("transfers", "Transfers", COUNT, total=True),
             Column("amount", "Amount", MONEY, total=True)],
    query=lambda p: sql(LEDGER_KINDS, args(p)), chart=Chart(x="kind", y="amount", series="currency")))

ADJUSTMENTS = """
SELECT {d} AS day, t.currency,
       count(*) FILTER (WHERE ca.kind = 'customer') AS credits, coalesce(sum(t.amount) FILTER (WHERE ca.kind = 'customer'), 0) AS credited,
       count(*) FILTER (WHERE da.kind = 'customer') AS debits, coalesce(sum(t.amount) FILTER (WHERE da.kind = 'customer'), 0) AS debited
  FROM ledger_transfer t
  JOIN ledger_ledgeraccount da ON da.id = t.debit_account_id
  JOIN ledger_ledgeraccount ca ON ca.id = t.credit_account_id
 WHERE t.kind = 'adjustment' AND t.created_at >= %(start)s AND t.created_at < %(end)s
   AND (%(currency)s::text IS NULL OR t.currency = %(currency)s)
 GROUP BY 1, 2 ORDER BY 1, 2
"""

register(Report(
    code="adjustments", name="Balance adjustments", group="Finance", permission=FINANCE,
    description="Operator adjustments per day: in the customers' favour (credited) and against them (debited).",
    source="ledger transfers of kind adjustment",
    params=[CURRENCY],
    columns=[Column("day", "Day", DATE), Column("currency", "Currency"),
             Column("credits", "In favour", COUNT, total=True), Column("credited", "Credited", MONEY, total=True),
             Column("debits", "Against", COUNT, total=True), Column("debited", "Debited", MONEY, total=True)],
    query=lambda p: sql(ADJUSTMENTS.format(d=day("t.created_at")), args(p))))

# Monthly recurring revenue: active subscriptions × their tariff's recurring fee in force (a daily
# fee counts 30 days). Future charges: the same fees over the next 30 days.
MRR = """
WITH pv AS (
  SELECT DISTINCT ON (tariff_id) tariff_id, recurring_fee FROM catalog_priceversion
   WHERE valid_from <= %(as_of)s ORDER BY tariff_id, valid_from DESC)
SELECT tr.code AS tariff, tr.name AS tariff_name, tr.currency, count(*) AS subscriptions,
       sum(CASE WHEN tr.period = 'day' THEN pv.recurring_fee * 30 ELSE pv.recurring_fee END) AS mrr
  FROM subscriptions_subscription s JOIN catalog_tariff tr ON tr.id = s.tariff_id
  JOIN pv ON pv.tariff_id = tr.id
 WHERE s.status = 'active'
   AND (%(currency)s::text IS NULL OR tr.currency = %(currency)s)
   AND (%(tariff)s::text IS NULL OR tr.code = %(tariff)s)
 GROUP BY 1, 2, 3 ORDER BY 3, 5 DESC
"""

register(Report(
    code="mrr", name="Monthly recurring revenue", group="Finance", permission=FINANCE, period=False,
    description="Monthly recurring revenue today, per tariff: the active subscriptions and their tariff's "
                "recurring fee in force (a daily fee counts 30 days).",
    source="active subscriptions; tariffs' price versions in force today",
    params=[CURRENCY, TARIFF],
    columns=[Column("tariff", "Tariff"), Column("tariff_name", "Name"), Column("currency", "Currency"),
             Column("subscriptions", "Active subscriptions", COUNT, total=True),
             Column("mrr", "MRR", MONEY, total=True)],
    query=lambda p: sql(MRR, args(p, as_of=today())), chart=Chart(x="tariff", y="mrr", series="currency")))

FUTURE = """
WITH pv AS (
  SELECT DISTINCT ON (tariff_id) tariff_id, recurring_fee FROM catalog_priceversion
   WHERE valid_from <= %(as_of)s ORDER BY tariff_id, valid_from DESC)
SELECT st.code AS service_type, tr.currency, count(*) AS subscriptions,
       sum(CASE WHEN tr.period = 'day' THEN pv.recurring_fee * 30 ELSE pv.recurring_fee END) AS next_30_days
  FROM subscriptions_subscription s JOIN catalog_tariff tr ON tr.id = s.tariff_id
  JOIN catalog_service sv ON sv.id = s.service_id JOIN catalog_servicetype st ON st.id = sv.service_type_id
  JOIN pv ON pv.tariff_id = tr.id
 WHERE s.status IN ('active', 'pending')
   AND (%(currency)s::text IS NULL OR tr.currency = %(currency)s)
   AND (%(service_type)s::text IS NULL OR st.code = %(service_type)s)
 GROUP BY 1, 2 ORDER BY 2, 1
"""

register(Report(
    code="future-charges", name="Future charges (next 30 days)", group="Finance", permission=FINANCE, period=False,
    description="The recurring fees the active and pending subscriptions will be charged over the next "
                "30 days at today's prices, per service type (before taxes, discounts and usage).",
    source="active and pending subscriptions; price versions in force today",
    params=[CURRENCY, SERVICE_TYPE],
    columns=[Column("service_type", "Service type"), Column("currency", "Currency"),
             Column("subscriptions", "Subscriptions", COUNT, total=True),
             Column("next_30_days", "Next 30 days", MONEY, total=True)],
    query=lambda p: sql(FUTURE, args(p, as_of=today())),
    chart=Chart(x="service_type", y="next_30_days", series="currency")))

DUNNING = """
SELECT st.name AS step, da.action, count(*) AS actions,
       count(*) FILTER (WHERE da.cleared_at IS NOT NULL) AS cleared,
       count(*) FILTER (WHERE da.cleared_at IS NULL) AS still_open,
       round(avg(da.days_overdue), 1) AS avg_days_overdue
  FROM billing_dunningaction da JOIN billing_dunningstep st ON st.id = da.step_id
 WHERE da.taken_at >= %(start)s AND da.taken_at < %(end)s
 GROUP BY 1, 2 ORDER BY 1, 2
"""

register(Report(
    code="dunning-outcomes", name="Dunning outcomes", group="Finance", permission=FINANCE,
    description="Dunning actions taken in the period per step and action, and how many were cleared "
                "(the customer paid) or are still open.",
    source="billing dunning actions, by the time taken",
    columns=[Column("step", "Step"), Column("action", "Action", labels=choices_of("billing.DunningAction", "action")), Column("actions", "Taken", COUNT, total=True),
             Column("cleared", "Cleared", COUNT, total=True), Column("still_open", "Still open", COUNT, total=True),
             Column("avg_days_overdue", "Average days overdue", NUMBER)],
    query=lambda p: sql(DUNNING, args(p)), chart=Chart(x="step", y="actions", series="action")))



# MRR and its movement: the monthly fee (a daily fee × 30) of each subscription in service, at the
# price in force on the day. new = activations, upgrade/downgrade = tariff changes that raise/lower
# it, churn = terminations; price changes = what the price versions changed (the rest).
# Price versions as intervals: fee (a daily fee × 30) of a tariff from valid_from until the next one.
PVR = """pvr AS (
  SELECT pv.tariff_id, pv.valid_from,
         lead(pv.valid_from) OVER (PARTITION BY pv.tariff_id ORDER BY pv.valid_from) AS valid_until,
         CASE WHEN t.period = 'day' THEN pv.recurring_fee * 30 ELSE pv.recurring_fee END AS fee
    FROM catalog_priceversion pv JOIN catalog_tariff t ON t.id = pv.tariff_id)"""


def _fee(alias, tariff, on):
    """A LEFT JOIN of the fee in force for `tariff` on day `on` (SQL expressions), as alias.fee."""
    return (f"LEFT JOIN pvr {alias} ON {alias}.tariff_id = {tariff} AND {alias}.valid_from <= {on} "
            f"AND ({alias}.valid_until IS NULL OR {alias}.valid_until > {on})")


MRR_AT = f"""
WITH {PVR}
SELECT tr.currency, sum(coalesce(f.fee, 0)) AS mrr
  FROM subscriptions_subscription s JOIN subscriptions_tariffperiod tp ON tp.subscription_id = s.id
  JOIN catalog_tariff tr ON tr.id = tp.tariff_id
  {_fee("f", "tp.tariff_id", "%(on)s")}
 WHERE s.activated_on <= %(on)s AND (s.terminated_on IS NULL OR s.terminated_on > %(on)s)
   AND tp.valid_from <= %(on)s AND (tp.valid_until IS NULL OR tp.valid_until > %(on)s)
   AND (%(currency)s::text IS NULL OR tr.currency = %(currency)s)
 GROUP BY 1
"""
MRR_EVENTS = f"""
WITH {PVR},
new AS (
  SELECT tr.currency, sum(coalesce(f.fee, 0)) AS amount, count(*) AS n
    FROM subscriptions_subscription s
    CROSS JOIN LATERAL (SELECT tp.tariff_id FROM subscriptions_tariffperiod tp WHERE tp.subscription_id = s.id
                         ORDER BY tp.valid_from LIMIT 1) first_tp
    JOIN catalog_tariff tr ON tr.id = first_tp.tariff_id
    {_fee("f", "first_tp.tariff_id", "s.activated_on")}
   WHERE s.activated_on BETWEEN %(day_from)s + 1 AND %(day_to)s GROUP BY 1),
churn AS (
  SELECT tr.currency, sum(coalesce(f.fee, 0)) AS amount, count(*) AS n
    FROM subscriptions_subscription s
    CROSS JOIN LATERAL (SELECT tp.tariff_id FROM subscriptions_tariffperiod tp WHERE tp.subscription_id = s.id
                         ORDER BY tp.valid_from DESC LIMIT 1) last_tp
    JOIN catalog_tariff tr ON tr.id = last_tp.tariff_id
    {_fee("f", "last_tp.tariff_id", "s.terminated_on - 1")}
   WHERE s.terminated_on BETWEEN %(day_from)s + 1 AND %(day_to)s GROUP BY 1),
changes AS (
  SELECT tr.currency, coalesce(fa.fee, 0) - coalesce(fb.fee, 0) AS delta
    FROM subscriptions_tariffperiod tp JOIN subscriptions_tariffperiod prev
      ON prev.subscription_id = tp.subscription_id AND prev.valid_until = tp.valid_from
    JOIN catalog_tariff tr ON tr.id = tp.tariff_id
    JOIN subscriptions_subscription s ON s.id = tp.subscription_id
    {_fee("fa", "tp.tariff_id", "tp.valid_from")}
    {_fee("fb", "prev.tariff_id", "tp.valid_from - 1")}
   WHERE tp.valid_from BETWEEN %(day_from)s + 1 AND %(day_to)s
     AND (s.terminated_on IS NULL OR s.terminated_on > %(day_to)s)),
ch AS (
  SELECT currency, sum(delta) FILTER (WHERE delta > 0) AS up, count(*) FILTER (WHERE delta > 0) AS ups,
         sum(-delta) FILTER (WHERE delta < 0) AS down, count(*) FILTER (WHERE delta < 0) AS downs
    FROM changes GROUP BY 1)
SELECT cur.currency, coalesce(new.amount, 0) AS new, coalesce(new.n, 0) AS new_count,
       coalesce(ch.up, 0) AS upgrade, coalesce(ch.ups, 0) AS upgrades,
       coalesce(ch.down, 0) AS downgrade, coalesce(ch.downs, 0) AS downgrades,
       coalesce(churn.amount, 0) AS churn, coalesce(churn.n, 0) AS churned
  FROM (SELECT currency FROM new UNION SELECT currency FROM churn UNION SELECT currency FROM ch) cur
  LEFT JOIN new ON new.currency = cur.currency LEFT JOIN churn ON churn.currency = cur.currency
  LEFT JOIN ch ON ch.currency = cur.currency
 WHERE (%(currency)s::text IS NULL OR cur.currency = %(currency)s)
"""


def mrr_movement(params):
    """MRR at the end of the day before the period and at its last day; the movement between."""
    import datetime as dt

    a = args(params)
    start_day = params["from"] - dt.timedelta(days=1)
    at_start = {r["currency"]: r["mrr"] or 0 for r in sql(MRR_AT, {**a, "on": start_day})}
    at_end = {r["currency"]: r["mrr"] or 0 for r in sql(MRR_AT, {**a, "on": params["to"]})}
    events = sql(MRR_EVENTS, {**a, "day_from": start_day})
    by_cur = {e["currency"]: e for e in events}
    rows = []
    for cur in sorted(set(at_start) | set(at_end) | set(by_cur)):
        e = by_cur.get(cur, {"new": 0, "new_count": 0, "upgrade": 0, "upgrades": 0, "downgrade": 0, "downgrades": 0,
                             "churn": 0, "churned": 0})
        start, end = at_start.get(cur, 0), at_end.get(cur, 0)
        explained = start + e["new"] + e["upgrade"] - e["downgrade"] - e["churn"]
        rows.append({"currency": cur, "mrr_start": start, **e, "price_changes": end - explained, "mrr_end": end})
    return rows


register(Report(
    code="mrr-movement", name="MRR movement", group="Finance", permission=FINANCE,
    description="Monthly recurring revenue at the start of the period and at its end, and what moved it: new "
                "subscriptions, upgrades and downgrades (tariff changes), churn (terminations) and price changes "
                "(new price versions and everything else), per currency. A daily fee counts 30 days.",
    source="subscriptions (activation, termination), their tariff periods, tariffs' price versions in force "
           "on each day",
    params=[CURRENCY],
    columns=[Column("currency", "Currency"), Column("mrr_start", "MRR at start", MONEY, total=True),
             Column("new", "New", MONEY, total=True), Column("new_count", "New subscriptions", COUNT, total=True),
             Column("upgrade", "Upgrades", MONEY, total=True), Column("upgrades", "Upgraded", COUNT, total=True),
             Column("downgrade", "Downgrades", MONEY, total=True), Column("downgrades", "Downgraded", COUNT, total=True),
             Column("churn", "Churn", MONEY, total=True), Column("churned", "Churned", COUNT, total=True),
             Column("price_changes", "Price changes", MONEY, total=True), Column("mrr_end", "MRR at end", MONEY, total=True)],
    query=mrr_movement, chart=Chart(x="currency", y="mrr_end")))
