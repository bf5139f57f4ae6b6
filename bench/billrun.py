"""The month-end bill run over BENCH_BILLRUN_ACCOUNTS accounts (default 1,000,000).

Made in a fresh database by `tarifa demo synth` (accounts, two subscriptions each — synth's
shape —, payments, fees from the first day of the previous month to yesterday), the daily
charge job for today, and one usage charge per mobile subscription posted through the
ledger's bulk path (rating has no synth hook yet). Every account is put in one cycle; the
previous month is invoiced. Measured in the same run:

- baseline: one bare `INSERT … SELECT` computing every account's invoice amount (the sum of
  its not-yet-invoiced sources of the period, the sources query the run uses), into a
  temporary table — no lines, taxes, ledger postings, numbers or locks;
- the real bill run: `tarifa.billing.billrun.run_period(jobs=cpu count)` — lines, taxes,
  invoice rows, source links, ledger postings, gap-free numbers, payment allocation;
- revenue assurance (`check`) over the period; PDFs rendered separately (a sample, one process).

Reports accounts invoiced per second, the ratio to the baseline, peak memory (this process
and its worker processes; the PostgreSQL server is not counted), and checks that the
invoices' exact amounts equal the baseline's. Targets: 1M accounts ≤ 5 min, ≤ 4 × baseline,
< 2 GiB.
"""

import datetime as dt
import os
import resource
import time


def _peak_mib() -> dict:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mib": round(own, 1), "peak_rss_worker_mib": round(children, 1)}


def _through_workers(billrun, cycle, period, n) -> dict:
    """The run enqueued and taken by `n` real `tarifa worker` processes; its summary once finished."""
    import signal
    import subprocess
    import sys
    import urllib.parse
    from pathlib import Path

    from django.db import connection

    from tarifa.billing.models import BillRun

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TARIFA_TEST_", "TEST_DATABASE"))}
    # The server this process uses (the embedded one unless DATABASE_URL says otherwise), the bench's database.
    parts = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    env.update(DATABASE_URL=urllib.parse.urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"])),
               TARIFA_CONN_MAX_AGE="0")
    tarifa = str(Path(sys.executable).with_name("tarifa"))
    procs = [subprocess.Popen([tarifa, "worker", "--queues", "billing", "--concurrency", "1"], env=env,
                              stdout=subprocess.DEVNULL, start_new_session=True) for _ in range(n)]
    try:
        [run] = billrun.enqueue(actor="bench", period=period, cycle=cycle.code)
        while True:
            run.refresh_from_db()
            if run.status not in (BillRun.Status.QUEUED, BillRun.Status.RUNNING):
                break
            if any(p.poll() is not None for p in procs):
                raise AssertionError("a worker ended during the run")
            time.sleep(0.2)
        if run.status != BillRun.Status.FINISHED:
            raise AssertionError(f"run {run.status}: {run.error}")
        return run.summary
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(120)


