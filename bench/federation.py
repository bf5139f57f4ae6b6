"""Federation: relay messages/s, message latency from acceptance to application at the receiver, and
catch-up time after a cut link with 1,000 (and 10,000) messages queued.

A centre and two branches as real processes on loopback (tarifa/federation/cluster.py: own databases on
the bench's PostgreSQL server, own web server and worker each), B1 → B2 through the fault proxy:

- latency: BENCH_FED_LATENCY single messages sent at B1 through its API (the 201 is the acceptance), each
  after the previous one was applied (no queue); per message, B2's `applied_at` − B1's `created_at` (one
  clock: same machine): p50, p95;
- catch-up: the link B1 → B2 cut, BENCH_FED_QUEUED messages queued at B1 (one `ping --count N`), the link
  restored: the time from the restore until B2 applied the last one, and messages/s over it (the relay's
  rate: one signed request, one receiving transaction and one acknowledging transaction per message).
  The relay's back-off cap is 2 s here (TARIFA_FEDERATION_RETRY_MAX, 300 s by default): a real
  installation may wait up to its cap before the first retry after a link comes back.

Until foreign payments exist the messages are `ping`s (apply = the inbox row).
Environment: BENCH_FED_QUEUED (default "1000,10000"), BENCH_FED_LATENCY (default 50).
"""

import json
import os
import statistics
import subprocess
import time


def _q(node, sql, params=()):
    import psycopg

    with psycopg.connect(node.database_url) as conn:
        return conn.execute(sql, params).fetchall()


def _applied(node, sender, kind) -> int:
    row = _q(node, "SELECT next_expected FROM federation_inboundstream WHERE sender = %s AND kind = %s",
             [sender, kind])
    return row[0][0] - 1 if row else 0


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1].strip()
    except OSError:
        return ""


def main() -> dict:
    from bench.run import setup_django

    setup_django()
    from tarifa.federation.cluster import Cluster
    from tarifa.federation.faultproxy import FaultProxy
    from tarifa.federation.harness import Harness, http

    queued = [int(n) for n in os.environ.get("BENCH_FED_QUEUED", "1000,10000").split(",") if n.strip()]
    latency_n = int(os.environ.get("BENCH_FED_LATENCY", "50"))
    result = {"load_before": _uptime()}
    proxy = FaultProxy()
    proxy.start()
    cluster = Cluster(branches=2, proxy=proxy, demo=False)
    try:
        started = time.monotonic()
        cluster.setup()
        cluster.start()
        result["setup_s"] = round(time.monotonic() - started, 1)
        b1, b2 = cluster.nodes["B1"], cluster.nodes["B2"]
        harness = Harness.__new__(Harness)  # only its login and operation helpers
        harness.cluster, harness.tokens, harness.node_ids = cluster, {}, {}
        harness.foreign_payments, harness.accounts = False, {}
        harness.login(b1)

        # Latency: one message at a time (the next when the last was applied: no queue in the figure),
        # acceptance (B1's commit) → application at B2.
        for i in range(1, latency_n + 1):
            outcome, ids = harness.operation(b1, b2)
            assert outcome == "ok", outcome
            deadline = time.monotonic() + 120
            while _applied(b2, "B1", "test") < i and time.monotonic() < deadline:
                time.sleep(0.02)
        rows = _q(b2, "SELECT extract(epoch FROM applied_at - created_at) FROM federation_inboundmessage "
                      "WHERE sender = 'B1' AND kind = 'test' ORDER BY stream_seq")
        lat = sorted(float(r[0]) * 1000 for r in rows)
        result["latency_messages"] = len(lat)
        result["latency_p50_ms"] = round(statistics.median(lat), 1)
        result["latency_p95_ms"] = round(lat[int(0.95 * (len(lat) - 1))], 1)

        # Catch-up after a cut link.
        for n in queued:
            kind = f"catchup{n}"
            proxy.set("B1", "B2", "cut")
            b1.run("federation", "ping", "--to", "B2", "--count", str(n), "--kind", kind, timeout=1800)
            time.sleep(3)  # the relay tried and failed: the messages wait with a back-off
            load = _uptime()
            restored = time.monotonic()
            proxy.set("B1", "B2", "pass")
            deadline = restored + 3600
            while _applied(b2, "B1", kind) < n and time.monotonic() < deadline:
                time.sleep(0.1)
            seconds = time.monotonic() - restored
            done = _applied(b2, "B1", kind)
            result[f"catchup_{n}_s"] = round(seconds, 1)
            result[f"catchup_{n}_msgs_per_s"] = round(done / seconds, 1)
            result[f"catchup_{n}_load"] = load
            if done < n:
                result[f"catchup_{n}_incomplete"] = done
                break
        result["relay_msgs_per_s"] = max(v for k, v in result.items() if k.endswith("_msgs_per_s"))
        status, body = http("GET", b1.url + "/healthz")
        result["b1_healthy_after"] = status == 200
        result["load_after"] = _uptime()
        return result
    finally:
        cluster.stop()
        proxy.stop()


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
