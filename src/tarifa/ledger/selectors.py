"""Reads of the ledger that other apps and the screens use, and the invariant check."""

import datetime as dt
from decimal import Decimal

from django.db import connection
from django.db.models import F, Q, QuerySet, Sum

from .models import BillingAccount, Hold, LedgerAccount, PaymentModeChange, Transfer


def accounts_of(customer) -> QuerySet:
    """A customer's billing accounts with their ledger totals (one query)."""
    return BillingAccount.objects.filter(customer=customer).select_related("ledger_account").order_by("number")


def transfers_of(account, *, kinds=None) -> QuerySet:
    """Transfers debiting or crediting a billing or ledger account, newest first."""
    ledger_id = account.ledger_account_id if isinstance(account, BillingAccount) else account.pk
    qs = Transfer.objects.filter(Q(debit_account_id=ledger_id) | Q(credit_account_id=ledger_id))
    if kinds:
        qs = qs.filter(kind__in=kinds)
    return qs.select_related("debit_account", "credit_account").order_by("-created_at", "-id")


def holds_of(account, *, pending_only=False) -> QuerySet:
    ledger_id = account.ledger_account_id if isinstance(account, BillingAccount) else account.pk
    qs = Hold.objects.filter(Q(debit_account_id=ledger_id) | Q(credit_account_id=ledger_id))
    if pending_only:
        qs = qs.filter(state=Hold.State.PENDING)
    return qs.order_by("-created_at", "-id")


def signed_amount(transfer: Transfer, account) -> Decimal:
    """The transfer's effect on `account`'s balance (credits − debits): + credited, − debited."""
    ledger_id = account.ledger_account_id if isinstance(account, BillingAccount) else account.pk
    return transfer.amount if transfer.credit_account_id == ledger_id else -transfer.amount


def payment_mode_on(account: BillingAccount, day: dt.date) -> str | None:
    """The payment mode in force on `day` (None before the account was opened)."""
    change = (PaymentModeChange.objects.filter(billing_account=account, effective_date__lte=day)
              .order_by("-effective_date", "-created_at").first())
    return change.to_mode if change else None


def billing_account_by_number(number: str) -> BillingAccount | None:
    return BillingAccount.objects.select_related("ledger_account", "customer").filter(number=number).first()


# --- the invariant check (`tarifa ledger check`) -----------------------------------------------------

PROBLEM_LIMIT = 50

