"""`tarifa demo synth --accounts N [--seed S] [--since YYYY-MM-DD]`: a synthetic operator, in bulk.

Customers of both kinds, billing accounts (mixed prepaid/postpaid, some with low
balances), their ledger accounts, subscriptions over the demo catalog (internet for
every account; mobile for 60 %, TV for 40 %: two per account) with identifiers,
activated on or after `--since` (default: the first day of the previous month), and a
payment history. Everything is made by set-based `INSERT … SELECT generate_series`
inside PostgreSQL; money goes through the ledger's bulk path, so account totals, the
debits = credits invariant and idempotency keys hold (`tarifa ledger check` passes).
The fees from activation to yesterday are booked as one "charges to date" transfer per
subscription, and a finished charge run for yesterday is recorded, so that the next
`tarifa billing charge` charges today only. Rows are deterministic for a seed (hashes of
the row number, not a random generator). Numbers continue the branch's sequences.
Bulk rows are not audited one by one; the summary is the record.
"""

import datetime as dt
import json
import time

from django.conf import settings
from django.db import connection, models, transaction

from tarifa.crm.models import Customer
from tarifa.kernel.clock import now, today
from tarifa.kernel.models import NumberSequence
from tarifa.ledger import services as ledger
from tarifa.ledger.models import BillingAccount, LedgerAccount, PaymentModeChange

from .models import ChargeRun, IdentifierAssignment, StatusChange, Subscription, TariffPeriod

FIRST = ["Anna", "Boris", "Chen", "Dana", "Emil", "Fatima", "Georg", "Hana", "Ivan", "Julia", "Karim", "Lena",
         "Marco", "Nina", "Omar", "Petra", "Quentin", "Rosa", "Sven", "Tara"]
LAST = ["Novak", "Smith", "Garcia", "Ivanova", "Müller", "Rossi", "Kowalski", "Dubois", "Silva", "Yilmaz", "Tanaka",
        "Horvat", "Jensen", "Popescu", "Nagy", "Costa"]
ORGS = ["Logistics", "Bakery", "Clinic", "Studio", "Consulting", "Hotel", "Motors", "Pharmacy", "School", "Farm"]


def add_arguments(parser):
    parser.add_argument("--accounts", type=int, default=1000, help="synth: number of billing accounts (customers).")
    parser.add_argument("--seed", type=int, default=1, help="synth: seed of the synthetic data.")
    parser.add_argument("--since", default=None, help="synth: first activation day (YYYY-MM-DD); default: the "
                                                      "first day of the previous month.")


def _literal_default(field):
    value = field.get_default()
    if isinstance(field, models.JSONField):
        return json.dumps(value)
    return value


def insert_select(model, exprs: dict, source: str, params: dict) -> int:
    """INSERT INTO model's table (every concrete column) SELECT exprs FROM source.

    Columns not in `exprs` get the field's default (as a parameter), NULL when nullable,
    or '' for blank text — the values a model instance would have had.
    """
    cols, values = [], []
    for i, field in enumerate(model._meta.concrete_fields):
        cols.append(f'"{field.column}"')
        if field.column in exprs:
            values.append(exprs[field.column])
        elif field.has_default():
            name = f"_default_{i}"
            params[name] = _literal_default(field)
            values.append(f"CAST(%({name})s AS {field.db_type(connection)})")
        elif field.null:
            values.append("NULL")
        else:
            values.append("''")
    sql = f"INSERT INTO {model._meta.db_table} ({', '.join(cols)}) SELECT {', '.join(values)} FROM {source}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _reserve(series: str, count: int) -> int:
    """Take `count` numbers of `series` at once; returns the last value before them."""
    branch = settings.TARIFA_BRANCH_CODE
    NumberSequence.objects.get_or_create(branch=branch, series=series)
    seq = NumberSequence.objects.select_for_update().get(branch=branch, series=series)
    base = seq.last_value
    seq.last_value += count
    seq.save(update_fields=["last_value"])
    return base


