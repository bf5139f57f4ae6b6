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

Every transition is also an audit event on the subscription (action `suspended` /
`resume`, or `suspend_cause` / `clear_cause` when another cause keeps it suspended), written
set-based in the same statement as the transition, with the actor (a job name such as
`system:daily`, or the user) and a sentence in the currency's units: "Suspended by the daily
charge: balance 0.23 USD below the day's fee 0.50 USD". The same sentence is the
suspension's reason and the status change's.

The caller holds the accounts' lock (rule 7): the charge run's bulk transfer took it,
a payment's handler takes it with `ledger.services.lock_accounts`.
"""

from django.conf import settings
from django.db import connection
from django.db.models import Max

from tarifa.audit import context as audit_context
from tarifa.catalog.models import Tariff
from tarifa.kernel import events
from tarifa.kernel.clock import now
from tarifa.kernel.money import CURRENCIES


def money_sql(amount: str, currency: str) -> str:
    """SQL text of `amount` rounded to `currency`'s minor unit, then the currency: '0.23 USD'."""
    odd = " ".join(f"WHEN '{code}' THEN {digits}" for code, digits in sorted(CURRENCIES.items()) if digits != 2)
    return f"(round(({amount})::numeric, CASE ({currency}) {odd} ELSE 2 END)::text || ' ' || ({currency}))"


# The subscription as the audit trail names it (str(Subscription)).
REPR_SQL = """left(trim(s.number || ' ' || coalesce(nullif(s.login, ''), nullif(s.phone_number, ''),
  nullif(s.iccid, ''), nullif(s.imsi, ''), nullif(s.ip_address, ''), nullif(s.mac_address, ''),
  nullif(s.smart_card, ''), '')), 200)"""

AUDIT_COLUMNS = ("id, branch, at, object_type, object_id, object_repr, action, actor_id, actor_label, request_id, ip,"
                 " channel, changes, message")
AUDIT_VALUES = ("ledger_uuid7(), %(branch)s, %(now)s, 'subscriptions.subscription', {row}.id::text, {row}.repr,"
                " {action}, %(actor_id)s::uuid, %(actor)s, %(request_id)s, %(ip)s::inet, %(channel)s, {changes}, {row}.reason")

FUNDS_SQL = """
  SELECT ba.id AS account_id, ba.payment_mode, ba.currency,
         la.credits_posted - la.debits_posted - la.debits_pending + ba.credit_limit
         + coalesce((SELECT sum(pp.amount) FROM subscriptions_promisedpayment pp
                     WHERE pp.billing_account_id = ba.id AND pp.expires_at > %(now)s), 0) AS funds,
         la.credits_posted - la.debits_posted AS balance, ba.credit_limit
  FROM ledger_billingaccount ba JOIN ledger_ledgeraccount la ON la.id = ba.ledger_account_id
  WHERE {scope}
"""

