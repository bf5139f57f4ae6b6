"""Automatic suspension and resumption by balance, set-based (used after charges and payments).

An account's *funds* are its balance less pending holds, plus its credit limit, plus
the promised payments not yet expired. For a prepaid account, a subscription is
suspended for cause `balance` when funds fall below its tariff's *suspend below*, and
that cause is cleared when funds are at least *resume at*; for a postpaid account the
levels are both 0 (the credit limit is in the funds). A subscription resumes only when
no other cause is open. Every change writes the suspension row, the status change and
a domain event (`subscription.suspended` / `subscription.resumed`) in the caller's
transaction; the events' jobs are enqueued in it too.

A prepaid subscription whose charge the ledger refused (it would take the account below
−(credit limit + promised payments), see `charging`) is suspended for cause `balance`
at once, whatever its tariff's *suspend below* (`suspend_refused`); and a prepaid
subscription is resumed only when its day's charges, as if resumed, fit too — so a
payment too small for the day does not resume it just to suspend it again.

The caller holds the accounts' lock (rule 7): the charge run's bulk transfer took it,
a payment's handler takes it with `ledger.services.lock_accounts`.
"""

from django.conf import settings
from django.db import connection

from django.db.models import Max

from tarifa.catalog.models import Tariff
from tarifa.kernel import events
from tarifa.kernel.clock import now

FUNDS_SQL = """
  SELECT ba.id AS account_id, ba.payment_mode,
         la.credits_posted - la.debits_posted - la.debits_pending + ba.credit_limit
         + coalesce((SELECT sum(pp.amount) FROM subscriptions_promisedpayment pp
                     WHERE pp.billing_account_id = ba.id AND pp.expires_at > %(now)s), 0) AS funds,
         la.credits_posted - la.debits_posted AS balance
  FROM ledger_billingaccount ba JOIN ledger_ledgeraccount la ON la.id = ba.ledger_account_id
  WHERE {scope}
"""

# Open a `balance` suspension for the subscriptions of `{due}` (columns id, reason) that
# have none; the active ones become suspended, with a status change and an event each.
OPEN_BALANCE_SQL = """
WITH {due}, opened AS (
  INSERT INTO subscriptions_suspension (id, subscription_id, cause, started_at, started_on, reason, actor, ended_by)
  SELECT ledger_uuid7(), due.id, 'balance', %(now)s, %(today)s, due.reason, %(actor)s, ''
  FROM due
  WHERE NOT EXISTS (SELECT 1 FROM subscriptions_suspension x WHERE x.subscription_id = due.id
                    AND x.cause = 'balance' AND x.ended_at IS NULL)
  RETURNING subscription_id
), changed AS (
  UPDATE subscriptions_subscription s SET status = 'suspended', updated_at = %(now)s
  FROM opened WHERE s.id = opened.subscription_id AND s.status = 'active'
  RETURNING s.id, s.number, s.billing_account_id
), logged AS (
  INSERT INTO subscriptions_statuschange (id, subscription_id, from_status, to_status, cause, at, actor, reason)
  SELECT ledger_uuid7(), changed.id, 'active', 'suspended', 'balance', %(now)s, %(actor)s, '{why}'
  FROM changed
)
INSERT INTO kernel_domainevent (id, name, branch, object_type, object_id, payload, occurred_at, attempts, last_error)
SELECT ledger_uuid7(), 'subscription.suspended', %(branch)s, 'subscriptions.subscription', changed.id::text,
       jsonb_build_object('subscription', changed.id::text, 'number', changed.number,
                          'billing_account', changed.billing_account_id::text, 'cause', 'balance'),
       %(now)s, 0, ''
FROM changed
RETURNING id
"""

SUSPEND_SQL = OPEN_BALANCE_SQL.format(why="balance below threshold", due="""
acct AS (SELECT * FROM thresholds_funds WHERE funds < %(max_suspend)s), due AS (
  SELECT s.id, 'funds ' || a.funds::text AS reason FROM subscriptions_subscription s
  JOIN acct a ON a.account_id = s.billing_account_id
  JOIN catalog_tariff t ON t.id = s.tariff_id
  WHERE s.status IN ('active', 'suspended')
    AND a.funds < CASE WHEN a.payment_mode = 'prepaid' THEN t.suspend_below ELSE 0 END
)""")

