"""The daily charge job over 1,000,000 active subscriptions on 500,000 accounts.

Made by `tarifa demo synth` in a fresh database. Measures, in the same run:
- baseline (issue 18): a COPY of the same number of transfer-shaped rows (the day's
  charges with every column of ledger_transfer, written to a file first) into an
  unindexed table with the transfer table's columns, rolled back;
- a second figure: a bare `INSERT … SELECT` of the same charges into ledger_transfer
  (the same query, no staging, validation, locks or balance updates), rolled back;
- the real job: `tarifa.subscriptions.daily.run(as_of=today)` — charges through the
  ledger's bulk path, balances updated, thresholds evaluated (suspensions, warnings).
Reports subscriptions per second, the ratio to the baseline, and peak memory of this
process and of its PostgreSQL backend. Target: ≤ 60 s, ≤ 10 × the COPY baseline, < 2 GiB.

Scale with BENCH_ACCOUNTS (default 500000; two subscriptions per account). With
BENCH_PAST_MONTHS=N (default 0), N past months of daily fees (one transfer per active
subscription and day, in the past, the accounts' totals updated to match) are in the
ledger before the measured day: does the day's time grow with the ledger's history?
"""

import os
import resource
import tempfile
import time


# One statement per past month: every active subscription's daily fee for each of the
# month's days, set-based (not the service path), ordered by (day, subscription) so the
# time-ordered ids, the (time-prefixed) keys and the account indexes fill in order. The
# fees go straight into the month they belong to (with a partitioned ledger, its partition).
PAST_MONTH_SQL = """
WITH rev AS (
  SELECT id, currency FROM ledger_ledgeraccount WHERE code LIKE 'revenue:%%' ORDER BY code LIMIT 1
), subs AS (
  SELECT ba.ledger_account_id AS debit_id, rev.id AS credit_id, rev.currency, s.id AS sub_id
  FROM subscriptions_subscription s
  JOIN ledger_billingaccount ba ON ba.id = s.billing_account_id
  JOIN rev ON rev.currency = ba.currency
  WHERE s.status = 'active'
), days AS (
  SELECT %(start)s::timestamptz + make_interval(days => n) AS at FROM generate_series(0, %(days)s - 1) n
), rows AS MATERIALIZED (
  SELECT encode(set_bit(set_bit(set_bit(set_bit(
           overlay(uuid_send(gen_random_uuid()) placing substring(int8send(
             (extract(epoch FROM d.at) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
           52, 1), 53, 1), 54, 1), 55, 0), 'hex')::uuid AS id,
         d.at, r.debit_id, r.credit_id, r.currency, r.sub_id, 'past:' || d.at::date || ':' || r.sub_id AS key
  FROM days d CROSS JOIN subs r
  ORDER BY d.at, r.sub_id
){claim}
INSERT INTO {table} (id, branch, debit_account_id, credit_account_id, amount, currency, kind, tags,
                     reference_type, reference_id, idempotency_key, memo, actor, created_at)
SELECT r.id, 'HQ', r.debit_id, r.credit_id, 1, r.currency, 'charge',
       jsonb_build_object('subscription', r.sub_id::text, 'service', 'past', 'tariff', 'past', 'fee', 'recurring',
                          'period', r.at::date::text),
       'subscriptions.subscription', r.sub_id::text, r.key, '', 'bench', r.at
FROM rows r
"""

# With a partitioned ledger (migration 0008), every transfer claims its key in the key table
# in the same statement (the transfer table's insert check refuses one that did not).
CLAIM_ROWS = """, claimed AS (
  INSERT INTO ledger_transfer_key (idempotency_key, transfer_id) SELECT key, id FROM rows
)"""

# With a partitioned ledger, a past month is filled as a table of its own (no index, no
# trigger), its keys claimed, then attached as the month's partition: PostgreSQL builds the
# partition's indexes in bulk and checks its bounds; the month's guards are added as the
# periodic job adds them. The transfers are the same as through the parent; only faster.
PAST_PARTITION_SQL = """
CREATE TABLE bench_past_month (LIKE ledger_transfer INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
"""
ATTACH_SQL = """
INSERT INTO ledger_transfer_key (idempotency_key, transfer_id)
  SELECT idempotency_key, id FROM bench_past_month ORDER BY idempotency_key;
ALTER TABLE bench_past_month RENAME TO {name};
ALTER TABLE ledger_transfer ATTACH PARTITION {name}
  FOR VALUES FROM (ledger_uuid7_floor(%(first)s::timestamp AT TIME ZONE 'UTC'))
  TO (ledger_uuid7_floor(%(next)s::timestamp AT TIME ZONE 'UTC'));
SELECT ledger_transfer_partition_guards('{name}');
"""