# Open a `balance` suspension for the subscriptions of `{due}` (columns id, reason) that
# have none; the active ones become suspended, with a status change, an audit event and a
# domain event each; those already suspended for another cause get an audit event.
OPEN_BALANCE_SQL = """
WITH {due}, opened AS (
  INSERT INTO subscriptions_suspension (id, subscription_id, cause, started_at, started_on, reason, actor, ended_by)
  SELECT ledger_uuid7(), due.id, 'balance', %(now)s, %(today)s, due.reason, %(actor)s, ''
  FROM due
  WHERE NOT EXISTS (SELECT 1 FROM subscriptions_suspension x WHERE x.subscription_id = due.id
                    AND x.cause = 'balance' AND x.ended_at IS NULL)
  RETURNING subscription_id, reason
), changed AS (
  UPDATE subscriptions_subscription s SET status = 'suspended', updated_at = %(now)s
  FROM opened WHERE s.id = opened.subscription_id AND s.status = 'active'
  RETURNING s.id, s.number, s.billing_account_id, opened.reason, """ + REPR_SQL + """ AS repr
), logged AS (
  INSERT INTO subscriptions_statuschange (id, subscription_id, from_status, to_status, cause, at, actor, reason)
  SELECT ledger_uuid7(), changed.id, 'active', 'suspended', 'balance', %(now)s, %(actor)s, changed.reason
  FROM changed
), other_cause AS (
  SELECT s.id, opened.reason, """ + REPR_SQL + """ AS repr
  FROM opened JOIN subscriptions_subscription s ON s.id = opened.subscription_id
  WHERE NOT EXISTS (SELECT 1 FROM changed WHERE changed.id = opened.subscription_id)
), audited AS (
  INSERT INTO audit_auditevent (""" + AUDIT_COLUMNS + """)
  SELECT """ + AUDIT_VALUES.format(
    row="changed", action="'suspended'",
    changes="""'{{"status": ["active", "suspended"], "cause": [null, "balance"]}}'::jsonb""") + """ FROM changed
  UNION ALL
  SELECT """ + AUDIT_VALUES.format(row="other_cause", action="'suspend_cause'",
                                   changes="""'{{"cause": [null, "balance"]}}'::jsonb""") + """ FROM other_cause
)
INSERT INTO kernel_domainevent (id, name, branch, object_type, object_id, payload, occurred_at, attempts, last_error)
SELECT ledger_uuid7(), 'subscription.suspended', %(branch)s, 'subscriptions.subscription', changed.id::text,
       jsonb_build_object('subscription', changed.id::text, 'number', changed.number,
                          'billing_account', changed.billing_account_id::text, 'cause', 'balance'),
       %(now)s, 0, ''
FROM changed
RETURNING id, object_id
"""

SUSPEND_SQL = OPEN_BALANCE_SQL.format(due="""
acct AS (SELECT * FROM thresholds_funds WHERE funds < %(max_suspend)s), due AS (
  SELECT s.id, 'Suspended by ' || %(by)s || ': ' || CASE
           WHEN a.payment_mode = 'prepaid' THEN 'funds ' || """ + money_sql("a.funds", "a.currency") + """
                || ' below the suspend level ' || """ + money_sql("t.suspend_below", "a.currency") + """
           ELSE 'balance ' || """ + money_sql("a.balance", "a.currency") + """ || ' beyond the credit limit '
                || """ + money_sql("a.credit_limit", "a.currency") + """ END AS reason
  FROM subscriptions_subscription s
  JOIN acct a ON a.account_id = s.billing_account_id
  JOIN catalog_tariff t ON t.id = s.tariff_id
  WHERE s.status IN ('active', 'suspended')
    AND a.funds < CASE WHEN a.payment_mode = 'prepaid' THEN t.suspend_below ELSE 0 END
)""")

