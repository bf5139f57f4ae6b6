"""Usage import, rating and posting: 1,000,000 voice and data CDRs over 10,000 subscribers.

In a fresh database: `tarifa demo synth` makes the operator (6,250 accounts: 6,250
internet subscriptions with a login, ~3,750 mobile with a phone number — 10,000
subscribers with usage) and, with `--usage-per-subscription 100 --no-import`, loads the
synthetic tariff plan (1,000 destinations, 5,000 prefixes, 3 timings; data per MB) and
writes the CDR file in Tarifa's built-in CSV format. Then, in the same run:

- baseline: a plain PostgreSQL `COPY … FROM STDIN (FORMAT csv, HEADER)` of the same file
  into an unindexed table of text columns (then dropped);
- the real import: `tarifa.rating.usage.import_file` — parse and stage, deduplicate,
  resolve subscribers and tariffs, rate (two processes), post prepaid charges to the
  ledger, persist every record (rated or rejected).

Reports records per second end to end, the ratio to the COPY, and peak memory: ru_maxrss
of this process plus that of its largest child (the rating workers), and the PostgreSQL
backend's peak (VmHWM). Targets: ≥ 100,000 records/s, ≤ 3 × COPY, ≤ 2 GiB.

Scale with BENCH_USAGE_ACCOUNTS (default 6250) and BENCH_USAGE_PER_SUBSCRIPTION (100).
"""

import os
import resource
import time


def main() -> dict:
    from bench.run import backend_peak_kib, database, setup_django

    setup_django()
    accounts = int(os.environ.get("BENCH_USAGE_ACCOUNTS", "6250"))
    per_sub = int(os.environ.get("BENCH_USAGE_PER_SUBSCRIPTION", "100"))
    with database():
        from django.db import connection

        from tarifa.ledger.selectors import check_ledger
        from tarifa.rating import synth as rating_synth
        from tarifa.rating import usage
        from tarifa.subscriptions import synth

        print(f"synth: {accounts} accounts …", flush=True)
        t0 = time.perf_counter()
        synth.run(accounts=accounts, seed=1, actor="bench")
        made = rating_synth.run(usage_per_subscription=per_sub, no_import=True, seed=1, actor="bench")
        print(f"synth: {time.perf_counter() - t0:.1f} s; {made['usage_records']} records in {made['usage_file']}",
              flush=True)
        path = made["usage_file"]
        size = os.path.getsize(path)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

        # Baseline: plain COPY of the same file into an unindexed table.
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE bench_copy (record_id text, source text, subject text, destination text, "
                           "type text, start_time text, usage text)")
            t0 = time.perf_counter()
            with open(path, "rb") as fh, cursor.cursor.copy(
                    "COPY bench_copy FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                while data := fh.read(1 << 20):
                    copy.write(data)
            copy_s = time.perf_counter() - t0
            cursor.execute("SELECT count(*), count(DISTINCT subject), count(*) FILTER (WHERE type = 'voice') "
                           "FROM bench_copy")
            copied, subscribers, voice = cursor.fetchone()
            cursor.execute("DROP TABLE bench_copy")
        print(f"COPY: {copied} rows in {copy_s:.2f} s", flush=True)

        t0 = time.perf_counter()
        with open(path, "rb") as fh:
            batch = usage.import_file(fh, format="csv", actor="bench", file_name=os.path.basename(path),
                                      file_size=size)
        import_s = time.perf_counter() - t0
        with connection.cursor() as cursor:
            backend_kib = backend_peak_kib(cursor)
        print(f"import: {import_s:.2f} s {batch.summary()} {batch.timings}", flush=True)
        assert batch.read == batch.rated + batch.rejected + batch.duplicates == copied
        self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        ledger_ok = check_ledger()["ok"]
        os.unlink(path)
        return {
            "records": batch.read,
            "subscribers": subscribers,
            "voice_records": voice,
            "file_mb": round(size / 2**20, 1),
            "rated": batch.rated,
            "rejected": batch.rejected,
            "transfers": batch.transfers,
            "copy_s": round(copy_s, 2),
            "import_s": round(import_s, 2),
            "records_per_s": round(batch.read / import_s),
            "ratio_to_copy": round(import_s / copy_s, 2),
            "phases_s": {k: v for k, v in batch.timings.items() if k in ("stage", "resolve", "rate", "persist")},
            "peak_rss_mib": round((self_kib + children_kib) / 1024),
            "peak_rss_self_mib": round(self_kib / 1024),
            "peak_rss_worker_mib": round(children_kib / 1024),
            "backend_peak_mib": round(backend_kib / 1024) if backend_kib else None,
            "ledger_ok": ledger_ok,
        }
