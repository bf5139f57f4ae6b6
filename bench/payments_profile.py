"""Where one payment request's time goes: `POST /api/v1/payments/` in-process, one at a time.

In a fresh database (200 accounts, an API user with a token, as `bench/payments.py`), N
requests (BENCH_PROFILE_N, default 400, after 50 warm-up ones) go through Django's WSGI
handler (the whole middleware stack, DRF, the services; no HTTP socket, one thread, no
concurrency). Measured:
- wall time per request, and the part of it spent waiting on PostgreSQL: every statement
  is timed by a `connection.execute_wrapper` (the round trip: send, server work, answer),
  and the psycopg pipeline's final sync is timed by the same wrapper around COMMIT;
- the statement count per request and the time inside the clearing-row lock window (from
  the lock statement to the end of COMMIT);
- a cProfile of the requests, grouped by layer (gunicorn is not in this path: see the
  py-spy profile in BENCHMARKS.md for the server's share).

Not a throughput benchmark (`bench/payments.py` is): this is the single-request profile
issue 18 asks for. Knobs: BENCH_PROFILE_N, BENCH_PROFILE_TOP (rows of the cProfile table).
"""

import collections
import cProfile
import io
import json
import os
import pstats
import random
import time
import uuid


def env_int(name, default):
    return int(os.environ.get(name) or default)


# (layer, substrings of the file path) — first match wins; the rest is "other".
LAYERS = [
    ("psycopg (client side of round trips)", ("/psycopg/",)),
    ("Django ORM (query compilation, model instances)", ("/django/db/",)),
    ("DRF (request, parsing, serializers, rendering)", ("/rest_framework/",)),
    ("Django request/response, middleware, URL resolution", ("/django/core/handlers", "/django/middleware",
                                                             "/django/contrib/sessions", "/django/contrib/auth",
                                                             "/django/contrib/messages", "/django/urls",
                                                             "/django/http", "/django/utils", "/whitenoise/",
                                                             "/django_htmx/", "/django/views", "/django/conf")),
    ("Tarifa web (auth, permissions, idempotency, middleware)", ("/tarifa/web/",)),
    ("Tarifa payments (serializers, service)", ("/tarifa/payments/",)),
    ("Tarifa ledger, kernel, audit", ("/tarifa/ledger/", "/tarifa/kernel/", "/tarifa/audit/")),
    ("Tarifa identity", ("/tarifa/identity/",)),
    ("json, decimal, uuid, stdlib", ("/json/", "/decimal", "/uuid", "/lib/python3")),
]


def layer_of(filename: str, func: str = "") -> str:
    if "/psycopg/" in filename and func in ("wait", "_communicate_gen", "wait_c") or func == "<built-in method psycopg_c._psycopg.wait_c>":
        return "waiting for PostgreSQL (psycopg's wait: statement, row lock, COMMIT)"
    for name, parts in LAYERS:
        if any(p in filename for p in parts):
            return name
    return "other"


