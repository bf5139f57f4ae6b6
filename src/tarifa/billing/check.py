"""Revenue assurance: `tarifa billing check --period YYYY-MM` and the check screen.

For a period (of one cycle or all):
- `missing_invoices`: every billable account with something to invoice has an invoice for the
  period (an account with nothing to invoice gets none: zero invoices are not issued);
- `duplicate_invoices`: … exactly one (the database refuses a second; checked anyway);
- `uninvoiced_sources`: every fee, usage charge, adjustment, rated postpaid usage and pending
  item of a billable account up to the period's end stands on an invoice line;
- `line_totals`: an invoice's total is its net plus its tax, its exact amount is the sum of
  its lines, a line's amount is the sum of its sources (per-line rounding: the totals are
  the sums of the lines);
- `ledger`: an issued invoice's (or credit note's) total equals what its sources and its own
  postings moved on the customer's ledger account, and each source's amount is its transfer's.
Writes nothing (a temporary table only); offenders are named (up to 50 per check).
"""

from django.db import connection

from tarifa.kernel.errors import DomainError

from .billrun import BILLABLE_SQL
from .models import BillCycle
from .services import check_period_closed, parse_period, period_of
from .sources import params as source_params
from .sources import sources_sql

LIMIT = 50

MISSING_SQL = f"""
SELECT ba.number, 'no invoice for ' || %(period)s FROM ({BILLABLE_SQL}) b JOIN ledger_billingaccount ba ON ba.id = b.id
WHERE NOT EXISTS (SELECT 1 FROM billing_invoice i WHERE i.billing_account_id = b.id AND i.period = %(period)s
                  AND i.kind = 'invoice')
  -- nothing to invoice, no invoice: zero invoices are not issued
  AND EXISTS (SELECT 1 FROM billing_unbilled u WHERE u.account_id = b.id)
ORDER BY ba.number LIMIT %(limit)s
"""

DUPLICATE_SQL = """
SELECT ba.number, count(*) || ' invoices for ' || %(period)s FROM billing_invoice i
JOIN ledger_billingaccount ba ON ba.id = i.billing_account_id
WHERE i.period = %(period)s AND i.kind = 'invoice' AND i.cycle_id = %(cycle)s
GROUP BY ba.number HAVING count(*) > 1 LIMIT %(limit)s
"""

# The period's invoices of the cycle and the credit notes on them (a UNION of ids: an
# `OR … IN (subquery)` is a subplan run for every row).
PERIOD_INVOICE_IDS = """
WITH ids AS (
  SELECT id FROM billing_invoice WHERE cycle_id = %(cycle)s AND period = %(period)s
  UNION
  SELECT c.id FROM billing_invoice c JOIN billing_invoice o ON o.id = c.credited_invoice_id
  WHERE c.cycle_id = %(cycle)s AND o.cycle_id = %(cycle)s AND o.period = %(period)s
)"""

LINE_TOTALS_SQL = PERIOD_INVOICE_IDS + """, inv AS MATERIALIZED (
  SELECT i.* FROM billing_invoice i JOIN ids ON ids.id = i.id
), l AS (
  SELECT invoice_id, sum(amount) AS amount, sum(net) AS net, sum(tax) AS tax, sum(total) AS total, count(*) AS n
  FROM billing_invoiceline WHERE invoice_id IN (SELECT id FROM inv) GROUP BY invoice_id
), s AS (
  SELECT l.invoice_id, count(*) AS bad FROM billing_invoiceline l
  JOIN (SELECT line_id, sum(amount) AS amount FROM billing_invoicedsource
        WHERE invoice_id IN (SELECT id FROM inv) GROUP BY line_id) x ON x.line_id = l.id
  WHERE x.amount <> l.amount GROUP BY l.invoice_id
)
-- Offenders first, in full, then the limit: with the limit inside, the planner hopes to
-- meet 50 offenders early and joins a million invoices by nested loops.
, offenders AS MATERIALIZED (
SELECT coalesce(nullif(inv.number, ''), inv.id::text) AS invoice,
       format('total %%s, net %%s + tax %%s; exact %%s, lines %%s (net %%s, tax %%s, total %%s); %%s lines off their sources',
              inv.total, inv.subtotal, inv.tax_total, inv.ledger_amount, coalesce(l.amount, 0), coalesce(l.net, 0),
              coalesce(l.tax, 0), coalesce(l.total, 0), coalesce(s.bad, 0))
FROM inv LEFT JOIN l ON l.invoice_id = inv.id LEFT JOIN s ON s.invoice_id = inv.id
WHERE inv.total <> inv.subtotal + inv.tax_total
   OR coalesce(s.bad, 0) > 0
   OR (inv.kind = 'invoice' AND inv.ledger_amount <> coalesce(l.amount, 0))
   OR (inv.kind = 'invoice' AND inv.rounding = 'line' AND (inv.total <> coalesce(l.total, 0)
       OR inv.subtotal <> coalesce(l.net, 0) OR inv.tax_total <> coalesce(l.tax, 0)))
)
SELECT * FROM offenders LIMIT %(limit)s
"""