CHECKS = {
    # Each stored total equals the sum of its transfers (posted) and of its pending holds.
    "account_totals": """
        WITH t AS (
          SELECT account_id, sum(dp) AS dp, sum(cp) AS cp FROM (
            SELECT debit_account_id AS account_id, amount AS dp, 0 AS cp FROM ledger_transfer
            UNION ALL SELECT credit_account_id, 0, amount FROM ledger_transfer) x
          GROUP BY account_id
        ), h AS (
          SELECT account_id, sum(dq) AS dq, sum(cq) AS cq FROM (
            SELECT debit_account_id AS account_id, amount AS dq, 0 AS cq FROM ledger_hold WHERE state = 'pending'
            UNION ALL SELECT credit_account_id, 0, amount FROM ledger_hold WHERE state = 'pending') y
          GROUP BY account_id
        )
        SELECT a.code || ' ' || a.currency,
               format('debits_posted %s (transfers %s), credits_posted %s (transfers %s), debits_pending %s (holds %s),'
                      ' credits_pending %s (holds %s)', a.debits_posted, coalesce(t.dp, 0), a.credits_posted,
                      coalesce(t.cp, 0), a.debits_pending, coalesce(h.dq, 0), a.credits_pending, coalesce(h.cq, 0))
        FROM ledger_ledgeraccount a LEFT JOIN t ON t.account_id = a.id LEFT JOIN h ON h.account_id = a.id
        WHERE a.debits_posted <> coalesce(t.dp, 0) OR a.credits_posted <> coalesce(t.cp, 0)
           OR a.debits_pending <> coalesce(h.dq, 0) OR a.credits_pending <> coalesce(h.cq, 0)
        ORDER BY a.code LIMIT %(limit)s
    """,
    # Debits equal credits per currency, over the stored totals of all accounts.
    "debits_equal_credits": """
        SELECT currency, format('debits_posted %s, credits_posted %s, debits_pending %s, credits_pending %s',
                                sum(debits_posted), sum(credits_posted), sum(debits_pending), sum(credits_pending))
        FROM ledger_ledgeraccount GROUP BY currency
        HAVING sum(debits_posted) <> sum(credits_posted) OR sum(debits_pending) <> sum(credits_pending)
        LIMIT %(limit)s
    """,
    # A transfer debits one account and credits another, both in its currency, a positive amount.
    "transfer_shape": """
        SELECT t.id::text, format('%s %s: debit %s (%s), credit %s (%s)', t.amount, t.currency,
                                  coalesce(d.code, 'missing'), d.currency, coalesce(c.code, 'missing'), c.currency)
        FROM ledger_transfer t
        LEFT JOIN ledger_ledgeraccount d ON d.id = t.debit_account_id
        LEFT JOIN ledger_ledgeraccount c ON c.id = t.credit_account_id
        WHERE d.id IS NULL OR c.id IS NULL OR d.currency <> t.currency OR c.currency <> t.currency
           OR t.debit_account_id = t.credit_account_id OR t.amount <= 0
        LIMIT %(limit)s
    """,
    # A posted hold has exactly one posting transfer; other holds have none.
    "posted_holds": """
        SELECT h.id::text, format('%s hold with %s posting transfers', h.state, count(t.id))
        FROM ledger_hold h LEFT JOIN ledger_transfer t ON t.pending_id = h.id
        GROUP BY h.id, h.state
        HAVING (h.state = 'posted') <> (count(t.id) = 1) OR count(t.id) > 1
        LIMIT %(limit)s
    """,
    # The posting transfer moves at most the held amount, between the hold's accounts.
    "hold_postings": """
        SELECT t.id::text, format('posts hold %s of %s %s for %s between other accounts or more than held',
                                  h.id, h.amount, h.currency, t.amount)
        FROM ledger_transfer t JOIN ledger_hold h ON h.id = t.pending_id
        WHERE t.amount > h.amount OR t.currency <> h.currency OR t.debit_account_id <> h.debit_account_id
           OR t.credit_account_id <> h.credit_account_id
        LIMIT %(limit)s
    """,
    # Resolved exactly when no longer pending.
    "hold_resolution": """
        SELECT id::text, format('state %s, resolved_at %s', state, resolved_at) FROM ledger_hold
        WHERE (state = 'pending') <> (resolved_at IS NULL) OR state NOT IN ('pending', 'posted', 'voided', 'expired')
        LIMIT %(limit)s
    """,
    # A reversal mirrors an existing transfer (accounts swapped, same amount and currency), once.
    "reversals": """
        SELECT r.id::text, format('reverses %s but does not mirror it', r.reverses_id)
        FROM ledger_transfer r LEFT JOIN ledger_transfer o ON o.id = r.reverses_id
        WHERE r.reverses_id IS NOT NULL AND (o.id IS NULL OR r.debit_account_id <> o.credit_account_id
           OR r.credit_account_id <> o.debit_account_id OR r.amount <> o.amount OR r.currency <> o.currency
           OR o.kind = 'reversal')
        UNION ALL
        SELECT id::text, 'kind and reverses disagree' FROM ledger_transfer
        WHERE (kind = 'reversal') <> (reverses_id IS NOT NULL)
        UNION ALL
        SELECT reverses_id::text, format('reversed %s times', count(*)) FROM ledger_transfer
        WHERE reverses_id IS NOT NULL GROUP BY reverses_id HAVING count(*) > 1
        LIMIT %(limit)s
    """,
    # Every transfer holds its claim in the key table (key, reversed transfer, posted hold)
    # and every claim names an existing transfer with that key.
    "transfer_keys": """
        SELECT t.id::text, format('key %s: no matching claim in ledger_transfer_key',
                                  t.idempotency_key)
        FROM ledger_transfer t
        WHERE NOT EXISTS (SELECT 1 FROM ledger_transfer_key k
                          WHERE k.idempotency_key = t.idempotency_key AND k.transfer_id = t.id
                            AND k.reverses_id IS NOT DISTINCT FROM t.reverses_id
                            AND k.pending_id IS NOT DISTINCT FROM t.pending_id)
        UNION ALL
        SELECT k.transfer_id::text, format('key %s claimed by a transfer that does not exist', k.idempotency_key)
        FROM ledger_transfer_key k
        WHERE NOT EXISTS (SELECT 1 FROM ledger_transfer t WHERE t.id = k.transfer_id)
        LIMIT %(limit)s
    """,
    # A billing account's ledger account is its customer:<number> account in its currency.
    "billing_accounts": """
        SELECT b.number, format('ledger account %s %s (%s)', l.code, l.currency, l.kind)
        FROM ledger_billingaccount b JOIN ledger_ledgeraccount l ON l.id = b.ledger_account_id
        WHERE l.code <> 'customer:' || b.number OR l.currency <> b.currency OR l.kind <> 'customer'
        LIMIT %(limit)s
    """,
    # The database guards are in place and enabled.
    "guards": """
        SELECT expected.name, 'trigger missing or disabled'
        FROM (VALUES ('ledger_transfer'::regclass, 'ledger_transfer_append_only'),
                     ('ledger_transfer', 'ledger_transfer_check_inserted'),
                     ('ledger_transfer_key', 'ledger_transfer_key_append_only'),
                     ('ledger_hold', 'ledger_hold_resolved_once'),
                     ('ledger_ledgeraccount', 'ledger_account_guard')
              UNION ALL  -- each month's partition guards statements addressed to it directly
              SELECT p.inhrelid::regclass, g.name FROM pg_inherits p
              CROSS JOIN (VALUES ('ledger_transfer_append_only'), ('ledger_transfer_check_inserted')) g(name)
              WHERE p.inhparent = 'ledger_transfer'::regclass) AS expected(tbl, name)
        LEFT JOIN pg_trigger tg ON tg.tgname = expected.name AND tg.tgrelid = expected.tbl
                                AND tg.tgenabled IN ('O', 'A')
        WHERE tg.oid IS NULL
        UNION ALL
        SELECT 'ledger_transfer_default', 'no DEFAULT partition' WHERE NOT EXISTS (
          SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'ledger_transfer'::regclass AND partdefid <> 0)
        UNION ALL
        SELECT 'ledger_transfer', format('no partition for %s', to_char(m, 'YYYY-MM'))
        FROM (VALUES (date_trunc('month', now() AT TIME ZONE 'UTC')),
                     (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month')) AS months(m)
        WHERE to_regclass('ledger_transfer_' || to_char(m, '"y"YYYY"m"MM')) IS NULL
        LIMIT %(limit)s
    """,
}

