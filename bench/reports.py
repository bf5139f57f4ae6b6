"""Reports at scale: every report for a month and the dashboard, on the synthetic operator.

A fresh database gets `tarifa demo synth --accounts BENCH_REPORTS_ACCOUNTS` (default 50,000
accounts = 100,000 subscriptions; the target is 1,000,000 subscriptions: 500,000 accounts),
fees booked from the first day of the previous month to yesterday. Measured in the same run:

- baseline: one bare aggregate over the month's ledger transfers (`SELECT currency, sum(amount)
  … GROUP BY currency`): what any report reading the ledger at least costs without aggregates;
- the nightly roll-up of the month's closed days (`reports.aggregates.rollup`);
- each report for the month (the last 30 days to today), JSON rows and totals as the API makes
  them: closed days from the aggregates where the report uses them, today live;
- the revenue and payments reports without the aggregates (the live query over the month);
- the dashboard page of a superuser (every tile), through the Django test client.

Targets: dashboard ≤ 1 s, every report for a month ≤ 3 s.
"""

import datetime as dt
import os
import sys
import time


def log(what):
    print(f"[reports bench {time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def main() -> dict:
    os.environ.setdefault("TARIFA_TEST_DATABASE_NAME", "bench_reports")
    from bench.run import database, setup_django

    setup_django()
    accounts = int(os.environ.get("BENCH_REPORTS_ACCOUNTS", "50000"))
    with database():
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client

        from tarifa.kernel.clock import today
        from tarifa.reports import aggregates, framework

        figures: dict = {"accounts": accounts}
        since = (today().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        log(f"synth {accounts} accounts since {since}")
        t0 = time.monotonic()
        with open(os.devnull, "w") as devnull:
            call_command("demo", "synth", accounts=accounts, seed=11, since=str(since), stdout=devnull)
        figures["synth_s"] = round(time.monotonic() - t0, 1)
        with connection.cursor() as c:
            c.execute("ANALYZE")
            c.execute("SELECT count(*) FROM subscriptions_subscription")
            figures["subscriptions"] = c.fetchone()[0]
            c.execute("SELECT count(*) FROM ledger_transfer")
            figures["transfers"] = c.fetchone()[0]
            c.execute("SELECT count(*) FROM payments_payment")
            figures["payments"] = c.fetchone()[0]
            c.execute("SELECT count(*) FROM rating_usagerecord")
            figures["usage_records"] = c.fetchone()[0]
        log(f"synth {figures['synth_s']} s: {figures}")

        end = today()
        start = end - dt.timedelta(days=30)
        lo, hi = framework.bounds({"from": start, "to": end})
        t0 = time.monotonic()
        with connection.cursor() as c:
            c.execute("SELECT currency, sum(amount) FROM ledger_transfer WHERE created_at >= %s AND created_at < %s "
                      "GROUP BY currency", [lo, hi])
            c.fetchall()
        figures["baseline_month_transfers_sum_s"] = round(time.monotonic() - t0, 3)

        def timed(code, params):
            report = framework.get(code)
            t = time.monotonic()
            result = framework.run(report, framework.parse_params(report, params))
            framework.json_rows(report, result.rows)
            framework.json_totals(report, result.totals)
            return time.monotonic() - t, len(result.rows)

        # synth books everything at the time it runs (today): the month's figures are read as of
        # tomorrow, when today is a closed day the nightly roll-up has summed.
        from tarifa.kernel.clock import travel_to

        tomorrow = end + dt.timedelta(days=1)
        month = {"from": (tomorrow - dt.timedelta(days=30)).isoformat(), "to": tomorrow.isoformat()}
        with travel_to(dt.datetime.combine(tomorrow, dt.time(9), tzinfo=dt.UTC)):
            for code in ("revenue-by-service", "revenue-by-day", "payments-by-channel"):
                seconds, _ = timed(code, month)
                figures[f"live_{code}_s"] = round(seconds, 3)
            t0 = time.monotonic()
            days = aggregates.rollup(tomorrow - dt.timedelta(days=30), end)
            figures["rollup_s"] = round(time.monotonic() - t0, 2)
            figures["rollup_days"] = days
            log(f"rolled up {days} days in {figures['rollup_s']} s")
            per = {}
            for report in framework.all_reports():
                seconds, rows = timed(report.code, month if report.period else {})
                per[report.code] = round(seconds, 3)
                log(f"{report.code}: {seconds:.3f} s, {rows} rows")
            figures["reports"] = per
            figures["slowest_report"] = max(per, key=per.get)
            figures["slowest_report_s"] = per[figures["slowest_report"]]
            figures["reports_over_3s"] = sorted(c for c, s in per.items() if s > 3)

        from django.contrib.auth import get_user_model

        admin = get_user_model().objects.create(username="bench-admin", is_superuser=True, is_staff=True)
        client = Client()
        client.force_login(admin)
        client.get("/")  # warm: templates, URL resolver (today: live figures; the month's closed days rolled up)
        times = []
        for _ in range(3):
            t0 = time.monotonic()
            assert client.get("/").status_code == 200
            times.append(time.monotonic() - t0)
        figures["dashboard_s"] = round(min(times), 3)
        figures["dashboard_max_s"] = round(max(times), 3)
        log(f"dashboard {figures['dashboard_s']} s")
        return figures


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=1))
