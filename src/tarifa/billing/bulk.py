"""Set-based invoice generation for bill runs: `generation.generate` computed in PostgreSQL.

One call invoices a batch of accounts of one cycle and period in one transaction:

1. the batch's accounts not yet invoiced for the period are locked (their ledger rows,
   in id order: the account lock of rule 7);
2. their sources (`sources.SOURCES_SQL`) are staged, grouped into lines by the same keys,
   descriptions and order as the pure function, and taxed by the same arithmetic
   (`catalog.pricing.taxes_for`, rounding per line or per invoice);
3. invoices, lines and `InvoicedSource` rows are inserted (the source id is the primary
   key: a source stands on one line; the (account, period) constraint makes a second
   invoice impossible);
4. the invoices' ledger postings go through the ledger's bulk path with the same keys as
   the one-account path (`invoice:<id>:line:<n>`, `:tax:<code>`, `:rounding`); the
   inclusive taxes taken out of revenue are booked per batch (`invoice-batch:<id>:…`);
5. when the cycle issues on the run, a block of numbers is taken from the series'
   counter (locked, in this transaction: gap-free) and given in account-number order;
   `billing.invoice_issued` events are written to the outbox; payments are allocated.

Python only stages parameters and reads the counts. `tests/test_bulk.py` holds this path
to the pure function on random data.
"""

import datetime as dt

from django.conf import settings
from django.db import connection, transaction

from tarifa.kernel import events
from tarifa.kernel.clock import now, today
from tarifa.kernel.money import CURRENCIES
from tarifa.kernel.models import NumberSequence
from tarifa.ledger import services as ledger

from . import services, sources

KEY_SQL = """CASE WHEN kind = 'recurring_fee' THEN 'fee:' || subscription || ':' || tariff || ':' || fee || ':' || service_type
     WHEN kind = 'usage' THEN 'usage:' || subscription || ':' || fee || ':' || destination || ':' || service_type
     ELSE kind || ':' || id::text END"""

DESCRIPTION_SQL = """left(CASE
     WHEN kind = 'recurring_fee' THEN btrim(service || ' ' || subscription_number || ' ' || tariff
                                           || CASE WHEN fee = 'recurring' THEN '' ELSE ' ' || fee END)
     WHEN kind = 'usage' THEN btrim(service || ' ' || subscription_number || ' ' || fee
                                    || CASE WHEN destination <> '' THEN ' ' || destination ELSE '' END)
     WHEN kind = 'one_time_fee' AND subscription_number <> '' THEN btrim(service || ' ' || subscription_number || ' ' || fee)
     ELSE coalesce(nullif(description, ''), nullif(fee, ''), kind) END, 300)"""

KIND_ORDER_SQL = """CASE kind WHEN 'recurring_fee' THEN 0 WHEN 'one_time_fee' THEN 1 WHEN 'usage' THEN 2
     WHEN 'adjustment' THEN 3 WHEN 'discount' THEN 4 ELSE 9 END"""

LINES_SQL = f"""
CREATE TEMP TABLE billing_ln ON COMMIT DROP AS
SELECT g.*, ledger_uuid7() AS line_id,
       row_number() OVER (PARTITION BY g.account_id ORDER BY g.kind_order, g.description COLLATE "C", g.key COLLATE "C")
         AS position
FROM (
  SELECT account_id, key, kind, {KIND_ORDER_SQL} AS kind_order, line_description AS description, service,
         service_type, subscription, min(day_from) AS period_start, max(day_to) AS period_end,
         CASE WHEN kind = 'usage' THEN sum(quantity) ELSE 1 END AS quantity,
         CASE WHEN kind = 'usage' THEN fee ELSE '' END AS unit, sum(free_units) AS free_units, destination,
         sum(amount) AS amount, coalesce(sum(amount) FILTER (WHERE NOT booked), 0) AS booked_amount
  FROM (SELECT s.*, {DESCRIPTION_SQL} AS line_description FROM billing_src s) s0
  GROUP BY account_id, key, kind, line_description, service, service_type, subscription,
           CASE WHEN kind = 'usage' THEN fee ELSE '' END, destination
) g
"""

