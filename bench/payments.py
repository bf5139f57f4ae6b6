"""Payments through the HTTP API against the production server, next to the PostgreSQL ceiling.

In a fresh database: BENCH_ACCOUNTS billing accounts (default 200) and an API user with a
token. Then `tarifa serve` (gunicorn, the production configuration) on a free loopback port,
and BENCH_CLIENTS concurrent clients (default 32: BENCH_PROCESSES processes × threads, each
a keep-alive HTTP/1.1 connection) posting `POST /api/v1/payments/` with a fresh
`Idempotency-Key` each, to random accounts, for BENCH_SECONDS (default 20) after a warm-up.

Reported: payments/s, p50/p99/max latency, errors; then the same work as one SQL
transaction per payment (`bench/payments_pgbench.sql`: the statements the API issues for a
payment, in the same order — idempotency claim, lookups, the account lock, the transfer and
balance update, the ledger's and our domain events and job, the payment number, the
payment, the audit event, the stored answer) run by pgbench with the same number of
clients for the same time: the PostgreSQL ceiling for this transaction on this machine.
Then stock pgbench TPC-B (scale 10, same clients and duration, in a database of its own):
issue 18 asks for payments/s ≥ 0.5 × that figure (`ratio_to_tpcb`).
Finally the ledger check must hold (every HTTP and pgbench payment balanced).

Knobs: BENCH_WORKERS / BENCH_THREADS (gunicorn; default: `tarifa serve`'s defaults),
BENCH_CLIENTS, BENCH_PROCESSES, BENCH_SECONDS, BENCH_ACCOUNTS, BENCH_CHANNEL (default
"card"; BENCH_TPCB=0 skips TPC-B, BENCH_WHATIF=0 the no-hot-rows pgbench, BENCH_FUNCTION=0 the
one-call booking in pgbench (bench/payments_function.sql, issue 18 step 3); every payment of a channel debits that channel's one system account row, the hot
row that serialises payments).
"""

import http.client
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
PGBENCH_SCRIPT = HERE / "payments_pgbench.sql"
PGBENCH_FUNCTION = HERE / "payments_function.sql"


def env_int(name, default):
    return int(os.environ.get(name) or default)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    index = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[index]


# --- the HTTP clients (run in their own processes: the GIL must not be the bottleneck) -----------

def client_thread(port, token, accounts, channel, start_at, stop_at, warm_until, out):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    rng = random.Random()
    latencies, errors, statuses = [], 0, {}
    while time.time() < start_at:
        time.sleep(0.001)
    while True:
        now = time.time()
        if now >= stop_at:
            break
        body = json.dumps({"account": rng.choice(accounts), "amount": f"{rng.randint(1, 9999) / 100:.2f}",
                           "channel": channel})
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}",
                   "Idempotency-Key": uuid.uuid4().hex}
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/payments/", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            status = 0
        elapsed = time.perf_counter() - t0
        if now < warm_until:
            continue
        statuses[status] = statuses.get(status, 0) + 1
        if status == 201:
            latencies.append(elapsed)
        else:
            errors += 1
    conn.close()
    out.append((latencies, errors, statuses))


def client_process(port, token, accounts, channel, threads, start_at, stop_at, warm_until, queue):
    out = []
    workers = [threading.Thread(target=client_thread,
                                args=(port, token, accounts, channel, start_at, stop_at, warm_until, out))
               for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    latencies = [x for lat, _e, _s in out for x in lat]
    errors = sum(e for _l, e, _s in out)
    statuses = {}
    for _l, _e, s in out:
        for k, v in s.items():
            statuses[k] = statuses.get(k, 0) + v
    queue.put((latencies, errors, statuses))


def run_clients(port, token, accounts, channel, *, clients, processes, seconds, warmup):
    start_at = time.time() + 1.0
    warm_until = start_at + warmup
    stop_at = warm_until + seconds
    queue = multiprocessing.get_context("fork").Queue()
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    procs = [multiprocessing.get_context("fork").Process(
        target=client_process, args=(port, token, accounts, channel, n, start_at, stop_at, warm_until, queue))
        for n in per if n]
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + warmup + 120) for _ in procs]
    for p in procs:
        p.join()
    latencies = [x for lat, _e, _s in results for x in lat]
    statuses = {}
    for _l, _e, s in results:
        for k, v in s.items():
            statuses[k] = statuses.get(k, 0) + v
    return latencies, sum(e for _l, e, _s in results), statuses


# --- the server -----------------------------------------------------------------------------------