# format()'s %s placeholders are doubled for the driver's parameter syntax.
CHECKS = {name: sql.replace("%s", "%%s") for name, sql in CHECKS.items()}

SUBJECT = {"account_totals": "account", "debits_equal_credits": "currency", "transfer_shape": "transfer",
           "posted_holds": "hold", "hold_postings": "transfer", "hold_resolution": "hold", "reversals": "transfer",
           "transfer_keys": "transfer", "billing_accounts": "billing_account", "guards": "trigger"}


# Each check's share of the whole check's time on a large ledger (for progress reports).
WEIGHTS = {"totals": 10, "account_totals": 35, "debits_equal_credits": 1, "transfer_shape": 15, "posted_holds": 5,
           "hold_postings": 4, "hold_resolution": 2, "reversals": 25, "transfer_keys": 20,
           "billing_accounts": 2, "guards": 1}


def check_ledger(progress=None) -> dict:
    """Verify every ledger invariant; the structure `tarifa ledger check` prints.

    {"ok", "transfers", "holds", "holds_by_state", "moved": {currency: total},
     "accounts", "checks": {name: "ok" | n problems}, "problems": [{"check", <subject>, "detail"}]}
    Read-only; runs in one REPEATABLE READ snapshot when called outside a transaction.
    On a large ledger it reads every transfer (minutes at millions): screens and the API run it
    as a background task (tasks.py, kind "ledger.check"); `progress(percent, step)` is told
    before each check.
    """
    total_weight, done = sum(WEIGHTS.values()), 0

    def step(name):
        nonlocal done
        if progress is not None:
            progress(100 * done / total_weight, name)
        done += WEIGHTS.get(name, 1)

    problems = []
    checks = {}
    with connection.cursor() as cursor:
        if not connection.in_atomic_block:
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            step("totals")
            cursor.execute("SELECT currency, count(*), sum(amount) FROM ledger_transfer GROUP BY currency"
                           " ORDER BY currency")
            per_currency = cursor.fetchall()
            cursor.execute("SELECT state, count(*) FROM ledger_hold GROUP BY state")
            holds = dict(cursor.fetchall())
            cursor.execute("SELECT count(*) FROM ledger_ledgeraccount")
            accounts = cursor.fetchone()[0]
            for name, sql in CHECKS.items():
                step(name)
                cursor.execute(sql, {"limit": PROBLEM_LIMIT})
                found = cursor.fetchall()
                checks[name] = "ok" if not found else f"{len(found)}{'+' if len(found) == PROBLEM_LIMIT else ''} problems"
                problems += [{"check": name, SUBJECT[name]: subject, "detail": detail} for subject, detail in found]
        finally:
            if not connection.in_atomic_block:
                cursor.execute("COMMIT")
    return {
        "ok": not problems,
        "transfers": sum(n for _c, n, _s in per_currency),
        "holds": sum(holds.values()),
        "holds_by_state": {state: holds.get(state, 0) for state in Hold.State.values},
        "accounts": accounts,
        "moved": {currency: f"{total:f}" for currency, _n, total in per_currency},
        "transfers_by_currency": {currency: n for currency, n, _s in per_currency},
        "checks": checks,
        "problems": problems,
    }


def spread_balance(code: str, currency: str) -> Decimal:
    """The balance (credits − debits, posted) of system account `code` with all its spread rows
    (`code~2` … `code~N`, services.spread_account)."""
    total = (LedgerAccount.objects.filter(currency=currency, kind=LedgerAccount.Kind.SYSTEM)
             .filter(Q(code=code) | Q(code__startswith=f"{code}~"))
             .aggregate(balance=Sum(F("credits_posted") - F("debits_posted")))["balance"])
    return total or Decimal(0)


def system_accounts() -> QuerySet:
    return LedgerAccount.objects.filter(kind=LedgerAccount.Kind.SYSTEM).order_by("code", "currency")


def transfer_partitions() -> list[dict]:
    """The partitions of `ledger_transfer`, oldest first (the DEFAULT partition last): name,
    bounds, estimated rows and size on disk (table and indexes)."""
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples::bigint,
                   pg_total_relation_size(c.oid)
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'ledger_transfer'::regclass
            ORDER BY c.relname = 'ledger_transfer_default', c.relname""")
        return [{"name": name, "bounds": bounds, "rows_estimate": max(rows, 0), "bytes": size}
                for name, bounds, rows, size in cursor.fetchall()]