# What the past fees took from each customer account (one per active subscription and past
# day), given back by one adjustment per account: the balances (and so the day's refusals and
# suspensions) are synth's again; both sides' totals move by what the fees and refunds moved.
PAST_BALANCES_SQL = """
WITH rev AS (
  SELECT id, currency FROM ledger_ledgeraccount WHERE code LIKE 'revenue:%%' ORDER BY code LIMIT 1
), fees AS (
  SELECT ba.ledger_account_id AS customer_id, rev.id AS revenue_id, rev.currency, count(*) * %(days)s AS amount
  FROM subscriptions_subscription s
  JOIN ledger_billingaccount ba ON ba.id = s.billing_account_id
  JOIN rev ON rev.currency = ba.currency
  WHERE s.status = 'active' GROUP BY 1, 2, 3
), rows AS MATERIALIZED (
  SELECT ledger_uuid7() AS id, f.*, 'bench-past-refund:' || f.customer_id AS key FROM fees f
){claim}, ins AS (
  INSERT INTO ledger_transfer (id, branch, debit_account_id, credit_account_id, amount, currency, kind, tags,
                               reference_type, reference_id, idempotency_key, memo, actor, created_at)
  SELECT r.id, 'HQ', r.revenue_id, r.customer_id, r.amount, r.currency, 'adjustment', '{{}}'::jsonb,
         '', '', r.key, '', 'bench', now()
  FROM rows r
  RETURNING id
), moved AS (
  SELECT customer_id AS account_id, amount FROM fees
  UNION ALL SELECT revenue_id, sum(amount) FROM fees GROUP BY revenue_id
), d AS (
  SELECT m.account_id, m.amount FROM moved m WHERE EXISTS (SELECT 1 FROM ins)
)
UPDATE ledger_ledgeraccount a SET debits_posted = a.debits_posted + d.amount, credits_posted = a.credits_posted + d.amount
FROM d WHERE a.id = d.account_id
"""


def fill_past_months(months: int) -> int:
    """The `months` calendar months before last month: each day (up to 30) one fee transfer
    per active subscription, set-based (one statement per month; with a partitioned ledger,
    into the month's own partition), then one adjustment per account giving the fees back
    (balances as synth left them); returns the fees made."""
    import calendar
    import datetime as dt

    from django.db import connection, transaction

    from tarifa.kernel.clock import today

    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('ledger_transfer_key') IS NOT NULL")
        partitioned = cursor.fetchone()[0]
    made, total_days = 0, 0
    first_of_this = today().replace(day=1)
    for back in range(months + 1, 1, -1):  # oldest first; last month left empty (synth's fees)
        y, m = divmod(first_of_this.year * 12 + first_of_this.month - 1 - back, 12)
        first = dt.date(y, m + 1, 1)
        days = min(30, calendar.monthrange(first.year, first.month)[1])
        nxt = (first + dt.timedelta(days=32)).replace(day=1)
        start = dt.datetime(first.year, first.month, 1, 12, tzinfo=dt.UTC)
        total_days += days
        with transaction.atomic(), connection.cursor() as cursor:
            params = {"start": start, "days": days}
            if partitioned:
                name = f"ledger_transfer_y{first.year:04d}m{first.month:02d}"
                cursor.execute(PAST_PARTITION_SQL)
                cursor.execute(PAST_MONTH_SQL.format(claim="", table="bench_past_month"), params)
                made += cursor.rowcount
                cursor.execute(ATTACH_SQL.format(name=name), {"first": first, "next": nxt})
            else:
                cursor.execute(PAST_MONTH_SQL.format(claim="", table="ledger_transfer"), params)
                made += cursor.rowcount
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(PAST_BALANCES_SQL.format(claim=CLAIM_ROWS if partitioned else ""), {"days": total_days})
    return made


