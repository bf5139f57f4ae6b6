"""What an invoice is made of, read set-based from the ledger, rating and pending items.

`SOURCES_SQL` yields one row per source not yet on an invoice line, for the accounts in
the temporary table `billing_scope (account_id, ledger_id, period_end)`, up to each
account's period end. Both paths read it: the one-account path turns the rows into
`generation.Source`s for the pure function; the bulk path stages them and groups in SQL.

- ledger transfers debiting the customer: `charge` (recurring fees, one-time fees, usage
  charged to prepaid accounts) and `adjustment` (manual debits); transfers crediting the
  customer: `adjustment` credits and reversals of charges. Transfers an invoice booked
  itself carry the tag `invoice` and are left out;
- rated usage of postpaid accounts not yet in the ledger (rating's `UsageRecord` with
  status rated and no transfer), when the rating app's tables exist — not those charged online
  already (`online_session`: their cost is in the ledger as the session's charges and its
  semi-online correction);
- pending items (one-time fees, adjustments, discounts) of `billing_pendingitem`.

The service day of a fee is its `period` tag (a day, a month, or `from/to`); of anything
else, the day it was booked (in the operator's time zone).
"""

from django.conf import settings
from django.db import connection

from .generation import Source

COLUMNS = ["id", "type", "kind", "amount", "day_from", "day_to", "booked", "service", "service_type",
           "subscription", "subscription_number", "tariff", "fee", "destination", "quantity", "free_units",
           "description"]

_DAY_FROM = r"""CASE WHEN t.tags->>'period' ~ '^\d{4}-\d{2}-\d{2}' THEN left(t.tags->>'period', 10)::date
        WHEN t.tags->>'period' ~ '^\d{4}-\d{2}$' THEN (t.tags->>'period' || '-01')::date
        ELSE (t.created_at AT TIME ZONE %(tz)s)::date END"""
_DAY_TO = r"""CASE WHEN t.tags->>'period' ~ '/\d{4}-\d{2}-\d{2}$' THEN right(t.tags->>'period', 10)::date
        WHEN t.tags->>'period' ~ '^\d{4}-\d{2}$'
          THEN ((t.tags->>'period' || '-01')::date + interval '1 month - 1 day')::date
        ELSE NULL END"""
_SUB = r"""CASE WHEN t.tags->>'subscription' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
        THEN (t.tags->>'subscription')::uuid END"""

TRANSFERS_SQL = f"""
SELECT x.id, 'transfer'::text AS type, x.account_id, x.kind, x.amount, x.day_from,
       coalesce(x.day_to, x.day_from) AS day_to, true AS booked,
       coalesce(sv.code, '') AS service,
       coalesce(st.code, CASE WHEN x.credit_code LIKE 'revenue:%%' THEN substr(x.credit_code, 9) ELSE '' END)
         AS service_type,
       coalesce(s.id::text, '') AS subscription, coalesce(s.number, '') AS subscription_number,
       coalesce(x.tags->>'tariff', '') AS tariff,
       CASE WHEN x.kind = 'usage' THEN coalesce(x.tags->>'usage_type', 'usage') ELSE coalesce(x.tags->>'fee', '') END
         AS fee,
       CASE WHEN x.kind = 'usage' THEN coalesce(x.tags->>'destination', '') ELSE '' END AS destination,
       0::numeric AS quantity, 0::numeric AS free_units, x.memo AS description
FROM (
  SELECT t.id, sc.account_id, t.tags, t.memo, c.code AS credit_code, {_DAY_FROM} AS day_from, {_DAY_TO} AS day_to,
         {_SUB} AS sub_id, sc.period_end,
         CASE WHEN t.kind = 'adjustment' THEN 'adjustment'
              WHEN t.reference_type IN ('rating.usagerecord', 'rating.usagebatch', 'rating.reraterun')
                OR t.tags ? 'usage_type' THEN 'usage'
              WHEN t.tags->>'fee' IN ('recurring', 'to_date') OR t.tags->>'fee' LIKE 'channel-%%'
                OR t.tags->>'fee' LIKE 'package-%%' THEN 'recurring_fee'
              ELSE 'one_time_fee' END AS kind,
         t.amount
  FROM billing_scope sc
  JOIN ledger_transfer t ON t.debit_account_id = sc.ledger_id
  JOIN ledger_ledgeraccount c ON c.id = t.credit_account_id
  WHERE t.kind IN ('charge', 'adjustment') AND NOT (t.tags ? 'invoice')
  UNION ALL
  SELECT t.id, sc.account_id, t.tags, t.memo, '' AS credit_code, {_DAY_FROM}, NULL::date, NULL::uuid, sc.period_end,
         'adjustment', -t.amount
  FROM billing_scope sc
  JOIN ledger_transfer t ON t.credit_account_id = sc.ledger_id
  WHERE NOT (t.tags ? 'invoice') AND (t.kind = 'adjustment' OR (t.kind = 'reversal' AND EXISTS (
    SELECT 1 FROM ledger_transfer o WHERE o.id = t.reverses_id AND o.kind IN ('charge', 'adjustment'))))
) x
LEFT JOIN subscriptions_subscription s ON s.id = x.sub_id
LEFT JOIN catalog_service sv ON sv.id = s.service_id
LEFT JOIN catalog_servicetype st ON st.id = sv.service_type_id
WHERE x.day_from <= x.period_end
  AND NOT EXISTS (SELECT 1 FROM billing_invoicedsource b WHERE b.source_id = x.id)
"""