def _h(expr: str, seed: int, salt: str, mod: int) -> str:
    """A deterministic pseudo-random integer 0…mod-1 from a row expression."""
    return f"(abs(hashtext(({expr})::text || ':{salt}:{seed}')) %% {mod})"


def run(*, summary=None, accounts=1000, seed=1, since=None, actor="demo", **_options) -> dict:
    started = time.monotonic()
    n = int(accounts)
    if n <= 0:
        return {"accounts": 0}
    as_of = today()
    first_day = dt.date.fromisoformat(since) if since else (as_of.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    if first_day > as_of:
        raise ValueError("--since is in the future")
    from tarifa.catalog import demo as catalog_demo
    from tarifa.catalog.models import Tariff

    catalog_demo.load(actor=actor)
    tariffs = {t.code: t for t in Tariff.objects.select_related("service__service_type")}
    currency = tariffs["NET-100"].currency
    branch = settings.TARIFA_BRANCH_CODE
    at = now()
    span = max((as_of - first_day).days, 0)
    timings = {}

    def step(name, t0, *tables):
        # Fresh bulk rows: statistics first, or the next statements plan for empty tables.
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"ANALYZE {table}")
        timings[name] = round(time.monotonic() - t0, 2)

    with transaction.atomic():
        cash = ledger.system_account("cash:SYNTH", currency, name="Synthetic payments")
        c0, a0, s0 = _reserve("C", n), _reserve("A", n), _reserve("S", 2 * n)
        p = {"n": n, "branch": branch, "at": at, "currency": currency, "c0": c0, "a0": a0, "s0": s0,
             "first": first_day, "span": span, "first_names": FIRST, "last_names": LAST, "orgs": ORGS}
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
            # Foreign keys are checked as each statement ends, not queued for COMMIT (a queue of
            # millions of deferred checks costs memory and makes the commit the slowest step).
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("DROP TABLE IF EXISTS synth_rows; DROP TABLE IF EXISTS synth_subs")
            cursor.execute("CREATE TEMP TABLE synth_rows ON COMMIT DROP AS SELECT g AS n, ledger_uuid7() AS customer_id,"
                           " ledger_uuid7() AS ledger_id, ledger_uuid7() AS account_id FROM generate_series(1, %(n)s) g",
                           p)
            cursor.execute("ALTER TABLE synth_rows ADD PRIMARY KEY (n)")
        t0 = time.monotonic()
        org = f"{_h('r.n', seed, 'kind', 10)} >= 8"
        insert_select(Customer, {
            "id": "r.customer_id", "branch": "%(branch)s", "created_at": "%(at)s", "updated_at": "%(at)s",
            "number": "%(branch)s || '-C' || lpad((%(c0)s + r.n)::text, 7, '0')",
            "kind": f"CASE WHEN {org} THEN 'organization' ELSE 'individual' END",
            "first_name": f"CASE WHEN {org} THEN '' ELSE (%(first_names)s::text[])[1 + {_h('r.n', seed, 'f', len(FIRST))}] END",
            "last_name": f"CASE WHEN {org} THEN '' ELSE (%(last_names)s::text[])[1 + {_h('r.n', seed, 'l', len(LAST))}] END",
            "legal_name": f"CASE WHEN {org} THEN (%(last_names)s::text[])[1 + {_h('r.n', seed, 'l', len(LAST))}] || ' '"
                          f" || (%(orgs)s::text[])[1 + {_h('r.n', seed, 'o', len(ORGS))}] || ' ' || (%(c0)s + r.n) ELSE '' END",
            "tax_id": f"CASE WHEN {org} THEN 'SYN' || lpad((%(c0)s + r.n)::text, 9, '0') ELSE '' END",
            "preferred_channel": f"CASE WHEN {_h('r.n', seed, 'ch', 3)} = 0 THEN 'sms' ELSE 'email' END",
        }, "synth_rows r", p)
        step("customers", t0, "crm_customer", "synth_rows")
        t0 = time.monotonic()
        insert_select(LedgerAccount, {
            "id": "r.ledger_id", "branch": "%(branch)s", "code": "'customer:' || %(branch)s || '-A' || lpad((%(a0)s + r.n)::text, 7, '0')",
            "kind": "'customer'", "currency": "%(currency)s", "name": "''", "created_at": "%(at)s",
        }, "synth_rows r", p)
        # Postpaid: 30 % of accounts (the organizations and some individuals), with a credit limit.
        postpaid = f"({org} OR {_h('r.n', seed, 'pp', 10)} = 0)"
        insert_select(BillingAccount, {
            "id": "r.account_id", "branch": "%(branch)s", "created_at": "%(at)s", "updated_at": "%(at)s",
            "number": "%(branch)s || '-A' || lpad((%(a0)s + r.n)::text, 7, '0')", "customer_id": "r.customer_id",
            "currency": "%(currency)s", "payment_mode": f"CASE WHEN {postpaid} THEN 'postpaid' ELSE 'prepaid' END",
            "credit_limit": f"CASE WHEN {postpaid} THEN 200 ELSE 0 END", "status": "'active'",
            "ledger_account_id": "r.ledger_id",
        }, "synth_rows r", p)
        insert_select(PaymentModeChange, {
            "id": "ledger_uuid7()", "billing_account_id": "r.account_id", "from_mode": "''",
            "to_mode": f"CASE WHEN {postpaid} THEN 'postpaid' ELSE 'prepaid' END",
            "effective_date": "%(first)s", "actor": "'synth'", "reason": "'opened (synthetic)'", "created_at": "%(at)s",
        }, "synth_rows r", p)
        step("accounts", t0, "ledger_ledgeraccount", "ledger_billingaccount")
        # Subscriptions: k = 0 internet; k = 1 mobile (60 %) or TV (40 %).
        t0 = time.monotonic()
        ids = {code: str(t.pk) for code, t in tariffs.items()}
        svc = {code: str(t.service_id) for code, t in tariffs.items()}
        p.update({f"t_{k.replace('-', '_')}": v for k, v in ids.items()})
        p.update({f"s_{k.replace('-', '_')}": v for k, v in svc.items()})
        with connection.cursor() as cursor:
            cursor.execute(f"""
                CREATE TEMP TABLE synth_subs ON COMMIT DROP AS
                SELECT ledger_uuid7() AS id, r.n, k, r.account_id,
                       (%(s0)s + 2 * (r.n - 1) + k + 1) AS seq,
                       CASE WHEN k = 0 THEN (CASE WHEN {_h('r.n', seed, 'speed', 3)} = 0 THEN 'NET-500' ELSE 'NET-100' END)
                            WHEN {_h('r.n', seed, 'k1', 5)} < 3 THEN 'MOB-DAY' ELSE 'TV-BASIC' END AS tariff_code,
                       (%(first)s::date + (abs(hashtext((r.n * 2 + k)::text || ':start:{seed}'))
                                           %% (%(span)s + 1))) AS activated_on
                FROM synth_rows r CROSS JOIN generate_series(0, 1) k""", p)
            cursor.execute("ALTER TABLE synth_subs ADD PRIMARY KEY (id)")
        tariff_case = "CASE s.tariff_code " + " ".join(
            f"WHEN '{code}' THEN %(t_{code.replace('-', '_')})s::uuid" for code in ids) + " END"
        service_case = "CASE s.tariff_code " + " ".join(
            f"WHEN '{code}' THEN %(s_{code.replace('-', '_')})s::uuid" for code in svc) + " END"
        insert_select(Subscription, {
            "id": "s.id", "branch": "%(branch)s", "created_at": "%(at)s", "updated_at": "%(at)s",
            "number": "%(branch)s || '-S' || lpad(s.seq::text, 7, '0')", "billing_account_id": "s.account_id",
            "service_id": service_case, "tariff_id": tariff_case, "status": "'active'", "parameters": "'{}'::jsonb",
            "login": "CASE WHEN s.k = 0 THEN 'syn' || (%(c0)s + s.n) ELSE '' END",
            "ip_address": "CASE WHEN s.k = 0 THEN '10.' || ((%(c0)s + s.n) / 65536) %% 256 || '.' || ((%(c0)s + s.n) / 256) %% 256 || '.' || (%(c0)s + s.n) %% 256 ELSE '' END",
            "phone_number": "CASE WHEN s.tariff_code = 'MOB-DAY' THEN '+1700' || lpad((%(c0)s + s.n)::text, 7, '0') ELSE '' END",
            "iccid": "CASE WHEN s.tariff_code = 'MOB-DAY' THEN '8970' || lpad((%(c0)s + s.n)::text, 15, '0') ELSE '' END",
            "imsi": "CASE WHEN s.tariff_code = 'MOB-DAY' THEN '00199' || lpad((%(c0)s + s.n)::text, 10, '0') ELSE '' END",
            "smart_card": "CASE WHEN s.tariff_code = 'TV-BASIC' THEN 'SYN-SC-' || (%(c0)s + s.n) ELSE '' END",
            "activated_on": "s.activated_on", "note": "''",
        }, "synth_subs s", p)
        insert_select(TariffPeriod, {
            "id": "ledger_uuid7()", "subscription_id": "s.id", "tariff_id": tariff_case, "valid_from": "s.activated_on",
            "created_at": "%(at)s"}, "synth_subs s", p)
        with connection.cursor() as cursor:
            # Identifier history: held since the activation day (usage records are matched by it).
            cursor.execute(f"""
                INSERT INTO {IdentifierAssignment._meta.db_table} (id, subscription_id, kind, value, valid_from)
                SELECT ledger_uuid7(), s.id, i.kind, i.value, s.activated_on::timestamptz
                FROM subscriptions_subscription s
                CROSS JOIN LATERAL (VALUES ('login', s.login), ('phone_number', s.phone_number),
                    ('iccid', s.iccid), ('imsi', s.imsi), ('ip_address', s.ip_address),
                    ('mac_address', s.mac_address), ('smart_card', s.smart_card)) AS i(kind, value)
                WHERE s.id IN (SELECT id FROM synth_subs) AND i.value <> ''""")
        insert_select(StatusChange, {
            "id": "ledger_uuid7()", "subscription_id": "s.id", "from_status": "'pending'", "to_status": "'active'",
            "at": "%(at)s", "actor": "'synth'", "reason": "'activated (synthetic)'"}, "synth_subs s", p)
        step("subscriptions", t0, "synth_subs", "subscriptions_subscription", "subscriptions_tariffperiod",
             "subscriptions_statuschange")
        # Payments: one to three per account before today; 8 % of prepaid accounts end up low.
        t0 = time.monotonic()
        pay_query = f"""
            SELECT %(cash)s::uuid, r.ledger_id, (CASE WHEN {_h('r.n', seed, 'low', 100)} < 8 THEN 5 ELSE 30 + 10 * {_h('r.n * 3 + j', seed, 'amt', 6)} END)::numeric,
                   %(currency)s, 'payment', 'synth:{seed}:pay:' || r.account_id || ':' || j,
                   jsonb_build_object('channel', 'synthetic'), 'ledger.billingaccount', r.account_id::text, ''
            FROM synth_rows r CROSS JOIN generate_series(1, 3) j
            WHERE j <= 1 + {_h('r.n', seed, 'npay', 3)}"""
        paid = ledger.post_transfers_bulk(query=pay_query, params={**p, "cash": cash.pk}, actor="synth")
        step("payments", t0, "ledger_transfer", "ledger_ledgeraccount")
        # Fees from activation to yesterday, one transfer per subscription.
        t0 = time.monotonic()
        from .charging import revenue_accounts

        revenue = {(str(st), cur): str(acc) for st, cur, acc in revenue_accounts()}
        rev_case = "CASE s.tariff_code " + " ".join(
            f"WHEN '{code}' THEN '{revenue[(str(t.service.service_type_id), t.currency)]}'::uuid"
            for code, t in tariffs.items()) + " END"
        fee_case = ("CASE s.tariff_code WHEN 'NET-100' THEN 30.00 * d / 30 WHEN 'NET-500' THEN 45.00 * d / 30"
                    " WHEN 'MOB-DAY' THEN 0.50 * d WHEN 'TV-BASIC' THEN 8.00 * (1 + d / 30) END")
        history = f"""
            SELECT r.ledger_id, {rev_case}, round({fee_case}, 2), %(currency)s, 'charge',
                   'synth:{seed}:fees-to-date:' || s.id,
                   jsonb_build_object('subscription', s.id::text, 'tariff', s.tariff_code, 'fee', 'to_date',
                                      'period', s.activated_on::text || '/' || %(yesterday)s::text),
                   'subscriptions.subscription', s.id::text, ''
            FROM (SELECT s.*, (%(today)s::date - s.activated_on) AS d FROM synth_subs s) s
            JOIN synth_rows r ON r.n = s.n
            WHERE s.d > 0"""
        charged = ledger.post_transfers_bulk(query=history, params={**p, "today": as_of,
                                                                    "yesterday": as_of - dt.timedelta(days=1)},
                                             actor="synth")
        step("fees_to_date", t0, "ledger_transfer", "ledger_ledgeraccount")
        # Prepaid accounts are held to their credit limit (0): their payments covered the fees
        # to date — 8 % of them with only 0.25 left, less than a day's fees (the next charge
        # is refused and they are suspended), the others with 20 to 70 in hand.
        t0 = time.monotonic()
        buffer = f"CASE WHEN {_h('r.n', seed, 'low', 100)} < 8 THEN 0.25 ELSE 20 + 10 * {_h('r.n', seed, 'top', 6)} END"
        topup_query = f"""
            SELECT %(cash)s::uuid, r.ledger_id, (la.debits_posted - la.credits_posted + {buffer})::numeric,
                   %(currency)s, 'payment', 'synth:{seed}:topup:' || r.account_id,
                   jsonb_build_object('channel', 'synthetic'), 'ledger.billingaccount', r.account_id::text, ''
            FROM synth_rows r JOIN ledger_ledgeraccount la ON la.id = r.ledger_id
            JOIN ledger_billingaccount ba ON ba.id = r.account_id
            WHERE ba.payment_mode = 'prepaid' AND la.debits_posted - la.credits_posted + {buffer} > 0"""
        topped = ledger.post_transfers_bulk(query=topup_query, params={**p, "cash": cash.pk}, actor="synth")
        step("top_ups", t0, "ledger_transfer", "ledger_ledgeraccount")
        ChargeRun.objects.create(as_of=as_of - dt.timedelta(days=1), first_day=first_day, started_at=at,
                                 finished_at=at, staged=charged.staged, inserted=charged.inserted, actor="synth")
        t0 = time.monotonic()
        from .thresholds import evaluate

        changed = evaluate(scope="ba.id IN (SELECT account_id FROM synth_rows)", actor="synth")
        step("thresholds", t0)
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE synth_rows; DROP TABLE synth_subs")
    with connection.cursor() as cursor:
        for table in ("crm_customer", "ledger_billingaccount", "ledger_ledgeraccount", "subscriptions_subscription",
                      "subscriptions_tariffperiod", "ledger_transfer"):
            cursor.execute(f"ANALYZE {table}")
    return {"accounts": n, "customers": n, "subscriptions": 2 * n, "payments": paid.inserted + topped.inserted,
            "fee_transfers": charged.inserted, "since": str(first_day), "as_of": str(as_of), "seed": seed,
            "suspended": changed["suspended"], "warned": changed["warned"], "timings": timings,
            "seconds": round(time.monotonic() - started, 2)}