def main() -> dict:
    from bench.run import database, setup_django

    setup_django()
    n = env_int("BENCH_PROFILE_N", 400)
    warm = env_int("BENCH_PROFILE_WARMUP", 50)
    top = env_int("BENCH_PROFILE_TOP", 25)
    channel = os.environ.get("BENCH_CHANNEL", "card")
    with database():
        from django.db import connection
        from django.test import Client

        from tarifa.crm import services as crm
        from tarifa.identity import services as identity
        from tarifa.ledger import services as ledger
        from tarifa.ledger.selectors import check_ledger

        accounts = []
        for i in range(200):
            customer = crm.create_customer(actor="bench", kind="individual", first_name="Bench", last_name=f"P{i}")
            accounts.append(str(ledger.open_account(actor="bench", customer=customer, currency="USD").pk))
        role = identity.create_role(actor="bench", name="bench", permissions=identity.permissions_by_name(
            ["payments.add_payment", "payments.view_payment"]))
        user = identity.create_user(actor="bench", username="bench-client", roles=[role])
        token = identity.issue_token(actor=user, user=user, name="bench")[1]
        client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")
        rng = random.Random(7)

        state = {"db": 0.0, "statements": 0, "lock_at": None, "locked": 0.0, "commit": 0.0, "trace": None}

        def timer(execute, sql, params, many, context):
            t0 = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                t1 = time.perf_counter()
                state["db"] += t1 - t0
                state["statements"] += 1
                if state["trace"] is not None:
                    state["trace"].append((t0, t1, " ".join(sql.split())[:90]))
                if "FOR UPDATE OF la" in sql and state["lock_at"] is None:
                    state["lock_at"] = t0

        def post():
            body = json.dumps({"account": rng.choice(accounts), "amount": f"{rng.randint(1, 9999) / 100:.2f}",
                               "channel": channel})
            return client.post("/api/v1/payments/", data=body, content_type="application/json",
                               HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)

        # COMMIT is not an execute(): time it (and the pipeline's sync) at the connection.
        raw_commit = connection._commit

        def timed_commit():
            t0 = time.perf_counter()
            try:
                return raw_commit()
            finally:
                t1 = time.perf_counter()
                state["db"] += t1 - t0
                state["commit"] += t1 - t0
                state["statements"] += 1
                if state["trace"] is not None:
                    state["trace"].append((t0, t1, "COMMIT"))
                if state["lock_at"] is not None:
                    state["locked"] += t1 - state["lock_at"]
                    state["lock_at"] = None

        connection._commit = timed_commit
        with connection.execute_wrapper(timer):
            for _ in range(warm):
                assert post().status_code == 201
            for k in ("db", "statements", "locked", "commit"):
                state[k] = 0 if k == "statements" else 0.0
            walls = []
            profile = cProfile.Profile()
            for _ in range(n):
                t0 = time.perf_counter()
                profile.enable()
                response = post()
                profile.disable()
                walls.append(time.perf_counter() - t0)
                assert response.status_code == 201, response.content
            # The same requests without the profiler: its overhead must not be taken for Tarifa's cost.
            db_before, st_before = state["db"], state["statements"]
            locked_before, commit_before = state["locked"], state["commit"]
            plain = []
            for _ in range(n):
                t0 = time.perf_counter()
                assert post().status_code == 201
                plain.append(time.perf_counter() - t0)
            plain_db = state["db"] - db_before
            # One request's statements, in order, with when each started and how long it took.
            state["trace"] = []
            t_start = time.perf_counter()
            assert post().status_code == 201
            t_end = time.perf_counter()
            trace, state["trace"] = state["trace"], None
        connection._commit = raw_commit
        print(f"one request, {len(trace)} statements, {1000 * (t_end - t_start):.2f} ms:")
        for t0, t1, sql in trace:
            print(f"  +{1000 * (t0 - t_start):7.2f} ms  {1000 * (t1 - t0):6.2f} ms  {sql}")

        stats = pstats.Stats(profile)
        by_layer = collections.Counter()
        total_tt = 0.0
        for (filename, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
            by_layer[layer_of(filename, func)] += tt
            total_tt += tt
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(top)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(top)
        print(out.getvalue())
        wall_plain_ms = sum(plain) / n * 1000
        db_plain_ms = plain_db / n * 1000
        figures = {
            "requests": n,
            "wall_ms_per_request": round(wall_plain_ms, 2),
            "db_round_trips_ms_per_request": round(db_plain_ms, 2),
            "python_ms_per_request": round(wall_plain_ms - db_plain_ms, 2),
            "statements_per_request": round((state["statements"] - st_before) / n, 1),
            "lock_window_ms_per_request": round((state["locked"] - locked_before) / n * 1000, 2),
            "commit_ms_per_request": round((state["commit"] - commit_before) / n * 1000, 2),
            "profiled_wall_ms_per_request": round(sum(walls) / n * 1000, 2),
            "share_by_layer_pct (profiled own time; waits included)": {
                k: round(v / total_tt * 100, 1) for k, v in by_layer.most_common()},
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
        report = check_ledger()
        figures["ledger_ok"] = report["ok"]
        if not report["ok"]:
            raise AssertionError(f"ledger check failed: {report['problems'][:5]}")
        return figures


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