# Per line and tax: taxes_for() with the line's rates (inclusive first, by code; then exclusive).
# A line is taxed in parts: one part (the line) for every line but an untyped discount, which
# is spread over the account's charges (`generation.spread_shares`: in proportion to their exact
# amounts, 6 places, the last charge in line order taking the remainder), each share taxed at
# its charge's rates. The parts' taxes are then added up per (line, tax).
LINE_TAXES_SQL = """
CREATE TEMP TABLE billing_lt ON COMMIT DROP AS
WITH la0 AS (
  SELECT l.line_id, l.account_id, l.kind, l.service_type, l.position, l.amount,
         CASE WHEN %(per_line)s THEN round(l.amount, %(d)s) ELSE l.amount END AS a,
         (l.kind = 'discount' AND l.service_type = '') AS spread
  FROM billing_ln l
), tg AS (
  SELECT la0.*, sum(amount) OVER (PARTITION BY account_id) AS w,
         row_number() OVER (PARTITION BY account_id ORDER BY position DESC) AS rev
  FROM la0 WHERE kind NOT IN ('discount', 'adjustment') AND amount > 0
), sp AS (
  SELECT d.line_id, d.account_id, d.a AS line_a, tg.position AS part, tg.service_type, tg.rev,
         round(d.a * tg.amount / tg.w, 6) AS share
  FROM la0 d JOIN tg ON tg.account_id = d.account_id WHERE d.spread
), parts AS (
  SELECT line_id, account_id, 0::bigint AS part, service_type, a,
         CASE WHEN service_type <> '' THEN 'revenue:' || service_type ELSE '' END AS counter
  FROM la0 WHERE NOT spread
  UNION ALL
  SELECT line_id, account_id, part, service_type,
         CASE WHEN rev = 1 THEN line_a - (sum(share) OVER (PARTITION BY line_id) - share) ELSE share END,
         'discounts'
  FROM sp
), r AS (
  SELECT p.line_id, p.part, p.account_id, p.counter, t.code, t.rate, t.inclusive, p.a,
         sum(t.rate) FILTER (WHERE t.inclusive) OVER w AS incl_rate,
         count(*) FILTER (WHERE t.inclusive) OVER w AS n_incl,
         row_number() OVER (PARTITION BY p.line_id, p.part, t.inclusive ORDER BY t.code COLLATE "C") AS k
  FROM parts p
  JOIN billing_batch b ON b.account_id = p.account_id
  JOIN billing_taxrule t ON t.service_type = p.service_type AND t.scheme_id IS NOT DISTINCT FROM b.tax_scheme_id
  WINDOW w AS (PARTITION BY p.line_id, p.part)
), n AS (
  SELECT r.*, CASE WHEN coalesce(r.incl_rate, 0) > 0 THEN round(r.a * 100 / (100 + r.incl_rate), 6) ELSE r.a END AS net
  FROM r
), t AS (
  SELECT n.*, round(n.net * n.rate / 100, 6) AS raw FROM n
), x AS (
  SELECT t.*, CASE WHEN t.inclusive AND t.k = t.n_incl
                   THEN t.a - t.net - (sum(t.raw) FILTER (WHERE t.inclusive) OVER (PARTITION BY t.line_id, t.part)
                                       - t.raw)
                   ELSE t.raw END AS tax_exact
  FROM t
)
SELECT line_id, account_id, counter, code, rate, inclusive,
       CASE WHEN %(per_line)s THEN round(sum(net), %(d)s) ELSE sum(net) END AS base,
       CASE WHEN %(per_line)s THEN round(sum(tax_exact), %(d)s) ELSE sum(tax_exact) END AS tax,
       sum(tax_exact) AS tax_exact
FROM x GROUP BY line_id, account_id, counter, code, rate, inclusive
"""

