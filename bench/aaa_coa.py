"""A suspension reaches the NAS: time from the suspension's commit to the Disconnect-Request at the NAS.

In a fresh database: BENCH_COA_SUBSCRIBERS internet subscriptions (default 60), each with an open
session on one NAS, which is a test NAS listener (tarifa.aaa.nas_listener) on a loopback port. A real
`tarifa worker` (the production worker: procrastinate, LISTEN/NOTIFY) runs beside. Each subscription
is suspended in turn (`subscriptions.services.suspend`, its own transaction); the clock starts when
the service returns (committed) and stops when the listener has the Disconnect-Request for that login.

The path measured is the production one: the suspension's domain event → the events job
(kernel.dispatch_event) → aaa's handler defers aaa.bring_in_step → that job sends the request.
Reported: p50/p99/max in ms, and the share within 2 s (the target: p99 ≤ 2 s).
"""

import os
import statistics
import subprocess
import sys
import time


def _database_url() -> str:
    from django.db import connection

    from tarifa.kernel.dburl import url_for

    return url_for(connection.settings_dict)


def main() -> dict:
    from bench.run import database, setup_django

    setup_django()
    with database():
        return _run(int(os.environ.get("BENCH_COA_SUBSCRIBERS", "60")))


def _run(n: int) -> dict:
    from django.db import connections

    from tarifa.aaa.models import Nas, Profile, Session
    from tarifa.aaa.nas_listener import NasListener
    from tarifa.kernel.clock import now
    from tarifa.subscriptions import services as subs
    from tarifa.subscriptions.tests.helpers import customer_account, make_catalog, pay

    secret = "bench-coa-secret"
    listener = NasListener(secret=secret).start()
    tariffs = make_catalog()
    Profile.objects.create(name="Net 31", tariff=tariffs["NET-31"], rate_down_kbps=51200, rate_up_kbps=10240)
    nas = Nas.objects.create(name="bench-bras", ip_address="127.0.0.1", secret=secret, type=Nas.Type.MIKROTIK,
                             coa_port=listener.port)
    account = customer_account()
    pay(account, "100000")
    subscriptions = []
    for i in range(n + 1):  # the first one warms the worker up (not counted)
        sub = subs.create_subscription(actor="bench", billing_account=account, tariff=tariffs["NET-31"],
                                       login=f"bench{i:05d}", activate=True)
        Session.objects.create(nas=nas, acct_session_id=f"B{i:05d}", subscription=sub, login=sub.login,
                               framed_ip=f"10.1.{i // 250}.{i % 250 + 1}", started_at=now(), updated_at=now())
        subscriptions.append(sub)
    connections.close_all()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TEST_DATABASE", "TARIFA_TEST_"))}
    env["DATABASE_URL"] = _database_url()
    worker = subprocess.Popen([sys.executable, "-m", "tarifa.cli", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latencies = []
    try:
        for i, sub in enumerate(subscriptions):
            subs.suspend(sub, actor="bench", cause="operator", reason="bench")
            committed = time.time()
            got = listener.wait_for(i + 1, timeout=60)[i]
            assert got.attributes.get("User-Name") == sub.login, (got.attributes, sub.login)
            if i:
                latencies.append((got.received_at - committed) * 1000)
            time.sleep(0.2)  # one at a time, as suspensions arrive in life
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        listener.stop()
    slow = [(i, round(x)) for i, x in enumerate(latencies) if x > 1000]
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(round(0.99 * len(latencies))) - 1)]
    return {"suspensions": n, "suspension_to_disconnect_p50_ms": round(statistics.median(latencies), 1),
            "suspension_to_disconnect_p99_ms": round(p99, 1),
            "suspension_to_disconnect_max_ms": round(latencies[-1], 1),
            "slow_over_1s": len(slow), "slow_first_index": slow[0][0] if slow else -1,
            "within_2s_share": round(sum(1 for x in latencies if x <= 2000) / len(latencies), 3)}
