"""Online charging through the Diameter server: 1,000 concurrent credit-control sessions over 1,000
prepaid accounts (100 accounts carry two sessions at once), CCR-U as fast as they are answered.

The server (`tarifa charging diameter`) runs as its own process on the bench database; the
client is python-diameter's Node (tarifa.charging.client) with 32 threads keeping requests in
flight. Each session asks for 300 s at 0.05 + 0.60/min (3.05 EUR a slice) on 5.00 EUR, so every
session reaches final units and 4012 during the run, and the two-session accounts share.
After the run: no account below its limit, no hold pending, every reservation resolved once,
the ledger check clean. Baseline: the same number of reservations (hold + post) straight
through the ledger's services, 8 threads, no protocol.
"""

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from bench.run import database, free_port, setup_django

ACCOUNTS = 1000
SESSIONS = 1000
DOUBLE = 100  # accounts with two sessions
SECONDS = float(os.environ.get("BENCH_CHARGING_SECONDS", "30"))
CLIENT_THREADS = 32


def _percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else None


def _world():
    import datetime as dt

    from tarifa.crm import services as crm
    from tarifa.ledger import services as ledger
    from tarifa.rating import services as rating
    from tarifa.rating.tests.helpers import make_catalog, make_plan
    from tarifa.subscriptions import services as subs

    plan = make_plan()
    tariffs = make_catalog()
    rating.create_tariff_rating(actor="bench", tariff=tariffs["MOB"], tenant=plan["tenant"], subject="MOB",
                                categories={"voice": "call"})
    cash = ledger.system_account("cash:BENCH", "EUR")
    numbers, accounts = [], []
    for i in range(ACCOUNTS):
        customer = crm.create_customer(actor="bench", kind="individual", first_name="Online", last_name=f"B{i}")
        acc = ledger.open_account(actor="bench", customer=customer, currency="EUR", payment_mode="prepaid")
        ledger.post_transfer(actor="bench", debit=cash, credit=acc, amount="5.00", currency="EUR", kind="payment",
                             idempotency_key=f"bench-online-{i}")
        number = f"+1555{i:07d}"
        subs.create_subscription(actor="bench", billing_account=acc, tariff=tariffs["MOB"], phone_number=number,
                                 activate=True)
        numbers.append(number)
        accounts.append(acc)
    _ = dt
    return numbers, accounts


def _server(port):
    from django.db import connection

    from tarifa.kernel.dburl import url_for

    url = url_for(connection.settings_dict)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TARIFA_TEST_", "TEST_DATABASE"))}
    env.update(DATABASE_URL=url, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "tarifa.cli", "charging", "diameter", "--port", str(port),
                             "--workers", "8"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:  # log lines first, then the one saying it listens
        seen.append(line)
        if "listening on" in line:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # keep draining
            return proc
    proc.kill()
    raise RuntimeError("the Diameter server did not start: " + "".join(seen[-20:]))


def _run_sessions(port, numbers):
    from tarifa.charging.client import GyClient, granted_seconds

    latencies, results = [], {}
    lock = threading.Lock()
    gy = GyClient("127.0.0.1", port, origin_host="pgw.bench.localdomain", realm="bench.localdomain", timeout=30)
    gy.start()
    owners = [numbers[k] if k < SESSIONS - DOUBLE else numbers[k - (SESSIONS - DOUBLE)] for k in range(SESSIONS)]
    deadline = [0.0]

    def timed(call, *args, **kwargs):
        t = time.perf_counter()
        cca = call(*args, **kwargs)
        elapsed = time.perf_counter() - t
        with lock:
            latencies.append(elapsed)
            results[cca.result_code] = results.get(cca.result_code, 0) + 1
        return cca

    def session(k):
        sid = f"pgw.bench;{k}"
        cca = timed(gy.initial, sid, owners[k], seconds=300, destination="4420123")
        granted = granted_seconds(cca) or 0
        while cca.result_code == 2001 and time.perf_counter() < deadline[0] and granted:
            cca = timed(gy.update, sid, used_seconds=granted, seconds=300)
            granted = granted_seconds(cca) or 0
        timed(gy.terminate, sid, used_seconds=granted if cca.result_code == 2001 else 0)

    # Sessions come and go; each is answered as fast as the server can: CLIENT_THREADS in flight.
    start = time.perf_counter()
    deadline[0] = start + SECONDS
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(session, range(SESSIONS)))
    wall = time.perf_counter() - start
    gy.stop()
    return latencies, results, wall