LINE_AMOUNTS_SQL = """
CREATE TEMP TABLE billing_la ON COMMIT DROP AS
SELECT l.line_id, l.account_id,
       CASE WHEN %(per_line)s THEN round(l.amount, %(d)s) ELSE l.amount END AS a,
       coalesce(sum(t.tax) FILTER (WHERE t.inclusive), 0) AS incl,
       coalesce(sum(t.tax) FILTER (WHERE NOT t.inclusive), 0) AS excl,
       CASE WHEN %(per_line)s THEN round(l.amount, %(d)s) ELSE l.amount END
         - coalesce(sum(t.tax_exact) FILTER (WHERE t.inclusive), 0) AS net_exact,
       coalesce(jsonb_agg(jsonb_build_object('code', t.code, 'rate', t.rate::text, 'inclusive', t.inclusive,
                                             'base', t.base::text, 'tax', t.tax::text)
                          ORDER BY (NOT t.inclusive), t.code COLLATE "C") FILTER (WHERE t.code IS NOT NULL),
                '[]'::jsonb) AS taxes
FROM billing_ln l LEFT JOIN billing_lt t ON t.line_id = l.line_id
GROUP BY l.line_id, l.account_id, l.amount
"""

SUMMARY_SQL = """
CREATE TEMP TABLE billing_ts ON COMMIT DROP AS
SELECT account_id, code, rate, inclusive,
       CASE WHEN %(per_line)s THEN sum(base) ELSE round(sum(base), %(d)s) END AS base,
       CASE WHEN %(per_line)s THEN sum(tax) ELSE round(sum(tax), %(d)s) END AS tax
FROM billing_lt GROUP BY account_id, code, rate, inclusive
"""

TOTALS_SQL = """
CREATE TEMP TABLE billing_tot ON COMMIT DROP AS
SELECT b.account_id, b.invoice_id,
       coalesce(l.amount, 0) AS ledger_amount, coalesce(l.net, 0) AS l_net, coalesce(l.tax, 0) AS l_tax,
       coalesce(l.total, 0) AS l_total, coalesce(s.tax, 0) AS s_tax, coalesce(s.excl, 0) AS s_excl,
       coalesce(s.summary, '[]'::jsonb) AS tax_summary
FROM billing_batch b
LEFT JOIN (
  SELECT ln.account_id, sum(ln.amount) AS amount, sum(CASE WHEN %(per_line)s THEN la.a - la.incl ELSE la.net_exact END) AS net,
         sum(la.incl + la.excl) AS tax, sum(CASE WHEN %(per_line)s THEN la.a ELSE ln.amount END + la.excl) AS total
  FROM billing_ln ln JOIN billing_la la ON la.line_id = ln.line_id GROUP BY ln.account_id
) l ON l.account_id = b.account_id
LEFT JOIN (
  SELECT account_id, sum(tax) AS tax, coalesce(sum(tax) FILTER (WHERE NOT inclusive), 0) AS excl,
         jsonb_agg(jsonb_build_object('code', code, 'rate', rate::text, 'inclusive', inclusive, 'base', base::text,
                                      'tax', tax::text) ORDER BY code COLLATE "C", rate) AS summary
  FROM billing_ts GROUP BY account_id
) s ON s.account_id = b.account_id
"""