# The subscriptions whose charges the ledger just refused (its `ledger_bulk_refused`).
SUSPEND_REFUSED_SQL = OPEN_BALANCE_SQL.format(why="charge refused: insufficient funds", due="""
due AS (
  SELECT s.id, 'charge refused: ' || string_agg(r.tags->>'fee' || ' ' || (r.tags->>'period') || ' '
                                                || round(r.amount, 2)::text || ' ' || r.currency, ', '
                                                ORDER BY r.running)
               || '; available ' || round(min(r.available), 2)::text AS reason
  FROM ledger_bulk_refused r JOIN subscriptions_subscription s ON s.id = r.reference_id::uuid
  WHERE r.reference_type = 'subscriptions.subscription' AND s.status IN ('active', 'suspended')
  GROUP BY s.id
)""")

# Subscriptions with an open `balance` cause whose funds reach *resume at*, but whose
# charges for the day — as if resumed — would not fit (prepaid): they stay suspended, or
# the resumption's charge would be refused and suspend them again at once.
UNFIT_SQL = """
CREATE TEMP TABLE thresholds_unfit ON COMMIT DROP AS
SELECT DISTINCT c.reference_id::uuid AS id FROM (
  SELECT q.reference_id, a.funds,
         sum(q.amount) OVER (PARTITION BY q.debit_account_id ORDER BY {order}, q.idempotency_key
                             ROWS UNBOUNDED PRECEDING) AS running
  FROM ({charges}) q(debit_account_id, credit_account_id, amount, currency, kind, idempotency_key, tags,
                     reference_type, reference_id, memo)
  JOIN ledger_billingaccount ba ON ba.ledger_account_id = q.debit_account_id
  JOIN thresholds_funds a ON a.account_id = ba.id
  WHERE a.payment_mode = 'prepaid'
) c WHERE c.running > c.funds
"""

CANDIDATES_SQL = """
CREATE TEMP TABLE thresholds_candidates ON COMMIT DROP AS
SELECT s.id FROM subscriptions_subscription s
JOIN thresholds_funds a ON a.account_id = s.billing_account_id
JOIN catalog_tariff t ON t.id = s.tariff_id
JOIN subscriptions_suspension x ON x.subscription_id = s.id AND x.cause = 'balance' AND x.ended_at IS NULL
WHERE s.status IN ('active', 'suspended') AND a.payment_mode = 'prepaid' AND a.funds >= t.resume_at
"""

RESUME_SQL = """
WITH acct AS (SELECT * FROM thresholds_funds), due AS (
  SELECT x.id AS suspension_id, s.id FROM subscriptions_subscription s
  JOIN acct a ON a.account_id = s.billing_account_id
  JOIN catalog_tariff t ON t.id = s.tariff_id
  JOIN subscriptions_suspension x ON x.subscription_id = s.id AND x.cause = 'balance' AND x.ended_at IS NULL
  WHERE s.status IN ('active', 'suspended')
    AND a.funds >= CASE WHEN a.payment_mode = 'prepaid' THEN t.resume_at ELSE 0 END
    AND NOT EXISTS (SELECT 1 FROM thresholds_unfit u WHERE u.id = s.id)
), closed AS (
  UPDATE subscriptions_suspension x SET ended_at = %(now)s, ended_on = %(today)s, ended_by = %(actor)s
  FROM due WHERE x.id = due.suspension_id
  RETURNING x.subscription_id
), changed AS (
  UPDATE subscriptions_subscription s SET status = 'active', updated_at = %(now)s
  FROM closed WHERE s.id = closed.subscription_id AND s.status = 'suspended'
    AND NOT EXISTS (SELECT 1 FROM subscriptions_suspension o WHERE o.subscription_id = s.id
                    AND o.ended_at IS NULL AND o.cause <> 'balance')
  RETURNING s.id, s.number, s.billing_account_id
), logged AS (
  INSERT INTO subscriptions_statuschange (id, subscription_id, from_status, to_status, cause, at, actor, reason)
  SELECT ledger_uuid7(), changed.id, 'suspended', 'active', 'balance', %(now)s, %(actor)s, 'funds restored'
  FROM changed
)
INSERT INTO kernel_domainevent (id, name, branch, object_type, object_id, payload, occurred_at, attempts, last_error)
SELECT ledger_uuid7(), 'subscription.resumed', %(branch)s, 'subscriptions.subscription', changed.id::text,
       jsonb_build_object('subscription', changed.id::text, 'number', changed.number,
                          'billing_account', changed.billing_account_id::text, 'cause', 'balance'),
       %(now)s, 0, ''
FROM changed
RETURNING id, object_id
"""