LEDGER_SQL = PERIOD_INVOICE_IDS + """, inv AS MATERIALIZED (
  SELECT i.id, i.number, i.total, ba.ledger_account_id AS lid FROM billing_invoice i
  JOIN ids ON ids.id = i.id
  JOIN ledger_billingaccount ba ON ba.id = i.billing_account_id
  WHERE i.state <> 'draft'
), src AS (
  SELECT s.invoice_id, sum(CASE WHEN t.debit_account_id = inv.lid THEN t.amount ELSE -t.amount END) AS amount,
         count(*) FILTER (WHERE s.amount <> CASE WHEN t.debit_account_id = inv.lid THEN t.amount ELSE -t.amount END)
           AS off
  FROM billing_invoicedsource s JOIN inv ON inv.id = s.invoice_id JOIN ledger_transfer t ON t.id = s.source_id
  WHERE s.source_type = 'transfer' GROUP BY s.invoice_id
), own AS (
  SELECT inv.id AS invoice_id,
         sum(CASE WHEN t.debit_account_id = inv.lid THEN t.amount WHEN t.credit_account_id = inv.lid THEN -t.amount
                  ELSE 0 END) AS amount
  FROM inv JOIN ledger_transfer t ON t.reference_type = 'billing.invoice' AND t.reference_id = inv.id::text
  GROUP BY inv.id
)
, offenders AS MATERIALIZED (
SELECT inv.number, format('total %%s, ledger %%s (sources %%s, own postings %%s), %%s sources off their transfers',
                          inv.total, coalesce(src.amount, 0) + coalesce(own.amount, 0), coalesce(src.amount, 0),
                          coalesce(own.amount, 0), coalesce(src.off, 0))
FROM inv LEFT JOIN src ON src.invoice_id = inv.id LEFT JOIN own ON own.invoice_id = inv.id
WHERE inv.total <> coalesce(src.amount, 0) + coalesce(own.amount, 0) OR coalesce(src.off, 0) > 0
)
SELECT * FROM offenders LIMIT %(limit)s
"""


def _uninvoiced(cursor, args) -> list:
    cursor.execute("DROP TABLE IF EXISTS billing_scope")
    cursor.execute(f"""CREATE TEMP TABLE billing_scope AS
        SELECT b.id AS account_id, ba.ledger_account_id AS ledger_id, %(end)s::date AS period_end
        FROM ({BILLABLE_SQL}) b JOIN ledger_billingaccount ba ON ba.id = b.id""", args)
    cursor.execute("ANALYZE billing_scope")
    # Every source not on an invoice line, kept for the missing-invoice check (normally none).
    cursor.execute("DROP TABLE IF EXISTS billing_unbilled")
    cursor.execute(f"""CREATE TEMP TABLE billing_unbilled AS
                       SELECT src.account_id, ba.number || ' ' || src.type || ' ' || src.id AS subject,
                              format('%%s %%s on %%s not on any invoice line', src.kind, src.amount, src.day_from)
                                AS detail, ba.number, src.day_from
                       FROM ({sources_sql()}) src JOIN ledger_billingaccount ba ON ba.id = src.account_id""",
                   {**args, **source_params()})
    cursor.execute("SELECT subject, detail FROM billing_unbilled ORDER BY number, day_from LIMIT %(limit)s", args)
    found = cursor.fetchall()
    cursor.execute("DROP TABLE billing_scope")
    return found