INSERT_INVOICES_SQL = """
INSERT INTO billing_invoice (id, branch, created_at, updated_at, number, kind, purpose, billing_account_id, customer_id,
  cycle_id, period, period_start, period_end, invoice_date, due_date, currency, state, rounding, rounding_note, subtotal,
  tax_total, total, ledger_amount, paid_amount, credited_amount, tax_summary, credited_invoice_id, reason, bill_run_id,
  language, issued_at)
SELECT b.invoice_id, %(branch)s, %(now)s, %(now)s, '', 'invoice', 'regular', b.account_id, b.customer_id, %(cycle)s,
  %(period)s,
  coalesce(rs.start, %(start)s),
  %(end)s, %(invoice_date)s, %(due_date)s, b.currency, 'draft', %(rounding)s, %(note)s,
  CASE WHEN %(per_line)s THEN t.l_net ELSE round(t.ledger_amount, %(d)s) + t.s_excl - t.s_tax END,
  CASE WHEN %(per_line)s THEN t.l_tax ELSE t.s_tax END,
  CASE WHEN %(per_line)s THEN t.l_total ELSE round(t.ledger_amount, %(d)s) + t.s_excl END,
  t.ledger_amount, 0, 0, t.tax_summary, NULL, '', %(run)s, b.language, NULL
FROM billing_batch b JOIN billing_tot t ON t.account_id = b.account_id LEFT JOIN billing_rs rs ON rs.account_id = b.account_id
"""

# Where the last interim or final invoice inside the period ended (services.regular_start), for the
# batch's accounts in one statement — not a subquery per invoice row: planned while billing_invoice
# was nearly empty (a fresh run), that subquery scanned the whole table once per row while parallel
# batches filled it (a 12,500-account batch ran for minutes at 100,000 accounts).
REGULAR_START_SQL = """
CREATE TEMP TABLE billing_rs ON COMMIT DROP AS
WITH x AS MATERIALIZED (  -- read once, whatever the statistics say
  SELECT billing_account_id, period_end FROM billing_invoice
  WHERE kind = 'invoice' AND purpose IN ('interim', 'final') AND period_end >= %(start)s AND period_end < %(end)s
)
SELECT x.billing_account_id AS account_id, max(x.period_end) + 1 AS start
FROM x JOIN billing_batch b ON b.account_id = x.billing_account_id
GROUP BY x.billing_account_id
"""

INSERT_LINES_SQL = """
INSERT INTO billing_invoiceline (id, invoice_id, position, kind, key, description, service, service_type,
  subscription_id, period_start, period_end, quantity, unit, free_units, destination, amount, net, tax, total, taxes,
  booked)
SELECT l.line_id, b.invoice_id, l.position, l.kind, left(l.key, 200), l.description, l.service, l.service_type,
  nullif(l.subscription, '')::uuid, l.period_start, l.period_end, l.quantity, l.unit, l.free_units, l.destination,
  l.amount,
  CASE WHEN %(per_line)s THEN la.a - la.incl ELSE la.net_exact END, la.incl + la.excl,
  CASE WHEN %(per_line)s THEN la.a ELSE l.amount END + la.excl, la.taxes, l.booked_amount <> 0
FROM billing_ln l JOIN billing_batch b ON b.account_id = l.account_id JOIN billing_la la ON la.line_id = l.line_id
"""

INSERT_SOURCES_SQL = """
INSERT INTO billing_invoicedsource (source_id, source_type, line_id, invoice_id, amount)
SELECT s.id, s.type, l.line_id, b.invoice_id, s.amount
FROM billing_src s JOIN billing_batch b ON b.account_id = s.account_id
JOIN billing_ln l ON l.account_id = s.account_id AND l.key = s.key
"""