WARN_SQL = """
WITH acct AS (SELECT * FROM thresholds_funds WHERE funds < %(max_warn)s), low AS (
  SELECT a.account_id, a.balance, a.funds, min(t.warn_below) AS level
  FROM acct a
  JOIN subscriptions_subscription s ON s.billing_account_id = a.account_id AND s.status = 'active'
  JOIN catalog_tariff t ON t.id = s.tariff_id AND t.warn_below IS NOT NULL
  WHERE a.payment_mode = 'prepaid'
  GROUP BY a.account_id, a.balance, a.funds
  HAVING a.funds < max(t.warn_below)
), fresh AS (
  SELECT low.* FROM low JOIN ledger_billingaccount ba ON ba.id = low.account_id
  WHERE NOT EXISTS (
    SELECT 1 FROM subscriptions_balancewarning w WHERE w.billing_account_id = low.account_id
      AND w.warned_at >= coalesce((SELECT max(t.created_at) FROM ledger_transfer t
                                   WHERE t.credit_account_id = ba.ledger_account_id), '-infinity'))
), warned AS (
  INSERT INTO subscriptions_balancewarning (id, billing_account_id, warned_at, balance)
  SELECT ledger_uuid7(), fresh.account_id, %(now)s, fresh.balance FROM fresh
)
INSERT INTO kernel_domainevent (id, name, branch, object_type, object_id, payload, occurred_at, attempts, last_error)
SELECT ledger_uuid7(), 'account.low_balance', %(branch)s, 'ledger.billingaccount', fresh.account_id::text,
       jsonb_build_object('billing_account', fresh.account_id::text, 'balance', fresh.balance::text,
                          'funds', fresh.funds::text),
       %(now)s, 0, ''
FROM fresh
RETURNING id
"""


def _dispatch(event_ids, name):
    """Enqueue the event jobs, as emit() does, in the caller's transaction."""
    if event_ids and events._handlers.get(name):
        from tarifa.kernel.tasks import dispatch_event

        for start in range(0, len(event_ids), 5000):
            dispatch_event.batch_defer(*({"event_id": str(i)} for i in event_ids[start:start + 5000]))


def _args(actor, day, params=None) -> dict:
    return {"now": now(), "today": day, "actor": str(actor)[:150], "branch": settings.TARIFA_BRANCH_CODE,
            **(params or {})}


def suspend_refused(*, actor="system", day=None) -> int:
    """Suspend for cause `balance` the subscriptions whose charges the ledger has just
    refused (its `ledger_bulk_refused` table, in the caller's transaction), whatever their
    funds: a prepaid subscription that cannot pay its day is not served. The suspension's
    reason names the refused fees. Returns how many subscriptions were suspended now."""
    args = _args(actor, day or now().date())
    with connection.cursor() as cursor:
        cursor.execute(SUSPEND_REFUSED_SQL, args)
        suspended = [r[0] for r in cursor.fetchall()]
    _dispatch(suspended, "subscription.suspended")
    return len(suspended)


