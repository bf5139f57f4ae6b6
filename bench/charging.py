"""The daily charge job over 1,000,000 active subscriptions on 500,000 accounts.

Made by `tarifa demo synth` in a fresh database. Measures, in the same run:
- baseline: a bare `INSERT … SELECT` of the same charges into ledger_transfer (the
  same query, no staging, validation, locks or balance updates), rolled back;
- the real job: `tarifa.subscriptions.daily.run(as_of=today)` — charges through the
  ledger's bulk path, balances updated, thresholds evaluated (suspensions, warnings).
Reports subscriptions per second, the ratio to the baseline, and peak memory of this
process and of its PostgreSQL backend. Target: ≤ 60 s, ≤ 3 × baseline, < 2 GiB.

Scale with BENCH_ACCOUNTS (default 500000; two subscriptions per account).
"""

import os
import resource
import time


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
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM subscriptions_subscription WHERE status = 'active'")
            active = cursor.fetchone()[0]
            cursor.execute("VACUUM ANALYZE") if not connection.in_atomic_block else None

        # Baseline: the same charges, bare INSERT … SELECT, rolled back.
        query = charging.charges_query()
        bare = f"""
            INSERT INTO ledger_transfer (debit_account_id, credit_account_id, amount, currency, kind, idempotency_key,
                                         tags, reference_type, reference_id, memo, id, branch, actor, created_at)
            SELECT q.*, ledger_uuid7(), 'HQ', 'bench', now() FROM ({query}) q"""
        t0 = time.perf_counter()
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(bare, {"first": as_of, "last": as_of})
                baseline_rows = cursor.rowcount
            transaction.set_rollback(True)
        baseline_s = time.perf_counter() - t0
        print(f"baseline: {baseline_rows} rows in {baseline_s:.1f} s", flush=True)

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
        "accounts": accounts, "active_subscriptions": active, "synth_s": round(synth_s, 1),
        "synth_timings_s": made["timings"],
        "charges_posted": result["inserted"], "suspended": result["suspended"], "warned": result["warned"],
        "job_s": round(job_s, 2), "job_charge_s": result["charge_s"], "job_thresholds_s": result["thresholds_s"], "subscriptions_per_s": round(active / job_s),
        "baseline_insert_select_s": round(baseline_s, 2), "baseline_rows": baseline_rows,
        "ratio_to_baseline": round(job_s / baseline_s, 2),
        "python_peak_rss_mib": round(py_kib / 1024), "postgres_backend_peak_mib": round(backend_kib / 1024)
        if backend_kib else None,
        "rerun_s": again["seconds"], "rerun_charges_posted": again["inserted"], "ledger_check_ok": ok, "ledger_check_s": round(check_s, 1),
        "load_average_at_end": " ".join(load),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