def main() -> dict:
    from bench.run import backend_peak_kib, database, setup_django

    setup_django()
    accounts = int(os.environ.get("BENCH_ACCOUNTS", "500000"))
    with database():
        from django.db import connection, transaction

        from tarifa.kernel.clock import today
        from tarifa.ledger.selectors import check_ledger
        from tarifa.subscriptions import charging, daily, synth

        print(f"synth: {accounts} accounts …", flush=True)
        t0 = time.perf_counter()
        made = synth.run(accounts=accounts, seed=1, actor="bench")
        synth_s = time.perf_counter() - t0
        print(f"synth: {synth_s:.1f} s {made['timings']}", flush=True)
        as_of = today()
        past_months = int(os.environ.get("BENCH_PAST_MONTHS", "0"))
        past_rows, past_s = 0, 0.0
        if past_months:
            t0 = time.perf_counter()
            past_rows = fill_past_months(past_months)
            past_s = time.perf_counter() - t0
            print(f"past months: {past_months} ({past_rows} transfers) in {past_s:.1f} s", flush=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM subscriptions_subscription WHERE status = 'active'")
            active = cursor.fetchone()[0]
            cursor.execute("VACUUM ANALYZE") if not connection.in_atomic_block else None

        query = charging.charges_query()
        columns = ("debit_account_id, credit_account_id, amount, currency, kind, idempotency_key, tags, "
                   "reference_type, reference_id, memo, id, branch, actor, created_at")
        shaped = f"SELECT q.*, ledger_uuid7(), 'HQ', 'bench', now() FROM ({query}) q"

        # Baseline (issue 18): COPY of the same number of transfer-shaped rows into an
        # unindexed table with ledger_transfer's columns; the rows are the day's charges,
        # written to a file beforehand (not timed), the COPY timed, rolled back.
        with tempfile.TemporaryFile() as rows_file:
            with connection.cursor() as cursor:
                sql = cursor.mogrify(f"COPY ({shaped}) TO STDOUT", {"first": as_of, "last": as_of})
                with cursor.cursor.copy(sql) as copy:
                    for chunk in copy:
                        rows_file.write(chunk)
            rows_file.seek(0)
            t0 = time.perf_counter()
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("CREATE TABLE bench_copy_transfer (LIKE ledger_transfer)")
                    with cursor.cursor.copy(f"COPY bench_copy_transfer ({columns}) FROM STDIN") as copy:
                        while chunk := rows_file.read(1 << 20):
                            copy.write(chunk)
                    cursor.execute("SELECT count(*) FROM bench_copy_transfer")
                    copy_rows = cursor.fetchone()[0]
                transaction.set_rollback(True)
            copy_s = time.perf_counter() - t0
        print(f"baseline COPY: {copy_rows} rows in {copy_s:.1f} s", flush=True)

        # Second figure: the same charges, bare INSERT … SELECT into ledger_transfer, rolled back.
        bare = f"INSERT INTO ledger_transfer ({columns}) {shaped}"
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('ledger_transfer_key') IS NOT NULL")
            partitioned = cursor.fetchone()[0]
        if partitioned:  # the keys are claimed in the key table, in the same statement (migration 0008)
            bare = (f"WITH rows AS MATERIALIZED (SELECT * FROM ({shaped}) s ({columns})), claimed AS ("
                    f" INSERT INTO ledger_transfer_key (idempotency_key, transfer_id) SELECT idempotency_key, id"
                    f" FROM rows) INSERT INTO ledger_transfer ({columns}) SELECT * FROM rows")
        t0 = time.perf_counter()
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(bare, {"first": as_of, "last": as_of})
                baseline_rows = cursor.rowcount
            transaction.set_rollback(True)
        baseline_s = time.perf_counter() - t0
        print(f"bare INSERT … SELECT: {baseline_rows} rows in {baseline_s:.1f} s", flush=True)

        t0 = time.perf_counter()
        result = daily.run(as_of=as_of, actor="bench")
        job_s = time.perf_counter() - t0
        print(f"job: {job_s:.1f} s {result}", flush=True)
        with connection.cursor() as cursor:
            backend_kib = backend_peak_kib(cursor)
        again = daily.run(as_of=as_of, actor="bench")
        print(f"rerun: {again}", flush=True)
        print(f"peak memory: python {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB, "
              f"postgres backend {(backend_kib or 0) // 1024} MiB", flush=True)
        # The full invariant check reads every transfer: minutes at this size on a busy machine.
        ok, check_s = None, 0.0
        if accounts <= 100_000 or os.environ.get("BENCH_LEDGER_CHECK") == "1":
            t0 = time.perf_counter()
            ok = check_ledger()["ok"]
            check_s = time.perf_counter() - t0
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[:3]
    py_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "accounts": accounts, "active_subscriptions": active, "past_months": past_months,
        "transfer_table_partitioned": partitioned,
        "past_transfers": past_rows, "past_fill_s": round(past_s, 1), "synth_s": round(synth_s, 1),
        "synth_timings_s": made["timings"],
        "charges_posted": result["inserted"], "suspended": result["suspended"], "warned": result["warned"],
        "job_s": round(job_s, 2), "job_charge_s": result["charge_s"], "job_thresholds_s": result["thresholds_s"], "subscriptions_per_s": round(active / job_s),
        "baseline_copy_s": round(copy_s, 2), "baseline_copy_rows": copy_rows,
        "ratio_to_baseline": round(job_s / copy_s, 2),
        "bare_insert_select_s": round(baseline_s, 2), "bare_insert_select_rows": baseline_rows,
        "ratio_to_bare_insert": round(job_s / baseline_s, 2),
        "python_peak_rss_mib": round(py_kib / 1024), "postgres_backend_peak_mib": round(backend_kib / 1024)
        if backend_kib else None,
        "rerun_s": again["seconds"], "rerun_charges_posted": again["inserted"], "ledger_check_ok": ok, "ledger_check_s": round(check_s, 1),
        "load_average_at_end": " ".join(load),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