def database_url(name: str) -> str:
    """DATABASE_URL (the server `make run` uses; settings set it for the embedded one) with
    the benchmark's database name."""
    parts = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def pg_connection_args(url: str) -> list[str]:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    args = ["-h", query.get("host") or parts.hostname or "127.0.0.1", "-U", parts.username or "postgres"]
    port = query.get("port") or parts.port
    return args + (["-p", str(port)] if port else [])


def start_server(url, port, workers, threads):
    tarifa = Path(sys.executable).with_name("tarifa")
    command = [str(tarifa), "serve", "--bind", f"127.0.0.1:{port}"]
    if workers:
        command += ["--workers", str(workers)]
    if threads:
        command += ["--threads", str(threads)]
    env = {**os.environ, "DATABASE_URL": url, "TARIFA_SERVER_LOG_LEVEL": "warning"}
    env.pop("PYTEST_VERSION", None)
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    deadline = time.time() + 120
    last = None
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"tarifa serve exited: {server.stderr.read().decode()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            last = (response.status, response.read()[:200])
            conn.close()
            if response.status == 200:
                return server
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.3)
    stop_server(server)
    raise RuntimeError(f"tarifa serve did not answer /healthz within 120 s (last: {last}); "
                       f"{server.stderr.read().decode()[-1500:]}")