# The invoices' ledger postings, in post_transfers_bulk's column order. `sys` maps system account codes to ids.
POSTINGS_SQL = """
WITH lines AS (
  SELECT b.invoice_id, b.ledger_id, b.currency, l.position, l.kind, l.booked_amount AS amount, l.description,
         CASE WHEN l.kind = 'adjustment' THEN 'adjustments' WHEN l.kind = 'discount' THEN 'discounts'
              WHEN l.service_type <> '' THEN 'revenue:' || l.service_type ELSE 'revenue:other' END AS other
  FROM billing_ln l JOIN billing_batch b ON b.account_id = l.account_id WHERE l.booked_amount <> 0
), taxes AS (
  SELECT b.invoice_id, b.ledger_id, b.currency, s.code, s.rate, s.tax AS amount
  FROM billing_ts s JOIN billing_batch b ON b.account_id = s.account_id WHERE NOT s.inclusive AND s.tax <> 0
), rounding AS (
  SELECT b.invoice_id, b.ledger_id, b.currency,
         CASE WHEN %(per_line)s THEN t.l_total ELSE round(t.ledger_amount, %(d)s) + t.s_excl END
           - t.ledger_amount - t.s_excl AS amount
  FROM billing_tot t JOIN billing_batch b ON b.account_id = t.account_id
), incl AS (
  SELECT b.currency, lt.code, lt.counter, sum(lt.tax) AS amount
  FROM billing_lt lt JOIN billing_batch b ON b.account_id = lt.account_id
  WHERE lt.inclusive AND lt.counter <> '' GROUP BY b.currency, lt.code, lt.counter
)
SELECT CASE WHEN x.amount > 0 THEN x.debit ELSE x.credit END, CASE WHEN x.amount > 0 THEN x.credit ELSE x.debit END,
       abs(x.amount), x.currency, x.kind, x.key, x.tags, x.ref_type, x.ref_id, x.memo
FROM (
  SELECT l.ledger_id AS debit, sa.id AS credit, l.amount, l.currency,
         CASE WHEN l.kind IN ('usage', 'one_time_fee') THEN 'charge' ELSE 'adjustment' END AS kind,
         'invoice:' || l.invoice_id || ':line:' || l.position AS key,
         jsonb_build_object('invoice', l.invoice_id::text, 'line', l.position) AS tags,
         'billing.invoice' AS ref_type, l.invoice_id::text AS ref_id, l.description AS memo
  FROM lines l JOIN billing_sys sa ON sa.code = l.other AND sa.currency = l.currency
  UNION ALL
  SELECT t.ledger_id, sa.id, t.amount, t.currency, 'tax', 'invoice:' || t.invoice_id || ':tax:' || t.code,
         jsonb_build_object('invoice', t.invoice_id::text), 'billing.invoice', t.invoice_id::text,
         t.code || ' ' || t.rate::text || '%%'
  FROM taxes t JOIN billing_sys sa ON sa.code = 'taxes_payable:' || t.code AND sa.currency = t.currency
  UNION ALL
  SELECT r.ledger_id, sa.id, r.amount, r.currency, 'adjustment', 'invoice:' || r.invoice_id || ':rounding',
         jsonb_build_object('invoice', r.invoice_id::text, 'purpose', 'rounding'), 'billing.invoice',
         r.invoice_id::text, left(%(note)s, 200)
  FROM rounding r JOIN billing_sys sa ON sa.code = 'rounding' AND sa.currency = r.currency WHERE r.amount <> 0
  UNION ALL
  SELECT rev.id, tp.id, i.amount, i.currency, 'tax',
         'invoice-batch:' || %(batch)s || ':taxincl:' || i.code || ':' || replace(i.counter, 'revenue:', ''),
         jsonb_build_object('invoice', 'batch:' || %(batch)s), 'billing.billrun', %(run_ref)s,
         i.code || ' included in ' || replace(i.counter, 'revenue:', '') || CASE WHEN i.counter LIKE 'revenue:%%'
           THEN ' revenue' ELSE '' END
  FROM incl i JOIN billing_sys rev ON rev.code = i.counter AND rev.currency = i.currency
  JOIN billing_sys tp ON tp.code = 'taxes_payable:' || i.code AND tp.currency = i.currency
  WHERE i.amount <> 0
) x
"""