def main() -> dict:
    os.environ.setdefault("TARIFA_TEST_DATABASE_NAME", "bench_billrun")
    from bench.run import database, setup_django

    setup_django()
    accounts = int(os.environ.get("BENCH_BILLRUN_ACCOUNTS", "1000000"))
    jobs = int(os.environ.get("BENCH_BILLRUN_JOBS", str(os.cpu_count() or 1)))
    pdfs = int(os.environ.get("BENCH_BILLRUN_PDFS", "100"))
    # BENCH_BILLRUN_WORKERS=N: the run goes through the queue, taken by N `tarifa worker` processes.
    workers = int(os.environ.get("BENCH_BILLRUN_WORKERS", "0"))
    with database():
        from django.core.management import call_command
        from django.db import connection

        from tarifa.billing import billrun, services, sources
        from tarifa.billing.check import check
        from tarifa.billing.models import Invoice
        from tarifa.kernel.clock import today
        from tarifa.ledger import services as ledger
        from tarifa.subscriptions import daily

        figures = {"accounts": accounts, "processes": workers or jobs, "through_queue": bool(workers)}

        def log(what):
            import sys

            print(f"[billrun bench {time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)

        log("database ready; synth")
        t0 = time.monotonic()
        since = (today().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        with open(os.devnull, "w") as devnull:
            # No synthetic bill cycles: every account goes into the one cycle this run invoices.
            call_command("demo", "synth", accounts=accounts, seed=11, since=str(since), bill_cycle_days="",
                         stdout=devnull)
        figures["synth_s"] = round(time.monotonic() - t0, 1)
        log(f"synth {figures['synth_s']} s; charge job")
        t0 = time.monotonic()
        charged = daily.run(as_of=today(), actor="bench")
        figures["charge_job_s"] = round(time.monotonic() - t0, 1)
        figures["charges_today"] = charged["inserted"]
        t0 = time.monotonic()
        from tarifa.catalog.models import Tariff

        mobile = Tariff.objects.select_related("service__service_type").get(code="MOB-DAY")
        revenue = ledger.system_account(f"revenue:{mobile.service.service_type.code}", mobile.currency).pk
        usage = ledger.post_transfers_bulk(query="""
            SELECT ba.ledger_account_id, %s::uuid, round(0.05 + (abs(hashtext(s.id::text)) %% 5000) / 1000.0, 6),
                   ba.currency, 'charge', 'bench-usage:' || s.id,
                   jsonb_build_object('subscription', s.id::text, 'usage_type', 'voice', 'destination',
                                      CASE WHEN abs(hashtext(s.id::text)) %% 3 = 0 THEN 'international' ELSE 'national' END,
                                      'period', (%s::date + (abs(hashtext(s.number)) %% 20))::text),
                   'rating.usagerecord', s.id::text, ''
            FROM subscriptions_subscription s JOIN ledger_billingaccount ba ON ba.id = s.billing_account_id
            JOIN catalog_tariff t ON t.id = s.tariff_id WHERE t.code = 'MOB-DAY'""", params=[revenue, since],
                                           actor="bench")
        figures["usage_charges"] = usage.inserted
        figures["usage_s"] = round(time.monotonic() - t0, 1)
        cycle = services.create_cycle(actor="bench", code="BENCH", name="Bench", day_of_month=1)
        assigned = services.assign_accounts_bulk(actor="bench", cycle=cycle)
        if assigned != accounts:
            raise AssertionError(f"{assigned} of {accounts} accounts in the bench cycle: the run would not measure them")
        period = services.last_closed_period(cycle, today())
        _start, end = services.period_of(cycle, period)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE ledger_transfer") if not connection.in_atomic_block else None
            cursor.execute("ANALYZE")
            cursor.execute("SELECT count(*) FROM ledger_transfer")
            figures["ledger_transfers_before"] = cursor.fetchone()[0]
            # Baseline: the same sources, summed per account in one INSERT … SELECT.
            t0 = time.monotonic()
            cursor.execute("BEGIN")
            cursor.execute("""CREATE TEMP TABLE billing_scope AS SELECT ba.id AS account_id,
                              ba.ledger_account_id AS ledger_id, %s::date AS period_end FROM ledger_billingaccount ba""",
                           [end])
            cursor.execute("CREATE TEMP TABLE bare_totals (account_id uuid, amount numeric)")
            cursor.execute(f"INSERT INTO bare_totals SELECT account_id, sum(amount) FROM ({sources.sources_sql()}) s"
                           " GROUP BY account_id", sources.params())
            figures["baseline_s"] = round(time.monotonic() - t0, 2)
            cursor.execute("SELECT count(*), sum(amount) FROM bare_totals")
            base_n, base_sum = cursor.fetchone()
            cursor.execute("CREATE TABLE bench_bare_totals AS SELECT * FROM bare_totals")
            cursor.execute("COMMIT")
        log(f"baseline {figures['baseline_s']} s; bill run")
        t0 = time.monotonic()
        if workers:
            summary = _through_workers(billrun, cycle, period, workers)
            figures["workers_wall_s"] = round(time.monotonic() - t0, 1)  # with the workers' start-up
            seconds = summary["seconds"]  # from the first worker's planning to the last batch
        else:
            summary = billrun.run_period(actor="bench", period=period, cycle=cycle.code, jobs=jobs)
            seconds = time.monotonic() - t0
        figures.update({"period": period, "invoiced": summary["invoiced"], "skipped": summary["skipped"],
                        "billrun_s": round(seconds, 1), "accounts_per_s": round(summary["invoiced"] / seconds, 1),
                        "ratio_to_baseline": round(seconds / figures["baseline_s"], 2)
                        if figures["baseline_s"] else None,
                        "billrun_ledger_transfers": summary["ledger_transfers"], **_peak_mib()})
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM billing_invoiceline")
            figures["invoice_lines"] = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) FROM billing_invoicedsource")
            figures["invoiced_sources"] = cursor.fetchone()[0]
            cursor.execute("""SELECT count(*) FROM billing_invoice i FULL JOIN bench_bare_totals b
                              ON b.account_id = i.billing_account_id
                              WHERE coalesce(i.ledger_amount, -1) <> coalesce(b.amount, 0)
                                AND NOT (b.account_id IS NULL AND i.ledger_amount = 0)""")
            figures["accounts_differing_from_baseline"] = cursor.fetchone()[0]
        figures["baseline_accounts"], figures["baseline_amount"] = base_n, str(base_sum)
        log(f"bill run {figures['billrun_s']} s; check")
        t0 = time.monotonic()
        result = check(period=period)
        figures["check_s"] = round(time.monotonic() - t0, 1)
        figures["check_ok"] = result["ok"]
        from tarifa.billing.documents import invoice_pdf

        sample = list(Invoice.objects.filter(period=period).order_by("-total")[:pdfs])
        t0 = time.monotonic()
        for invoice in sample:
            invoice_pdf(invoice)
        pdf_s = time.monotonic() - t0
        figures["pdfs"] = len(sample)
        figures["pdfs_per_s"] = round(len(sample) / pdf_s, 1) if pdf_s else None
        figures.update(_peak_mib())
        return figures


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