# The subscriptions whose charges the ledger just refused (its `ledger_bulk_refused`). The
# balance named is the one at the moment of the refusal: what the account had available
# when the batch began, less the charges posted before its first refused one (the ledger's
# running sum counts every row of the account, posted or refused, in charge order).
SUSPEND_REFUSED_SQL = OPEN_BALANCE_SQL.format(due="""
refused AS (
  SELECT r.reference_id::uuid AS sub_id, r.currency, r.amount, r.tags->>'period' AS period, r.floor,
         r.available - min(r.running - r.amount) OVER (PARTITION BY r.debit_account_id) AS at_refusal
  FROM ledger_bulk_refused r WHERE r.reference_type = 'subscriptions.subscription'
), first_day AS (
  SELECT DISTINCT ON (sub_id) sub_id, period FROM refused ORDER BY sub_id, period
), per_sub AS (
  SELECT r.sub_id, r.currency, f.period, min(r.at_refusal) AS at_refusal, min(r.floor) AS floor,
         sum(r.amount) FILTER (WHERE r.period = f.period) AS fee
  FROM refused r JOIN first_day f ON f.sub_id = r.sub_id
  GROUP BY r.sub_id, r.currency, f.period
), due AS (
  SELECT s.id, 'Suspended by ' || %(by)s || ': balance ' || """ + money_sql("p.at_refusal", "p.currency") + """
               || CASE WHEN p.floor < 0 THEN ' (credit ' || """ + money_sql("-p.floor", "p.currency") + """ || ')'
                       ELSE '' END
               || ' below the day''s fee ' || """ + money_sql("p.fee", "p.currency") + """
               || ' (' || p.period || ')' AS reason
  FROM per_sub p JOIN subscriptions_subscription s ON s.id = p.sub_id
  WHERE s.status IN ('active', 'suspended')
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
  SELECT x.id AS suspension_id, s.id,
         'Resumed by ' || %(by)s || ': funds ' || """ + money_sql("a.funds", "a.currency") + """
         || ' reach the resume level ' || """ + money_sql(
    "CASE WHEN a.payment_mode = 'prepaid' THEN t.resume_at ELSE 0 END", "a.currency") + """ AS reason
  FROM subscriptions_subscription s
  JOIN acct a ON a.account_id = s.billing_account_id
  JOIN catalog_tariff t ON t.id = s.tariff_id
  JOIN subscriptions_suspension x ON x.subscription_id = s.id AND x.cause = 'balance' AND x.ended_at IS NULL
  WHERE s.status IN ('active', 'suspended')
    AND a.funds >= CASE WHEN a.payment_mode = 'prepaid' THEN t.resume_at ELSE 0 END
    AND NOT EXISTS (SELECT 1 FROM thresholds_unfit u WHERE u.id = s.id)
), closed AS (
  UPDATE subscriptions_suspension x SET ended_at = %(now)s, ended_on = %(today)s, ended_by = %(actor)s
  FROM due WHERE x.id = due.suspension_id
  RETURNING x.subscription_id, due.reason
), changed AS (
  UPDATE subscriptions_subscription s SET status = 'active', updated_at = %(now)s
  FROM closed WHERE s.id = closed.subscription_id AND s.status = 'suspended'
    AND NOT EXISTS (SELECT 1 FROM subscriptions_suspension o WHERE o.subscription_id = s.id
                    AND o.ended_at IS NULL AND o.cause <> 'balance')
  RETURNING s.id, s.number, s.billing_account_id, closed.reason, """ + REPR_SQL + """ AS repr
), logged AS (
  INSERT INTO subscriptions_statuschange (id, subscription_id, from_status, to_status, cause, at, actor, reason)
  SELECT ledger_uuid7(), changed.id, 'suspended', 'active', 'balance', %(now)s, %(actor)s, changed.reason
  FROM changed
), other_cause AS (
  SELECT s.id, closed.reason, """ + REPR_SQL + """ AS repr
  FROM closed JOIN subscriptions_subscription s ON s.id = closed.subscription_id
  WHERE NOT EXISTS (SELECT 1 FROM changed WHERE changed.id = closed.subscription_id)
), audited AS (
  INSERT INTO audit_auditevent (""" + AUDIT_COLUMNS + """)
  SELECT """ + AUDIT_VALUES.format(
    row="changed", action="'resume'",
    changes="""'{"status": ["suspended", "active"], "cause": ["balance", null]}'::jsonb""") + """ FROM changed
  UNION ALL
  SELECT """ + AUDIT_VALUES.format(row="other_cause", action="'clear_cause'",
                                   changes="""'{"cause": ["balance", null]}'::jsonb""") + """ FROM other_cause
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


# Who caused an automatic transition, as its audit message says it ("Suspended by …").
BY = {"system:daily": "the daily charge", "system:payment": "a payment", "system:promises": "a promised payment's expiry"}


def by_label(actor, by=None) -> str:
    if by:
        return by
    label = actor if isinstance(actor, str) else getattr(actor, "get_username", lambda: str(actor))()
    return BY.get(label, "the balance check")


def _args(actor, day, params=None, by=None) -> dict:
    from tarifa.audit.services import actor_label

    ctx = audit_context.current()
    return {"now": now(), "today": day, "actor": actor_label(actor)[:150], "branch": settings.TARIFA_BRANCH_CODE,
            "actor_id": getattr(actor, "pk", None) if not isinstance(actor, str) else None, "by": by_label(actor, by), "request_id": ctx.request_id, "ip": ctx.ip or None, "channel": ctx.channel,
            **(params or {})}


def suspend_refused(*, actor="system", day=None, by=None) -> int:
    """Suspend for cause `balance` the subscriptions whose charges the ledger has just
    refused (its `ledger_bulk_refused` table, in the caller's transaction), whatever their
    funds: a prepaid subscription that cannot pay its day is not served. The suspension's
    reason names the refused fees. Returns how many subscriptions were suspended now."""
    args = _args(actor, day or now().date(), by=by)
    with connection.cursor() as cursor:
        cursor.execute(SUSPEND_REFUSED_SQL, args)
        rows = cursor.fetchall()
    _reverse_ahead([r[1] for r in rows], day=args["today"], actor=actor)
    suspended = [r[0] for r in rows]
    _dispatch(suspended, "subscription.suspended")
    return len(suspended)


def _reverse_ahead(sub_ids, *, day, actor):
    """Subscriptions suspended from `day` while a charge run has already charged later days:
    those days' fees are reversed (see charging.reverse_charged_after). The daily run suspends
    on its own last day, so this finds work only after a run for a future day."""
    if not sub_ids:
        return
    from .charging import last_charged_day, reverse_charged_after
    from .models import Subscription

    last = last_charged_day()
    if last is None or last <= day:
        return
    for sub in Subscription.objects.filter(pk__in=sub_ids).order_by("pk"):
        reverse_charged_after(sub, day=day, actor=actor, suspension=True,
                              reason=f"{sub.number} suspended from {day} (balance): day not served")


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


def evaluate(*, scope: str = "TRUE", params: dict | None = None, actor="system", as_of=None, by=None) -> dict:
    """Suspend and resume for cause `balance` within `scope` (an SQL condition on `ba`).

    A prepaid subscription is resumed only when its charges for the day, as if resumed,
    fit the account's limit too (otherwise its resumption's charge would be refused).
    Returns {"suspended": n, "resumed": n, "warned": n}. Idempotent: a second call with
    the same balances changes nothing.
    """
    at = now()
    day = as_of or at.date()
    args = _args(actor, day, params, by=by)
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
            from .charging import last_charged_day, post_charges

            last = max(day, last_charged_day() or day)  # and days a run already charged ahead
            refused = post_charges(first=day, last=last, actor=actor, scope="s.id = ANY(%(resumed_subs)s::uuid[])",
                                   params={"resumed_subs": [r[1] for r in rows]}, by=args["by"]).suspended
            cursor.execute("DROP TABLE thresholds_funds")
            cursor.execute("CREATE TEMP TABLE thresholds_funds ON COMMIT DROP AS " + FUNDS_SQL.format(scope=scope),
                           args)
        cursor.execute(SUSPEND_SQL, args)
        suspended_rows = cursor.fetchall()
        suspended = [r[0] for r in suspended_rows]
        cursor.execute(WARN_SQL, args)
        warned = [r[0] for r in cursor.fetchall()]
        cursor.execute("DROP TABLE thresholds_funds")
    _reverse_ahead([r[1] for r in suspended_rows], day=day, actor=actor)
    _dispatch(resumed, "subscription.resumed")
    _dispatch(suspended, "subscription.suspended")
    _dispatch(warned, "account.low_balance")
    return {"suspended": len(suspended) + refused, "resumed": len(resumed), "warned": len(warned)}


def evaluate_account(account, *, actor="system", by=None) -> dict:
    """Re-evaluate one billing account (after a payment, a charge, a promise); takes its lock."""
    from tarifa.ledger.services import lock_accounts

    lock_accounts(account)
    return evaluate(scope="ba.id = %(account)s", params={"account": account.pk}, actor=actor, by=by)


def funds_of(account) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(FUNDS_SQL.format(scope="ba.id = %(account)s"), {"account": account.pk, "now": now()})
        row = cursor.fetchone()
    return {"funds": row[3], "balance": row[4]} if row else {}


__all__ = ["evaluate", "evaluate_account", "funds_of"]