def _baseline(accounts, n):
    from django.db import connections

    from tarifa.ledger import services as ledger

    revenue = ledger.system_account("revenue:mobile", "EUR")
    done = [0]
    lock = threading.Lock()

    def work(i):
        acc = accounts[i % len(accounts)]
        try:
            hold = ledger.create_hold(actor="bench", debit=acc, credit=revenue, amount="0.01", currency="EUR",
                                      kind="charge", idempotency_key=f"base-{i}-h", enforce_limit=False)
            ledger.post_hold(hold, actor="bench", idempotency_key=f"base-{i}-p", amount="0.01")
            with lock:
                done[0] += 1
        finally:
            connections.close_all()

    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(n)))
    return done[0], time.perf_counter() - start


def main():
    setup_django()
    with database():
        from tarifa.charging.models import ChargingSession, Reservation
        from tarifa.ledger.models import Hold
        from tarifa.ledger.selectors import check_ledger

        from tarifa.charging import services as charging

        t = time.perf_counter()
        numbers, accounts = _world()
        setup_s = time.perf_counter() - t
        charging.create_peer(actor="bench", origin_host="pgw.bench.localdomain", realm="bench.localdomain",
                             ip_address="127.0.0.1")
        port = free_port()
        server = _server(port)
        try:
            latencies, results, wall = _run_sessions(port, numbers)
        finally:
            server.terminate()
            server.wait(30)
        requests = len(latencies)
        overdrawn = [a.number for a in accounts if (a.ledger_account.__class__.objects.get(pk=a.ledger_account_id)
                                                   .available < 0)]
        pending = Hold.objects.filter(state="pending").count()
        open_res = Reservation.objects.filter(state="open").count()
        not_closed = ChargingSession.objects.exclude(state__in=["closed", "refused"]).count()
        report = check_ledger()
        assert not overdrawn, f"overdrawn accounts: {overdrawn[:10]}"
        assert pending == 0 and open_res == 0 and not_closed == 0, (pending, open_res, not_closed)
        assert report["ok"], report["problems"]
        charged = sum((s.charged for s in ChargingSession.objects.all()), Decimal(0))
        figures = {
            "accounts": ACCOUNTS, "sessions": SESSIONS, "setup_s": round(setup_s, 1),
            "ccr": requests, "ccr_per_s": round(requests / wall, 1), "wall_s": round(wall, 1),
            "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
            "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2)}
        print("online:", figures, results, flush=True)
        # The accounts were spent online: the baseline's holds skip the funds check (same statements).
        base_n, base_s = _baseline(accounts, requests // 2)
        return {
            "accounts": ACCOUNTS, "sessions": SESSIONS, "setup_s": round(setup_s, 1),
            "ccr": requests, "ccr_per_s": round(requests / wall, 1), "wall_s": round(wall, 1),
            "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
            "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
            "result_codes": {str(k): v for k, v in sorted(results.items())},
            "charged_eur": f"{charged:f}", "overdrawn_accounts": 0, "pending_holds": 0, "ledger_check_ok": True,
            "baseline_reservations": base_n, "baseline_reservations_per_s": round(base_n / base_s, 1),
            "baseline_note": "create_hold + post_hold through ledger.services, 8 threads, no protocol",
        }


if __name__ == "__main__":
    print(main())