def start_py_spy(server, *, seconds, warmup):
    """BENCH_PYSPY=<file>: sample the server's processes (gunicorn master and workers) with
    py-spy during the measured seconds, as collapsed stacks (`bench._pyspy_layers.py` sums them
    by layer). py-spy is in the `test` extras; it needs ptrace (root, or CAP_SYS_PTRACE)."""
    target = os.environ.get("BENCH_PYSPY")
    if not target:
        return None
    py_spy = Path(sys.executable).with_name("py-spy")
    command = [str(py_spy), "record", "--pid", str(server.pid), "--subprocesses", "--format", "raw",
               "--rate", "200", "--duration", str(seconds), "--output", target, "--nonblocking"]
    if os.environ.get("BENCH_PYSPY_IDLE") == "1":
        command.append("--idle")  # wall time: threads waiting (socket, lock, database) count too
    # Starts when the warm-up ends (the clients start 1 s after this call).
    return subprocess.Popen(["sh", "-c", f"sleep {warmup + 1}; exec \"$@\"", "sh", *command],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_server(server):
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(server.pid, signal.SIGKILL)


# --- pgbench: the same transaction, in PostgreSQL alone ------------------------------------------------

def pgbench_binary() -> str | None:
    try:
        import pgserver

        candidate = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    return shutil.which("pgbench")


def without_hot_rows(script: str) -> str:
    """The same transaction with the two rows every payment locks replaced: the channel's system
    account spread over 16 rows (bench_sysaccounts) and the number from a SEQUENCE (not gap-free).
    What PostgreSQL could do if the ledger and numbering did not serialise payments."""
    pick = "BEGIN;\n\\set shard random(1, 16)\nSELECT id AS sysacc FROM bench_sysaccounts WHERE n = :shard \\gset"
    script = script.replace("BEGIN;", pick, 1)
    lines = [("SELECT nextval('bench_payment_seq') AS seq \\gset" if line.startswith("UPDATE kernel_numbersequence")
              else line) for line in script.splitlines()]
    return "\n".join(lines) + "\n"


def run_tpcb(url, name, *, clients, seconds, scale=10):
    """Stock pgbench TPC-B (`pgbench -i -s scale`, then the built-in script) in its own database
    beside the benchmark's, same clients and duration: the machine's reference figure (issue 18
    asks for payments/s ≥ 0.5 × this)."""
    binary = pgbench_binary()
    if binary is None:
        return {"tpcb": "pgbench not found"}
    import psycopg

    parts = urllib.parse.urlsplit(url)
    admin = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    tpcb = f"{name}_tpcb"
    env = {**os.environ, "PGPASSWORD": parts.password or ""}
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{tpcb}"')
        conn.execute(f'CREATE DATABASE "{tpcb}"')
    try:
        subprocess.run([binary, "-i", "-q", "-s", str(scale), *pg_connection_args(url), tpcb], env=env,
                       capture_output=True, text=True, check=True, timeout=600)
        done = subprocess.run([binary, "-n", "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds),
                               *pg_connection_args(url), tpcb], env=env, capture_output=True, text=True,
                              timeout=seconds + 120)
        if done.returncode != 0:
            raise RuntimeError(f"pgbench TPC-B failed: {done.stderr[-2000:]}")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{tpcb}" WITH (FORCE)')
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", done.stdout)
    return {"tpcb_tps": round(float(tps.group(1)), 1) if tps else None,
            "tpcb_latency_avg_ms": float(latency.group(1)) if latency else None,
            "tpcb_scale": scale}


def run_pgbench(url, name, *, clients, seconds, accounts, nspread, user_id, script=None):
    binary = pgbench_binary()
    if binary is None:
        return {"pgbench": "not found"}
    logs = Path(tempfile.mkdtemp(prefix="pgbench-"))
    script_path = PGBENCH_SCRIPT
    if script is not None:
        script_path = logs / "script.sql"
        script_path.write_text(script)
    env = {**os.environ, "PGPASSWORD": urllib.parse.urlsplit(url).password or ""}
    command = [binary, "-n", "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds), "-M", "simple",
               "-f", str(script_path), "-D", f"naccounts={accounts}",
               "-D", f"userid={user_id}", "-D", f"nspread={nspread}", "-l", "--log-prefix", str(logs / "tx"), *pg_connection_args(url), name]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed: {done.stderr[-2000:]}")
    latencies = []
    for path in logs.glob("tx*"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                latencies.append(int(parts[2]) / 1e6)
    shutil.rmtree(logs, ignore_errors=True)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    return {"pgbench_tps": round(float(tps.group(1)), 1) if tps else None,
            "pgbench_p50_ms": round(percentile(latencies, 50) * 1000, 2) if latencies else None,
            "pgbench_p99_ms": round(percentile(latencies, 99) * 1000, 2) if latencies else None,
            "pgbench_transactions": len(latencies),
            "pgbench_failed": int(failed.group(1)) if failed else 0}


# --- the benchmark ------------------------------------------------------------------------------

def main() -> dict:
    from bench.run import database, setup_django

    setup_django()
    accounts_n = env_int("BENCH_ACCOUNTS", 200)
    clients = env_int("BENCH_CLIENTS", 32)
    processes = env_int("BENCH_PROCESSES", 2)
    seconds = env_int("BENCH_SECONDS", 20)
    warmup = env_int("BENCH_WARMUP", 3)
    workers = env_int("BENCH_WORKERS", 0)
    threads = env_int("BENCH_THREADS", 0)
    channel = os.environ.get("BENCH_CHANNEL", "card")
    with database():
        from django.db import connection

        from tarifa.crm import services as crm
        from tarifa.identity import services as identity
        from tarifa.ledger import services as ledger
        from tarifa.ledger.selectors import check_ledger
        from tarifa.payments.models import Payment
        from tarifa.payments.services.payments import DEFAULT_ACCOUNT

        t0 = time.perf_counter()
        accounts = []
        for i in range(accounts_n):
            customer = crm.create_customer(actor="bench", kind="individual", first_name="Bench", last_name=f"P{i}")
            accounts.append(ledger.open_account(actor="bench", customer=customer, currency="USD"))
        role = identity.create_role(actor="bench", name="bench", permissions=identity.permissions_by_name(
            ["payments.add_payment", "payments.view_payment"]))
        user = identity.create_user(actor="bench", username="bench-client", roles=[role])
        token = identity.issue_token(actor=user, user=user, name="bench")[1]
        # The payment number counter exists before the first payment (pgbench's script updates it
        # even when the HTTP phase booked nothing).
        from tarifa.kernel.models import NumberSequence, local_branch_code

        NumberSequence.objects.get_or_create(branch=local_branch_code(), series="P")
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE bench_accounts (n int PRIMARY KEY, billing_account_id uuid, "
                           "ledger_account_id uuid, number text)")
            cursor.executemany("INSERT INTO bench_accounts VALUES (%s, %s, %s, %s)",
                               [(i + 1, a.pk, a.ledger_account_id, a.number) for i, a in enumerate(accounts)])
            # The rows the channel's account is spread over, as the service picks them by key.
            spread = {ledger.spread_account(DEFAULT_ACCOUNT[channel], "USD", key=f"k{i}").pk for i in range(200)}
            cursor.execute("CREATE TABLE bench_spread (n int PRIMARY KEY, id uuid)")
            cursor.executemany("INSERT INTO bench_spread VALUES (%s, %s)", [(i + 1, a) for i, a in enumerate(spread)])
            shards = [ledger.system_account(f"clearing:bench-{i}", "USD") for i in range(1, 17)]
            cursor.execute("CREATE TABLE bench_sysaccounts (n int PRIMARY KEY, id uuid)")
            cursor.executemany("INSERT INTO bench_sysaccounts VALUES (%s, %s)",
                               [(i + 1, a.pk) for i, a in enumerate(shards)])
            cursor.execute("CREATE SEQUENCE bench_payment_seq START 9000000")
            cursor.execute("VACUUM ANALYZE")
        setup_s = time.perf_counter() - t0
        name = connection.settings_dict["NAME"]
        url = database_url(name)
        connection.close()

        port = free_port()
        server = start_server(url, port, workers, threads)
        spy = start_py_spy(server, seconds=seconds, warmup=warmup)
        try:
            latencies, errors, statuses = run_clients(port, token, [str(a.pk) for a in accounts], channel,
                                                      clients=clients, processes=processes, seconds=seconds,
                                                      warmup=warmup)
        finally:
            if spy is not None:
                spy.wait(timeout=seconds + warmup + 60)
            stop_server(server)
        http_payments = Payment.objects.count()
        figures = {
            "payments_per_s": round(len(latencies) / seconds, 1),
            "p50_ms": round(percentile(latencies, 50) * 1000, 2) if latencies else None,
            "p99_ms": round(percentile(latencies, 99) * 1000, 2) if latencies else None,
            "max_ms": round(max(latencies) * 1000, 2) if latencies else None,
            "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
            "payments_measured": len(latencies), "errors": errors,
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "clients": clients, "seconds": seconds, "accounts": accounts_n, "channel": channel,
            "server": f"gunicorn workers={workers or 'default'} threads={threads or 'default'}",
            "setup_s": round(setup_s, 1),
            "load_avg_1m_after_http": round(os.getloadavg()[0], 2),
        }
        connection.close()
        try:
            figures.update(run_pgbench(url, name, clients=clients, seconds=seconds, accounts=accounts_n,
                                       nspread=len(spread), user_id=user.pk))
        except RuntimeError as exc:  # e.g. the server's connections exhausted: keep the HTTP figures
            figures["pgbench_error"] = str(exc)[:500]
        figures["load_avg_1m_after_pgbench"] = round(os.getloadavg()[0], 2)
        if os.environ.get("BENCH_WHATIF", "1") == "1":
            whatif = run_pgbench(url, name, clients=clients, seconds=seconds, accounts=accounts_n,
                                 nspread=len(spread), user_id=user.pk,
                                 script=without_hot_rows(PGBENCH_SCRIPT.read_text()))
            figures.update({f"{k.replace('pgbench_', 'pgbench_no_hot_rows_')}": v for k, v in whatif.items()})
        if os.environ.get("BENCH_FUNCTION", "1") == "1":
            # Step 3 of issue 18 measured in PostgreSQL alone: the same booking as one server-side call.
            try:
                with connection.cursor() as cursor:
                    cursor.execute(PGBENCH_FUNCTION.read_text())
                connection.close()
                booked = run_pgbench(url, name, clients=clients, seconds=seconds, accounts=accounts_n,
                                     nspread=len(spread), user_id=user.pk,
                                     script=(HERE / "payments_function_pgbench.sql").read_text())
                figures.update({k.replace("pgbench_", "pgbench_function_"): v for k, v in booked.items()})
            except Exception as exc:  # the HTTP figures above stand; say why this one is missing
                figures["pgbench_function_error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
        if figures.get("pgbench_tps"):
            figures["ratio_to_ceiling"] = round(figures["payments_per_s"] / figures["pgbench_tps"], 2)
        if os.environ.get("BENCH_TPCB", "1") == "1":
            try:
                figures.update(run_tpcb(url, name, clients=clients, seconds=seconds))
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                figures["tpcb_error"] = str(exc)[:500]
            figures["load_avg_1m_after_tpcb"] = round(os.getloadavg()[0], 2)
            if figures.get("tpcb_tps"):
                # issue 18's target: payments/s ≥ 0.5 × stock TPC-B (scale 10, same clients) in the same run
                figures["ratio_to_tpcb"] = round(figures["payments_per_s"] / figures["tpcb_tps"], 3)
        report = check_ledger()
        figures["ledger_ok"] = report["ok"]
        figures["transfers_total"] = report["transfers"]
        figures["http_payments_in_db"] = http_payments
        if not report["ok"]:
            raise AssertionError(f"ledger check failed after the benchmark: {report['problems'][:5]}")
        return figures


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