NUMBER_SQL = """
WITH ordered AS (
  SELECT b.invoice_id AS id, row_number() OVER (ORDER BY b.number COLLATE "C") AS rn FROM billing_batch b
), paid AS (
  SELECT invoice_id, sum(amount) AS amount FROM billing_allocation
  WHERE invoice_id IN (SELECT invoice_id FROM billing_batch) GROUP BY invoice_id
), issued AS (
  UPDATE billing_invoice i
  SET number = %(branch)s || '-' || %(series)s || lpad((%(base)s + o.rn)::text, greatest(7, length((%(base)s + o.rn)::text)), '0'),
      issued_at = %(now)s, updated_at = %(now)s, paid_amount = coalesce(p.amount, 0),
      state = CASE WHEN i.total - coalesce(p.amount, 0) - i.credited_amount <= 0 THEN 'paid'
                   WHEN i.due_date < %(today)s THEN 'overdue' WHEN coalesce(p.amount, 0) > 0 THEN 'partially_paid'
                   ELSE 'issued' END
  FROM ordered o LEFT JOIN paid p ON p.invoice_id = o.id
  WHERE o.id = i.id
  RETURNING i.id, i.number, i.billing_account_id, i.customer_id, i.total, i.currency
)
{events}
"""

# With NUMBER_SQL: the issued invoices' `billing.invoice_issued` events, from the UPDATE's own rows.
EVENTS_SQL = """
INSERT INTO kernel_domainevent (id, name, branch, object_type, object_id, payload, occurred_at, attempts, last_error)
SELECT ledger_uuid7(), 'billing.invoice_issued', %(branch)s, 'billing.invoice', i.id::text,
       jsonb_build_object('invoice', i.id::text, 'number', i.number, 'billing_account', i.billing_account_id::text,
                          'customer', i.customer_id::text, 'total', i.total::text, 'currency', i.currency,
                          'kind', 'invoice'),
       %(now)s, 0, ''
FROM issued i
RETURNING id
"""

BATCH_SQL = """
CREATE TEMP TABLE billing_batch ON COMMIT DROP AS
SELECT ba.id AS account_id, ba.ledger_account_id AS ledger_id, %(end)s::date AS period_end, ba.customer_id, ba.number,
       ba.currency, c.tax_scheme_id, coalesce(nullif(c.language, ''), 'en') AS language,
       ledger_uuid7() AS invoice_id
FROM ledger_billingaccount ba JOIN crm_customer c ON c.id = ba.customer_id
WHERE ba.id = ANY(%(ids)s::uuid[])
  AND NOT EXISTS (SELECT 1 FROM billing_invoice i WHERE i.billing_account_id = ba.id AND i.period = %(period)s
                  AND i.kind = 'invoice')
"""

EVENTS_PER_JOB = 500

TEMP_TABLES = ["billing_batch", "billing_scope", "billing_src", "billing_ln", "billing_lt", "billing_la",
               "billing_ts", "billing_tot", "billing_taxrule", "billing_sys", "billing_rs"]


def _system_accounts(currencies, tax_rows) -> list[tuple]:
    codes = {"adjustments", "discounts", "rounding", "revenue:other"}
    codes |= {f"taxes_payable:{r[2]}" for r in tax_rows}
    from tarifa.catalog.models import ServiceType

    codes |= {f"revenue:{code}" for code in ServiceType.objects.values_list("code", flat=True)}
    return [(code, cur, ledger.system_account(code, cur).pk) for cur in sorted(currencies) for code in sorted(codes)]


class DryRunRollback(Exception):
    def __init__(self, result):
        super().__init__("dry run")
        self.result = result


def invoice_batch(*, cycle, period: str, account_ids: list, actor="system", run=None, dry_run=False,
                  tax_rows=None) -> dict:
    """Invoice the accounts `account_ids` of `cycle` for `period`, set-based, in one transaction.

    Accounts already invoiced for the period are left out (a resumed run), and so are accounts
    with nothing to invoice (no zero invoices). Returns {"invoiced", "nothing_to_invoice",
    "ledger_transfers", "totals", "by_service", "by_tax"}; a dry run computes the
    same and rolls everything back. Raises the first error (the bill run then retries the
    batch account by account to name the offender).
    """
    start, end = services.period_of(cycle, period)
    invoice_date = end + dt.timedelta(days=cycle.invoice_date_offset_days)
    try:
        with transaction.atomic():
            result = _invoice_batch(cycle=cycle, period=period, account_ids=account_ids, actor=actor, run=run,
                                    start=start, end=end, invoice_date=invoice_date, tax_rows=tax_rows)
            if dry_run:
                raise DryRunRollback(result)
    except DryRunRollback as rollback:
        return rollback.result
    return result