ITEMS_SQL = """
SELECT i.id, 'item'::text, sc.account_id, i.kind, i.amount, i.day, i.day, false, '', i.service_type, '', '', '',
       i.kind, '', 0::numeric, 0::numeric, i.description
FROM billing_scope sc JOIN billing_pendingitem i ON i.billing_account_id = sc.account_id
WHERE i.day <= sc.period_end AND NOT EXISTS (SELECT 1 FROM billing_invoicedsource b WHERE b.source_id = i.id)
"""

# Rated usage of postpaid accounts, not yet in the ledger (the invoice books it).
USAGE_SQL = """
SELECT u.id, 'usage'::text, sc.account_id, 'usage', round(u.cost, 6), (u.start_time AT TIME ZONE %(tz)s)::date,
       (u.start_time AT TIME ZONE %(tz)s)::date, false, coalesce(sv.code, ''), coalesce(st.code, ''),
       coalesce(s.id::text, ''), coalesce(s.number, ''), coalesce(t.code, ''), coalesce(nullif(u.usage_type, ''), 'usage'),
       coalesce(u.matched_destination, ''), u.usage::numeric, u.free_units::numeric, ''
FROM billing_scope sc
JOIN rating_usagerecord u ON u.billing_account_id = sc.account_id
LEFT JOIN subscriptions_subscription s ON s.id = u.subscription_id
LEFT JOIN catalog_service sv ON sv.id = s.service_id
LEFT JOIN catalog_servicetype st ON st.id = sv.service_type_id
LEFT JOIN catalog_tariff t ON t.id = u.tariff_id
WHERE u.status = 'rated' AND u.transfer_id IS NULL AND u.online_session IS NULL AND u.cost IS NOT NULL
  AND (u.start_time AT TIME ZONE %(tz)s)::date <= sc.period_end
  AND NOT EXISTS (SELECT 1 FROM billing_invoicedsource b WHERE b.source_id = u.id)
"""

_usage_ready: bool | None = None


def usage_ready() -> bool:
    """Whether rating's rated usage table exists (the rating app is being built alongside)."""
    global _usage_ready
    if _usage_ready is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('rating_usagerecord') IS NOT NULL")
            ready = cursor.fetchone()[0]
            if ready:
                cursor.execute("""SELECT count(*) FROM information_schema.columns WHERE table_name = 'rating_usagerecord'
                                  AND column_name IN ('cost', 'transfer_id', 'billing_account_id', 'status',
                                                      'free_units', 'matched_destination', 'usage_type',
                                                      'online_session')""")
                ready = cursor.fetchone()[0] == 8
        _usage_ready = bool(ready)
    return _usage_ready


def sources_sql() -> str:
    """The UNION of every source kind, columns in `COLUMNS` order plus `account_id` third."""
    parts = [TRANSFERS_SQL, ITEMS_SQL]
    if usage_ready():
        parts.append(USAGE_SQL)
    return "\nUNION ALL\n".join(parts)


def params() -> dict:
    return {"tz": settings.TIME_ZONE}


def create_scope(cursor, rows) -> None:
    """The temporary table of (account id, ledger account id, period end) the sources are read for."""
    cursor.execute("DROP TABLE IF EXISTS billing_scope")
    cursor.execute("CREATE TEMP TABLE billing_scope (account_id uuid PRIMARY KEY, ledger_id uuid NOT NULL,"
                   " period_end date NOT NULL) ON COMMIT DROP")
    if rows:
        with cursor.cursor.copy("COPY billing_scope (account_id, ledger_id, period_end) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    cursor.execute("ANALYZE billing_scope")


def read_sources(account, period_end) -> list[Source]:
    """The not-yet-invoiced sources of one account up to `period_end`, as the pure function takes them."""
    with connection.cursor() as cursor:
        create_scope(cursor, [(account.pk, account.ledger_account_id, period_end)])
        cursor.execute(f"SELECT * FROM ({sources_sql()}) src ORDER BY day_from, id", params())
        rows = cursor.fetchall()
        cursor.execute("DROP TABLE billing_scope")
    out = []
    for row in rows:
        values = dict(zip(COLUMNS[:2] + ["account_id"] + COLUMNS[2:], row))
        values.pop("account_id")
        values["id"] = str(values["id"])
        values["description"] = values["description"] or ""
        out.append(Source(**values))
    return out
