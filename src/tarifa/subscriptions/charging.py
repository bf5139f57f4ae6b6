"""Charging recurring fees: the rules of `fees.py`, computed set-based in PostgreSQL.

`CHARGES_SQL` yields exactly the rows `ledger.services.post_transfers_bulk(query=…)`
stages: one transfer per (subscription, fee, period), debiting the customer's ledger
account and crediting `revenue:<service type>`, kind `charge`, tagged with the
subscription, service, tariff, fee and period, idempotency key
`fee:<subscription>:<fee>:<period>` (`…:<n>` when the period's charge was reversed n − 1
times before, see `ReversedFee`). Keys already posted are left out, so a re-run, a
catch-up over missed days, or a day charged earlier by an activation or a resumption
charges nothing twice.

Prepaid accounts are held to their limit (issue 3): the ledger posts an account's
charges only while they fit — available − running sum ≥ −(credit limit + promised
payments not yet expired), with the balance read under the account lock — taking them in
`charge_order()` (day, then subscription — ids are time-ordered, so the older subscription
first —, then fee). The first charge that does not fit and every later one of that
account are refused: nothing is written for them. What happens to a refused charge is
the caller's choice (`refused=`): the daily run and resumptions suspend its subscription
for cause `balance` at once (so no day is served unpaid); operations a customer or an
operator asks for (activation, a TV channel, a tariff change today) are refused with
`insufficient_funds`; termination leaves the final days uncharged. A refused day is not
charged later: the next run starts after the last run's day, and the subscription,
suspended from that day, is not charged for the days it stays suspended. Postpaid
accounts are not limited here (they accumulate; dunning and thresholds act on them).
"""

import dataclasses
import datetime as dt
from decimal import Decimal

from django.db import connection

from tarifa.catalog.models import ServiceType
from tarifa.kernel.clock import now
from tarifa.kernel.money import format_money
from tarifa.ledger import services as ledger
from tarifa.ledger.errors import InsufficientFunds



def charge_order(row: str = "s") -> str:
    """The order in which an account's charges are taken against its limit: day, then
    subscription, then fee (an ORDER BY list over the charge row `row`; the ledger
    breaks ties with the idempotency key)."""
    return f"{row}.tags->>'period', {row}.tags->>'subscription', {row}.tags->>'fee'"


# Promised payments not yet expired: a credit on top of the account's limit.
PROMISED_CREDIT_SQL = """
SELECT ba.ledger_account_id, pp.amount FROM subscriptions_promisedpayment pp
JOIN ledger_billingaccount ba ON ba.id = pp.billing_account_id
WHERE pp.expires_at > %(now)s
"""