def _invoice_batch(*, cycle, period, account_ids, actor, run, start, end, invoice_date, tax_rows) -> dict:
    at, day = now(), today()
    tax_rows = tax_rows if tax_rows is not None else services.tax_table(invoice_date)
    currencies = set()
    with connection.cursor() as cursor:
        for table in TEMP_TABLES:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(BATCH_SQL, {"ids": [str(i) for i in account_ids], "end": end, "period": period})
        cursor.execute("SELECT count(*), array_agg(DISTINCT currency) FROM billing_batch")
        n, curs = cursor.fetchone()
        if not n:
            return {"invoiced": 0, "ledger_transfers": 0, "totals": {}, "by_service": {}, "by_tax": {},
                    "nothing_to_invoice": 0}
        currencies |= set(curs)
        if len(currencies) != 1:
            raise ValueError("a batch holds accounts of one currency")
        currency = next(iter(currencies))
        d = CURRENCIES[currency]
        # The account lock (rule 7), customer accounts in id order, before anything is read.
        cursor.execute("SELECT count(*) FROM (SELECT la.id FROM ledger_ledgeraccount la WHERE la.id IN"
                       " (SELECT ledger_id FROM billing_batch) ORDER BY la.id FOR UPDATE) x")
        cursor.execute("CREATE TEMP TABLE billing_scope ON COMMIT DROP AS"
                       " SELECT account_id, ledger_id, period_end FROM billing_batch")
        cursor.execute("ANALYZE billing_batch; ANALYZE billing_scope")
        cursor.execute(f"CREATE TEMP TABLE billing_src ON COMMIT DROP AS SELECT x.*, {KEY_SQL} AS key"
                       f" FROM ({sources.sources_sql()}) x", sources.params())
        cursor.execute("ANALYZE billing_src")
        cursor.execute("CREATE TEMP TABLE billing_taxrule (scheme_id uuid, service_type text, code text, rate numeric,"
                       " inclusive boolean) ON COMMIT DROP")
        if tax_rows:
            with cursor.cursor.copy("COPY billing_taxrule FROM STDIN") as copy:
                for row in tax_rows:
                    copy.write_row(row)
        per_line = cycle.rounding == "line"
        p = {"per_line": per_line, "d": d}
        cursor.execute(LINES_SQL)
        # Zero invoices are not issued: an account with nothing to invoice is skipped (and counted).
        cursor.execute("DELETE FROM billing_batch b WHERE NOT EXISTS (SELECT 1 FROM billing_ln l"
                       " WHERE l.account_id = b.account_id)")
        empty = cursor.rowcount
        if empty == n:
            return {"invoiced": 0, "ledger_transfers": 0, "totals": {}, "by_service": {}, "by_tax": {},
                    "nothing_to_invoice": empty}
        cursor.execute("ANALYZE billing_ln")
        cursor.execute(LINE_TAXES_SQL, p)
        cursor.execute(LINE_AMOUNTS_SQL, p)
        cursor.execute(SUMMARY_SQL, p)
        cursor.execute(TOTALS_SQL, p)
        from .generation import rounding_note

        note = rounding_note(cycle.rounding, currency, d)
        due_date = invoice_date + dt.timedelta(days=cycle.payment_terms_days)
        args = {**p, "branch": settings.TARIFA_BRANCH_CODE, "now": at, "today": day, "cycle": cycle.pk,
                "period": period, "start": start, "end": end, "invoice_date": invoice_date, "due_date": due_date,
                "rounding": cycle.rounding, "note": note, "run": run.pk if run else None}
        cursor.execute(REGULAR_START_SQL, args)
        cursor.execute(INSERT_INVOICES_SQL, args)
        invoiced = cursor.rowcount
        cursor.execute(INSERT_LINES_SQL, args)
        cursor.execute(INSERT_SOURCES_SQL)
        # System accounts the postings use, created on first use.
        cursor.execute("CREATE TEMP TABLE billing_sys (code text, currency text, id uuid) ON COMMIT DROP")
        system_rows = _system_accounts(currencies, tax_rows)
        with cursor.cursor.copy("COPY billing_sys FROM STDIN") as copy:
            for row in system_rows:
                copy.write_row(row)
        cursor.execute("SELECT min(invoice_id::text) FROM billing_batch")
        batch_ref = cursor.fetchone()[0]
        postings = POSTINGS_SQL.replace("%(per_line)s", "TRUE" if per_line else "FALSE").replace("%(d)s", str(d))
        summary = _summary(cursor)
        # Locks every batch shares — the system accounts the postings credit and the number
        # series' counter — are taken last, so parallel batches overlap everything else.
        if cycle.auto_issue:
            services.allocate(scope="ba.id IN (SELECT account_id FROM billing_batch)", params={}, actor=actor,
                              drafts_of_batch=True)
        posted = ledger.post_transfers_bulk(
            query=postings.replace("%(note)s", "%s").replace("%(batch)s", "%s").replace("%(run_ref)s", "%s"),
            params=[note, batch_ref, batch_ref, str(run.pk) if run else ""], actor=actor, created_at=at)
        if cycle.auto_issue:
            _number_and_issue(cursor, cycle=cycle, count=invoiced, at=at, day=day)
    return {"invoiced": invoiced, "ledger_transfers": posted.inserted, "nothing_to_invoice": empty, **summary}