def _mark_unfit(cursor, args, day):
    """thresholds_unfit: the candidates for resumption whose day would not fit (see UNFIT_SQL)."""
    from .charging import charge_order, charges_query

    cursor.execute("DROP TABLE IF EXISTS thresholds_candidates")
    cursor.execute("DROP TABLE IF EXISTS thresholds_unfit")
    cursor.execute(CANDIDATES_SQL)
    if cursor.rowcount:
        charges = charges_query(scope="s.id IN (SELECT id FROM thresholds_candidates)", as_if_resumed=True)
        cursor.execute(UNFIT_SQL.format(order=charge_order("q"), charges=charges),
                       {**args, "first": day, "last": day})
    else:
        cursor.execute("CREATE TEMP TABLE thresholds_unfit (id uuid) ON COMMIT DROP")
    cursor.execute("DROP TABLE thresholds_candidates")


def evaluate(*, scope: str = "TRUE", params: dict | None = None, actor="system", as_of=None) -> dict:
    """Suspend and resume for cause `balance` within `scope` (an SQL condition on `ba`).

    A prepaid subscription is resumed only when its charges for the day, as if resumed,
    fit the account's limit too (otherwise its resumption's charge would be refused).
    Returns {"suspended": n, "resumed": n, "warned": n}. Idempotent: a second call with
    the same balances changes nothing.
    """
    at = now()
    day = as_of or at.date()
    args = _args(actor, day, params)
    levels = Tariff.objects.aggregate(s=Max("suspend_below"), w=Max("warn_below"))
    args["max_suspend"] = max(levels["s"] or 0, 0)
    args["max_warn"] = levels["w"] if levels["w"] is not None else -10 ** 12
    with connection.cursor() as cursor:
        # The funds of the accounts in scope, once; each statement then starts from the few
        # accounts below a level or the few open balance suspensions.
        cursor.execute("DROP TABLE IF EXISTS thresholds_funds")
        cursor.execute("CREATE TEMP TABLE thresholds_funds ON COMMIT DROP AS " + FUNDS_SQL.format(scope=scope), args)
        cursor.execute("CREATE INDEX ON thresholds_funds (account_id)")
        cursor.execute("ANALYZE thresholds_funds")
        _mark_unfit(cursor, args, day)
        cursor.execute(RESUME_SQL, args)
        rows = cursor.fetchall()
        resumed = [r[0] for r in rows]
        cursor.execute("DROP TABLE thresholds_unfit")
        refused = 0
        if rows:
            # A resumed subscription is charged for today at once (its day may have been
            # skipped while it was suspended); keys keep this from charging twice. The
            # check above makes a refusal here rare; one suspends the subscription again.
            from .charging import post_charges

            refused = post_charges(first=day, last=day, actor=actor, scope="s.id = ANY(%(resumed_subs)s::uuid[])",
                                   params={"resumed_subs": [r[1] for r in rows]}).suspended
            cursor.execute("DROP TABLE thresholds_funds")
            cursor.execute("CREATE TEMP TABLE thresholds_funds ON COMMIT DROP AS " + FUNDS_SQL.format(scope=scope),
                           args)
        cursor.execute(SUSPEND_SQL, args)
        suspended = [r[0] for r in cursor.fetchall()]
        cursor.execute(WARN_SQL, args)
        warned = [r[0] for r in cursor.fetchall()]
        cursor.execute("DROP TABLE thresholds_funds")
    _dispatch(resumed, "subscription.resumed")
    _dispatch(suspended, "subscription.suspended")
    _dispatch(warned, "account.low_balance")
    return {"suspended": len(suspended) + refused, "resumed": len(resumed), "warned": len(warned)}


def evaluate_account(account, *, actor="system") -> dict:
    """Re-evaluate one billing account (after a payment, a charge, a promise); takes its lock."""
    from tarifa.ledger.services import lock_accounts

    lock_accounts(account)
    return evaluate(scope="ba.id = %(account)s", params={"account": account.pk}, actor=actor)


def funds_of(account) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(FUNDS_SQL.format(scope="ba.id = %(account)s"), {"account": account.pk, "now": now()})
        row = cursor.fetchone()
    return {"funds": row[2], "balance": row[3]} if row else {}


__all__ = ["evaluate", "evaluate_account", "funds_of"]
