"""End to end: `tarifa run` (what `make run` starts) as a real process on a fresh database.

It bootstraps the database, serves HTTP on $PORT with gunicorn, runs a job worker and the RADIUS
server (answering the demo's subscribers), and on SIGINT stops its children and exits. A second
start reuses the data.
"""

import os
import signal
import subprocess
import time
import uuid

import psycopg

# fresh_database is a fixture of tarifa.testing.processes (a pytest plugin, see conftest.py).
from tarifa.testing.processes import (
    ADMIN_PASSWORD,
    Running,
    alive,
    child_env,
    free_port,
    obtain_token,
    wait_healthy,
)

BOOTSTRAP_TIMEOUT = 240  # seconds; about 10 on an idle 2-core machine


def job_status(database_url, job_id):
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status FROM procrastinate_jobs WHERE id = %s", [job_id]).fetchone()
    return row[0] if row else None


def defer_job(database_url) -> int:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=database_url))
    with app.open():
        return app.configure_task("kernel.dispatch_event", queue="events").defer(event_id=str(uuid.uuid4()))


def count_users(database_url, username=None) -> int:
    with psycopg.connect(database_url) as conn:
        if username:
            return conn.execute("SELECT count(*) FROM identity_user WHERE username = %s", [username]).fetchone()[0]
        return conn.execute("SELECT count(*) FROM identity_user").fetchone()[0]


def test_run_serves_bootstraps_runs_jobs_and_stops_on_ctrl_c(fresh_database):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = child_env(fresh_database, port)

    running = Running(env)
    try:
        # Migrating a new database takes most of the start-up; the server then has 90 s to answer.
        running.wait_for("aaa: pid", BOOTSTRAP_TIMEOUT)
        assert wait_healthy(base, running) == {"status": "ok", "database": "ok"}
        running.wait_for("Press Ctrl-C to stop.", 30)
        assert f"Tarifa is running at {base}/" in running.output
        assert "Log in as 'admin' with the password from TARIFA_ADMIN_PASSWORD" in running.output
        assert ADMIN_PASSWORD not in running.output
        pids = running.child_pids()
        assert set(pids) == {"serve", "worker", "diameter", "aaa"} and all(alive(p) for p in pids.values())

        # The RADIUS server answers the demo's subscriber (README's demo credentials) through the
        # demo NAS (127.0.0.1, secret testing123), with radclient as the NAS.
        auth_port = env["TARIFA_AAA_AUTH_PORT"]
        assert f"RADIUS: 127.0.0.1 port {auth_port} (authentication)" in running.output
        radclient = subprocess.run(["radclient", "-x", "-r", "3", "-t", "5", f"127.0.0.1:{auth_port}", "auth",
                                    "testing123"], capture_output=True, text=True, timeout=60,
                                   input="User-Name = demo1, User-Password = demo1-pass, Message-Authenticator = 0x00")
        assert "Received Access-Accept" in radclient.stdout, radclient.stdout + radclient.stderr

        status, body = obtain_token(base, "admin", ADMIN_PASSWORD)
        assert status == 201, body
        assert body["token"].startswith("tfa_")
        assert obtain_token(base, "admin", "wrong-password-0")[0] == 401

        job_id = defer_job(fresh_database)  # the worker child picks it up from the same database
        deadline = time.monotonic() + 20
        while job_status(fresh_database, job_id) != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert job_status(fresh_database, job_id) == "succeeded", running.output

        assert running.stop(signal.SIGINT) == 0, running.output
        users_after_first_run = count_users(fresh_database)
        for name, pid in pids.items():
            assert not alive(pid), f"{name} (pid {pid}) still runs after `tarifa run` stopped"
        assert "Stopped." in running.output
    finally:
        running.kill()

    # Started again on the same database: the data is reused, no second admin.
    running = Running(env)
    try:
        wait_healthy(base, running)
        running.wait_for("Press Ctrl-C to stop.", 30)
        assert "Existing database reused" in running.output
        assert obtain_token(base, "admin", ADMIN_PASSWORD)[0] == 201
        assert running.stop(signal.SIGTERM) == 0, running.output
    finally:
        running.kill()
    assert count_users(fresh_database) == users_after_first_run  # no second admin, no second demo
    assert count_users(fresh_database, "admin") == 1


def test_run_stops_when_a_child_dies(fresh_database):
    port = free_port()
    running = Running(child_env(fresh_database, port))
    try:
        running.wait_for("aaa: pid", BOOTSTRAP_TIMEOUT)
        pids = running.child_pids()
        os.kill(pids["worker"], signal.SIGKILL)
        code = running.process.wait(30)
        assert code != 0
        assert "worker exited" in "\n".join(running.lines)
        assert not alive(pids["serve"]) and not alive(pids["aaa"])
    finally:
        running.kill()
