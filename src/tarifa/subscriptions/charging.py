"""Charging recurring fees: the rules of `fees.py`, computed set-based in PostgreSQL.

`CHARGES_SQL` yields exactly the rows `ledger.services.post_transfers_bulk(query=…)`
stages: one transfer per (subscription, fee, period), debiting the customer's ledger
account and crediting `revenue:<service type>`, kind `charge`, tagged with the
subscription, service, tariff, fee and period, idempotency key
`fee:<subscription>:<fee>:<period>`. Keys already posted are left out, so a re-run, a
catch-up over missed days, or a day charged earlier by an activation or a resumption
charges nothing twice.
"""

import datetime as dt

from django.db import connection

from tarifa.catalog.models import ServiceType
from tarifa.ledger import services as ledger

CHARGES_SQL = """
WITH days AS (
  SELECT d::date AS day FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') d
), prices AS (
  SELECT pv.id, pv.tariff_id, pv.valid_from, pv.recurring_fee,
         lead(pv.valid_from) OVER (PARTITION BY pv.tariff_id ORDER BY pv.valid_from) AS valid_until
  FROM catalog_priceversion pv
), revenue AS (
  SELECT * FROM (VALUES {revenue}) AS r(service_type_id, currency, account_id)
), base AS (
  SELECT s.id AS sub_id, ba.ledger_account_id AS account_id, t.code AS tariff_code, t.currency, t.period,
         t.proration, sv.code AS service_code, r.account_id AS revenue_id, d.day, p.id AS price_id,
         p.recurring_fee
  FROM subscriptions_subscription s
  JOIN ledger_billingaccount ba ON ba.id = s.billing_account_id
  JOIN catalog_service sv ON sv.id = s.service_id
  JOIN days d ON d.day >= s.activated_on AND (s.terminated_on IS NULL OR d.day <= s.terminated_on)
  JOIN subscriptions_tariffperiod tp ON tp.subscription_id = s.id AND tp.valid_from <= d.day
       AND (tp.valid_until IS NULL OR d.day < tp.valid_until)
  JOIN catalog_tariff t ON t.id = tp.tariff_id
  JOIN prices p ON p.tariff_id = t.id AND p.valid_from <= d.day AND (p.valid_until IS NULL OR d.day < p.valid_until)
  JOIN revenue r ON r.service_type_id = sv.service_type_id AND r.currency = t.currency
  WHERE s.activated_on IS NOT NULL AND s.status <> 'pending'
    AND (s.terminated_on IS NULL OR s.terminated_on >= %(first)s::date)
    AND {scope}
    AND (t.charge_suspended_days OR NOT EXISTS (
      SELECT 1 FROM subscriptions_suspension x WHERE x.subscription_id = s.id AND x.started_on < d.day
        AND (x.ended_on IS NULL OR x.ended_on > d.day)))
), fees AS (
  SELECT b.*, 'recurring' AS fee, b.recurring_fee AS price FROM base b
  UNION ALL
  SELECT b.*, CASE WHEN i.channel_id IS NOT NULL THEN 'channel-' || ch.code ELSE 'package-' || pk.code END,
         cp.amount
  FROM base b
  JOIN subscriptions_subscriptionitem i ON i.subscription_id = b.sub_id AND i.added_on <= b.day
       AND (i.removed_on IS NULL OR b.day < i.removed_on)
  JOIN catalog_channelprice cp ON cp.price_version_id = b.price_id
       AND (cp.channel_id = i.channel_id OR cp.package_id = i.package_id)
  LEFT JOIN catalog_channel ch ON ch.id = i.channel_id
  LEFT JOIN catalog_channelpackage pk ON pk.id = i.package_id
), amounts AS (
  SELECT f.*,
    CASE WHEN f.period = 'month' AND f.proration = 'none' THEN to_char(f.day, 'YYYY-MM')
         ELSE to_char(f.day, 'YYYY-MM-DD') END AS period_key,
    CASE WHEN f.period = 'day' OR f.proration = 'none' THEN round(f.price, 6)
         ELSE round(f.price * extract(day FROM f.day) / extract(day FROM date_trunc('month', f.day)
                    + interval '1 month - 1 day'), 6)
            - round(f.price * (extract(day FROM f.day) - 1) / extract(day FROM date_trunc('month', f.day)
                    + interval '1 month - 1 day'), 6)
    END AS amount
  FROM fees f
), keyed AS (
  SELECT a.*, 'fee:' || a.sub_id || ':' || a.fee || ':' || a.period_key AS key FROM amounts a WHERE a.amount > 0
), unique_keys AS (
  SELECT * FROM keyed WHERE NOT (period = 'month' AND proration = 'none')
  UNION ALL
  SELECT DISTINCT ON (key) * FROM keyed WHERE period = 'month' AND proration = 'none' ORDER BY key, day
)
SELECT k.account_id, k.revenue_id, k.amount, k.currency, 'charge',
       k.key, jsonb_build_object('subscription', k.sub_id::text, 'service', k.service_code, 'tariff', k.tariff_code,
                                 'fee', k.fee, 'period', k.period_key),
       'subscriptions.subscription', k.sub_id::text, ''
FROM unique_keys k
WHERE NOT EXISTS (SELECT 1 FROM ledger_transfer lt WHERE lt.idempotency_key = k.key)
"""


def revenue_accounts() -> list[tuple]:
    """(service type id, currency, ledger account id) of `revenue:<service type>` for every
    service type and every currency a tariff uses; created on first use."""
    from tarifa.catalog.models import Tariff

    currencies = sorted(set(Tariff.objects.values_list("currency", flat=True))) or ["EUR"]
    rows = []
    for st in ServiceType.objects.all():
        for currency in currencies:
            account = ledger.system_account(f"revenue:{st.code}", currency, name=f"Revenue: {st.name}")
            rows.append((st.id, currency, account.id))
    return rows


def _revenue_values(rows) -> str:
    if not rows:
        return "(NULL::uuid, NULL::text, NULL::uuid)"
    return ", ".join(f"('{st}'::uuid, '{cur}'::text, '{acc}'::uuid)" for st, cur, acc in rows)


def charges_query(*, scope: str = "TRUE", revenue=None) -> str:
    """The SELECT for post_transfers_bulk; `scope` is an SQL condition on `s` / `ba`
    (parameters: %(first)s, %(last)s and whatever the scope names)."""
    return CHARGES_SQL.format(revenue=_revenue_values(revenue if revenue is not None else revenue_accounts()),
                              scope=scope)


def post_charges(*, first: dt.date, last: dt.date, actor="system", scope: str = "TRUE", params: dict | None = None,
                 revenue=None):
    """Post every recurring charge due from `first` to `last` within `scope`; returns the BulkResult.

    Runs in the caller's transaction; the ledger locks the accounts it charges (rule 7).
    """
    query = charges_query(scope=scope, revenue=revenue)
    return ledger.post_transfers_bulk(query=query, params={"first": first, "last": last, **(params or {})},
                                      actor=actor)


def preview(*, first: dt.date, last: dt.date, scope: str = "TRUE", params: dict | None = None) -> list[dict]:
    """What post_charges would post, without posting (a dry run uses the same query)."""
    query = charges_query(scope=scope)
    with connection.cursor() as cursor:
        cursor.execute(query, {"first": first, "last": last, **(params or {})})
        cols = ["debit_account_id", "credit_account_id", "amount", "currency", "kind", "idempotency_key", "tags",
                "reference_type", "reference_id", "memo"]
        return [dict(zip(cols, row)) for row in cursor.fetchall()]