def _number_and_issue(cursor, *, cycle, count, at, day) -> None:
    branch = settings.TARIFA_BRANCH_CODE
    NumberSequence.objects.get_or_create(branch=branch, series=cycle.series)
    # The series' counter row stays locked until this batch commits: numbers are gap-free.
    cursor.execute("UPDATE kernel_numbersequence SET last_value = last_value + %s WHERE branch = %s AND series = %s"
                   " RETURNING last_value", [count, branch, cycle.series])
    base = cursor.fetchone()[0] - count
    # Numbers, issue and (when someone listens) the events in one statement: the events are made
    # from the updated rows, not read back.
    emit = bool(events._handlers.get("billing.invoice_issued"))
    cursor.execute(NUMBER_SQL.replace("{events}", EVENTS_SQL if emit else "SELECT 1 WHERE FALSE"),
                   {"branch": branch, "series": cycle.series, "base": base, "now": at, "today": day})
    if emit:
        ids = [str(r[0]) for r in cursor.fetchall()]
        from tarifa.kernel.tasks import dispatch_events

        # One job per EVENTS_PER_JOB events (each still handled on its own), not one job per invoice.
        dispatch_events.batch_defer(*({"event_ids": ",".join(ids[i:i + EVENTS_PER_JOB])}
                                      for i in range(0, len(ids), EVENTS_PER_JOB)))


def _summary(cursor) -> dict:
    cursor.execute("SELECT i.currency, sum(i.subtotal), sum(i.tax_total), sum(i.total) FROM billing_invoice i"
                   " JOIN billing_batch b ON b.invoice_id = i.id GROUP BY i.currency")
    totals = {cur: {"net": f"{net:f}", "tax": f"{tax:f}", "total": f"{total:f}"} for cur, net, tax, total in
              cursor.fetchall()}
    cursor.execute("SELECT coalesce(nullif(service_type, ''), kind), sum(amount) FROM billing_ln GROUP BY 1")
    by_service = {k: f"{v:f}" for k, v in cursor.fetchall()}
    cursor.execute("SELECT code, sum(tax) FROM billing_ts GROUP BY code")
    by_tax = {k: f"{v:f}" for k, v in cursor.fetchall()}
    return {"totals": totals, "by_service": by_service, "by_tax": by_tax}