def check(*, period: str, cycle: str | None = None) -> dict:
    """Run every check for `period` (all live cycles, or one); {"ok", "checks", "problems", …}."""
    period = parse_period(period)
    cycles = list(BillCycle.objects.filter(code=cycle)) if cycle else list(
        BillCycle.objects.filter(archived_at__isnull=True).order_by("code"))
    checks: dict[str, int] = {}
    problems = []
    # A period not closed yet is not billed yet: nothing of it is checked, the cycle is reported.
    not_closed = []
    for c in list(cycles):
        try:
            check_period_closed(c, period)
        except DomainError as exc:
            if exc.code != "period_not_closed":
                raise
            not_closed.append({"cycle": c.code, "code": exc.code, "message": exc.message})
            cycles.remove(c)
    invoices = 0
    with connection.cursor() as cursor:
        in_tx = connection.in_atomic_block
        # Fresh statistics: right after a bill run the planner would think these tables empty.
        cursor.execute("ANALYZE billing_invoice, billing_invoiceline, billing_invoicedsource, billing_allocation")
        if not in_tx:
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")  # temp tables: not READ ONLY
        try:
            for c in cycles:
                start, end = period_of(c, period)
                args = {"cycle": c.pk, "period": period, "start": start, "end": end, "limit": LIMIT}
                cursor.execute("SELECT count(*) FROM billing_invoice WHERE cycle_id = %(cycle)s AND period = %(period)s",
                               args)
                invoices += cursor.fetchone()[0]
                for name, sql in (("uninvoiced_sources", None), ("missing_invoices", MISSING_SQL),
                                  ("duplicate_invoices", DUPLICATE_SQL), ("line_totals", LINE_TOTALS_SQL),
                                  ("ledger", LEDGER_SQL)):
                    if sql is None:
                        found = _uninvoiced(cursor, args)
                    else:
                        cursor.execute(sql, args)
                        found = cursor.fetchall()
                    checks[name] = checks.get(name, 0) + len(found)
                    if name == "missing_invoices":
                        cursor.execute("DROP TABLE billing_unbilled")
                    problems += [{"check": name, "cycle": c.code, "subject": subject, "detail": detail}
                                 for subject, detail in found]
        finally:
            if not in_tx:
                cursor.execute("COMMIT")
    return {"ok": not problems, "period": period, "cycles": [c.code for c in cycles], "invoices": invoices,
            "checks": {name: "ok" if not n else f"{n}{'+' if n >= LIMIT else ''} problems" for name, n in checks.items()},
            "problems": problems, "not_closed": not_closed}


def check_documents() -> dict:
    """What every issued document keeps at any moment, with no period to close first: one invoice per
    account, cycle and period; a total that is its net plus tax and the sum of its lines, lines that
    are the sums of their sources; and on the ledger exactly what the document says. For every cycle
    and period that has invoices (the period checks `missing_invoices` and `uninvoiced_sources` need a
    closed period and a bill run: `check`). Read-only; {"ok", "invoices", "checks", "problems"}."""
    checks = {"duplicate_invoices": 0, "line_totals": 0, "ledger": 0}
    problems = []
    with connection.cursor() as cursor:
        in_tx = connection.in_atomic_block
        if not in_tx:
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            cursor.execute("SELECT cycle_id, period, count(*) FROM billing_invoice WHERE cycle_id IS NOT NULL"
                           " AND kind = 'invoice' GROUP BY cycle_id, period ORDER BY cycle_id, period")
            groups = cursor.fetchall()
            for cycle, period, _n in groups:
                args = {"cycle": cycle, "period": period, "limit": LIMIT}
                for name, sql in (("duplicate_invoices", DUPLICATE_SQL), ("line_totals", LINE_TOTALS_SQL),
                                  ("ledger", LEDGER_SQL)):
                    if name == "duplicate_invoices" and not period:
                        continue  # interim and final invoices have no period: an account may have several
                    cursor.execute(sql, args)
                    found = cursor.fetchall()
                    checks[name] += len(found)
                    problems += [{"check": name, "period": period, "subject": subject, "detail": detail}
                                 for subject, detail in found]
        finally:
            if not in_tx:
                cursor.execute("COMMIT")
    return {"ok": not problems, "invoices": sum(n for _c, _p, n in groups),
            "checks": {name: "ok" if not n else f"{n} problems" for name, n in checks.items()}, "problems": problems}