CHARGES_SQL = """
WITH days AS (
  SELECT d::date AS day FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') d
), tariffs AS (
  SELECT t.id AS tariff_id, t.code, t.currency, t.period, t.proration, t.charge_suspended_days,
         r.account_id AS revenue_id, sv.code AS service_code
  FROM catalog_tariff t
  JOIN catalog_service sv ON sv.id = t.service_id
  JOIN (VALUES {revenue}) AS r(service_type_id, currency, account_id)
       ON r.service_type_id = sv.service_type_id AND r.currency = t.currency
), prices AS (
  SELECT pv.id AS price_id, pv.tariff_id, pv.valid_from, pv.recurring_fee,
         lead(pv.valid_from) OVER (PARTITION BY pv.tariff_id ORDER BY pv.valid_from) AS valid_until
  FROM catalog_priceversion pv
), base AS MATERIALIZED (
  SELECT s.id AS sub_id, ba.ledger_account_id AS account_id, tp.tariff_id, d.day, p.price_id, p.recurring_fee
  FROM subscriptions_subscription s
  JOIN ledger_billingaccount ba ON ba.id = s.billing_account_id
  JOIN days d ON d.day >= s.activated_on AND (s.terminated_on IS NULL OR d.day <= s.terminated_on)
  JOIN subscriptions_tariffperiod tp ON tp.subscription_id = s.id AND tp.valid_from <= d.day
       AND (tp.valid_until IS NULL OR d.day < tp.valid_until)
  JOIN tariffs t ON t.tariff_id = tp.tariff_id
  JOIN prices p ON p.tariff_id = tp.tariff_id AND p.valid_from <= d.day
       AND (p.valid_until IS NULL OR d.day < p.valid_until)
  WHERE s.activated_on IS NOT NULL AND s.status <> 'pending'
    AND (s.terminated_on IS NULL OR s.terminated_on >= %(first)s::date)
    AND {scope}
    AND NOT EXISTS (
      SELECT 1 FROM subscriptions_suspension x WHERE x.subscription_id = s.id AND NOT t.charge_suspended_days
        AND x.started_on < d.day AND (x.ended_on IS NULL OR x.ended_on > d.day){suspensions})
), fees AS MATERIALIZED (
  SELECT b.sub_id, b.account_id, b.tariff_id, b.day, 'recurring'::text AS fee, b.recurring_fee AS price FROM base b
  UNION ALL
  SELECT b.sub_id, b.account_id, b.tariff_id, b.day,
         CASE WHEN i.channel_id IS NOT NULL THEN 'channel-' || ch.code ELSE 'package-' || pk.code END, cp.amount
  FROM subscriptions_subscriptionitem i
  JOIN base b ON b.sub_id = i.subscription_id AND i.added_on <= b.day AND (i.removed_on IS NULL OR b.day < i.removed_on)
  JOIN catalog_channelprice cp ON cp.price_version_id = b.price_id
       AND (cp.channel_id = i.channel_id OR cp.package_id = i.package_id)
  LEFT JOIN catalog_channel ch ON ch.id = i.channel_id
  LEFT JOIN catalog_channelpackage pk ON pk.id = i.package_id
), due AS (
  SELECT f.*, t.code AS tariff_code, t.currency, t.period, t.proration, t.revenue_id, t.service_code
  FROM fees f JOIN tariffs t ON t.tariff_id = f.tariff_id
  WHERE NOT (t.period = 'month' AND t.proration = 'none')
  UNION ALL
  (SELECT DISTINCT ON (f.sub_id, f.fee, date_trunc('month', f.day))
          f.*, t.code, t.currency, t.period, t.proration, t.revenue_id, t.service_code
   FROM fees f JOIN tariffs t ON t.tariff_id = f.tariff_id
   WHERE t.period = 'month' AND t.proration = 'none'
   ORDER BY f.sub_id, f.fee, date_trunc('month', f.day), f.day)
), amounts AS (
  SELECT d.*,
    CASE WHEN d.period = 'month' AND d.proration = 'none' THEN to_char(d.day, 'YYYY-MM')
         ELSE to_char(d.day, 'YYYY-MM-DD') END AS period_key,
    CASE WHEN d.period = 'day' OR d.proration = 'none' THEN round(d.price, 6)
         ELSE round(d.price * extract(day FROM d.day) / extract(day FROM date_trunc('month', d.day)
                    + interval '1 month - 1 day'), 6)
            - round(d.price * (extract(day FROM d.day) - 1) / extract(day FROM date_trunc('month', d.day)
                    + interval '1 month - 1 day'), 6)
    END AS amount
  FROM due d
), based AS (
  SELECT a.*, 'fee:' || a.sub_id || ':' || a.fee || ':' || a.period_key AS base_key FROM amounts a WHERE a.amount > 0
), keyed AS (
  -- A period whose charge was reversed (and is due again) is charged under a new key.
  SELECT b.*, b.base_key || coalesce(':' || (rf.times + 1)::text, '') AS key
  FROM based b LEFT JOIN subscriptions_reversedfee rf ON rf.key = b.base_key
)
SELECT k.account_id, k.revenue_id, k.amount, k.currency, 'charge',
       k.key, jsonb_build_object('subscription', k.sub_id::text, 'service', k.service_code, 'tariff', k.tariff_code,
                                 'fee', k.fee, 'period', k.period_key),
       'subscriptions.subscription', k.sub_id::text, ''
FROM keyed k
WHERE NOT EXISTS (SELECT 1 FROM ledger_transfer_key lt WHERE lt.idempotency_key = k.key)
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


def charges_query(*, scope: str = "TRUE", revenue=None, as_if_resumed: bool = False) -> str:
    """The SELECT for post_transfers_bulk; `scope` is an SQL condition on `s` / `ba`
    (parameters: %(first)s, %(last)s and whatever the scope names). `as_if_resumed`
    ignores open `balance` suspensions: what the subscriptions would be charged if that
    cause were cleared (the resumption check)."""
    return CHARGES_SQL.format(revenue=_revenue_values(revenue if revenue is not None else revenue_accounts()),
                              scope=scope, suspensions=" AND x.cause <> 'balance'" if as_if_resumed else "")


@dataclasses.dataclass(frozen=True)
class Charged:
    staged: int  # charges due
    inserted: int  # posted now
    existing: int  # posted before (a re-run)
    refused: int  # left out: they did not fit a prepaid account's limit
    suspended: int = 0  # subscriptions suspended for a refused charge


REFUSED = ("suspend", "raise", "skip")


def post_charges(*, first: dt.date, last: dt.date, actor="system", scope: str = "TRUE", params: dict | None = None,
                 revenue=None, refused: str = "suspend", by: str | None = None) -> Charged:
    """Post every recurring charge due from `first` to `last` within `scope`.

    Runs in the caller's transaction; the ledger locks the accounts it charges (rule 7)
    and holds prepaid accounts to their limit (see the module's docstring). Charges that
    do not fit are refused, then by `refused`:
    - "suspend": their subscriptions are suspended for cause `balance` in this
      transaction (suspension row, status change, `subscription.suspended` event), even
      when the funds are above the tariff's *suspend below*; the reason (and audit message)
      says "Suspended by <by>: balance … below the day's fee …";
    - "raise": `InsufficientFunds` (409 `insufficient_funds`) — the caller's transaction
      rolls back, nothing is written;
    - "skip": nothing more (termination's final days).
    """
    if refused not in REFUSED:
        raise ValueError(f"refused is one of {REFUSED}")
    query = charges_query(scope=scope, revenue=revenue)
    result = ledger.post_transfers_bulk(query=query, params={"first": first, "last": last, "now": now(),
                                                             **(params or {})},
                                        actor=actor, enforce_limit=None, extra_credit=PROMISED_CREDIT_SQL,
                                        order_by=charge_order())
    suspended = 0
    if result.refused:
        if refused == "raise":
            raise _insufficient()
        if refused == "suspend":
            from .thresholds import suspend_refused

            suspended = suspend_refused(actor=actor, day=last, by=by)
    return Charged(staged=result.staged, inserted=result.inserted, existing=result.existing,
                   refused=result.refused, suspended=suspended)


def _insufficient() -> InsufficientFunds:
    """The error for the first refused charge (the ledger's `ledger_bulk_refused` rows)."""
    with connection.cursor() as cursor:
        cursor.execute("""SELECT r.amount, r.currency, r.tags->>'fee', r.tags->>'period', r.available, r.floor,
                                 ba.number
                          FROM ledger_bulk_refused r JOIN ledger_billingaccount ba
                               ON ba.ledger_account_id = r.debit_account_id
                          ORDER BY r.running LIMIT 1""")
        amount, currency, fee, period, available, floor, number = cursor.fetchone()
    return InsufficientFunds(
        f"Account {number} has {available.normalize():f} {currency} available; the {fee} fee for {period}"
        f" ({amount.normalize():f} {currency}) would take it below {floor.normalize():f}.",
        fields={"billing_account": ["Insufficient funds."]})


def last_charged_day():
    """The day of the last finished charge run (days up to it are charged), or None."""
    from .models import ChargeRun

    run = ChargeRun.objects.filter(finished_at__isnull=False).order_by("-as_of").first()
    return run.as_of if run else None


# Recurring charges of subscription %(sub)s for periods after %(day)s (a month key after
# %(month)s), not yet reversed; `%(suspension)s`: only tariffs that do not charge suspended
# days (a suspension), else all (a termination).
CHARGED_AFTER_SQL = """
SELECT t.id FROM ledger_transfer t
LEFT JOIN catalog_tariff tr ON tr.code = t.tags->>'tariff'
WHERE t.reference_type = 'subscriptions.subscription' AND t.reference_id = %(sub)s AND t.kind = 'charge'
  AND (t.tags->>'fee' = 'recurring' OR t.tags->>'fee' LIKE 'channel-%%' OR t.tags->>'fee' LIKE 'package-%%')
  AND CASE WHEN length(t.tags->>'period') = 10 THEN t.tags->>'period' > %(day)s
           ELSE t.tags->>'period' > %(month)s END
  AND NOT (%(suspension)s AND coalesce(tr.charge_suspended_days, false))
  AND NOT EXISTS (SELECT 1 FROM ledger_transfer r WHERE r.reverses_id = t.id)
ORDER BY t.tags->>'period', t.tags->>'fee'
"""


def reverse_charged_after(sub, *, day: dt.date, actor, reason: str, suspension: bool) -> list:
    """Reverse the recurring charges of `sub` for periods after `day` — days charged ahead
    (a charge run for a later day) that a termination on `day`, or a suspension from `day`
    on a tariff that does not charge suspended days, leaves unserved. Each is a new
    `reversal` transfer (the ledger is append-only) whose memo is `reason`; the period's
    next charge, if it becomes due again (a resumption), gets a new key (`ReversedFee`).
    One audit event on the subscription names the days and the total. Runs in the
    caller's transaction, under the account lock. Returns the reversal transfers."""
    from tarifa.audit import services as recorded
    from tarifa.ledger.models import Transfer

    from .models import ReversedFee

    with connection.cursor() as cursor:
        cursor.execute(CHARGED_AFTER_SQL, {"sub": str(sub.pk), "day": day.isoformat(), "month": f"{day:%Y-%m}",
                                           "suspension": suspension})
        ids = [r[0] for r in cursor.fetchall()]
    if not ids:
        return []
    label = recorded.actor_label(actor)[:150]  # the operation was permission-checked; the ledger trusts it
    done = []
    for original in sorted(Transfer.objects.filter(pk__in=ids), key=lambda t: (t.tags["period"], t.tags["fee"])):
        done.append(ledger.reverse_transfer(original, actor=label, reason=reason,
                                            idempotency_key=f"reversal:{original.idempotency_key}"))
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {ReversedFee._meta.db_table} (key, times) VALUES (%s, 1)"
                           " ON CONFLICT (key) DO UPDATE SET times = EXCLUDED.times + "
                           f"{ReversedFee._meta.db_table}.times",
                           [f"fee:{sub.pk}:{original.tags['fee']}:{original.tags['period']}"])
    periods = sorted({t.tags["period"] for t in done})
    total = sum((t.amount for t in done), Decimal(0))
    currency = done[0].currency
    span = periods[0] if len(periods) == 1 else f"{periods[0]} … {periods[-1]}"
    amount = format_money(total, currency)
    recorded.record(sub, actor=actor, action="fees_reversed", changes={"fees_reversed": [None, f"{span}: {amount}"]},
                    message=f"{len(done)} fees charged for {span} reversed, {amount}: {reason}")
    return done


def preview(*, first: dt.date, last: dt.date, scope: str = "TRUE", params: dict | None = None) -> list[dict]:
    """What post_charges would post, without posting (a dry run uses the same query).
    The limit is not applied: this is what is due."""
    query = charges_query(scope=scope)
    with connection.cursor() as cursor:
        cursor.execute(query, {"first": first, "last": last, **(params or {})})
        cols = ["debit_account_id", "credit_account_id", "amount", "currency", "kind", "idempotency_key", "tags",
                "reference_type", "reference_id", "memo"]
        return [dict(zip(cols, row)) for row in cursor.fetchall()]
