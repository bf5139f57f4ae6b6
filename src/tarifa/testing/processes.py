"""Tarifa as real processes for end-to-end tests: a fresh database on the server the tests
use, `tarifa run` (web server and worker) in the background, its health and an API token.
Used by tests/test_run_command.py and tests/test_api_fuzz.py."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil
import psycopg
import pytest
from django.core.management import call_command
from django.db import connections

from tarifa.kernel.dburl import url_for

ADMIN_PASSWORD = "Run-e2e-pass-word-31"
TARIFA = Path(sys.executable).with_name("tarifa")


def server_url(dbname: str) -> str:
    """A URL for database `dbname` on the PostgreSQL server the tests use."""
    return url_for(connections["default"].settings_dict, dbname)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_port() -> int:
    """A UDP port free now (the RADIUS server's, in tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fresh_database():
    name = f"tarifa_run_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url(name)
    finally:
        with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Running:
    """`tarifa run` in the background, its output collected line by line."""

    def __init__(self, env, args=()):
        self.lines: list[str] = []
        self.process = subprocess.Popen([str(TARIFA), "run", *args], env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def child_pids(self) -> dict:
        return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(serve|worker|diameter|aaa): pid (\d+)$", self.output, re.MULTILINE)}

    def wait_for(self, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return
            assert self.process.poll() is None, f"`tarifa run` exited early:\n{self.output}"
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not seen within {timeout} s:\n{self.output}")

    def stop(self, sig=signal.SIGINT, timeout=30) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self.reader.join(5)
        return code

    def kill(self):
        if self.process.poll() is None:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                child.kill()
            self.process.kill()
            self.process.wait()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def wait_healthy(base, running, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert running.process.poll() is None, f"`tarifa run` exited early:\n{running.output}"
        try:
            status, body = get(base + "/healthz")
            if status == 200:
                return json.loads(body)
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise AssertionError(f"/healthz did not answer 200 within {timeout} s:\n{running.output}")


def obtain_token(base, username, password):
    request = urllib.request.Request(base + "/api/v1/auth/token/", method="POST",
                                     data=json.dumps({"username": username, "password": password}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def child_env(database_url, port):
    """The environment of a person's shell: none of pytest's variables (they would switch the
    settings to test mode), this test's database and port, and free RADIUS ports (tests run
    `tarifa run` side by side: none may take 1812/1813)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "TEST_DATABASE", "TARIFA_TEST_", "DJANGO_ALLOW_ASYNC"))}
    env.update(DATABASE_URL=database_url, PORT=str(port), TARIFA_ADMIN_PASSWORD=ADMIN_PASSWORD,
               TARIFA_SERVER_WORKERS="2", PYTHONUNBUFFERED="1", TARIFA_DIAMETER_PORT=str(free_port()),
               TARIFA_AAA_AUTH_PORT=str(free_udp_port()), TARIFA_AAA_ACCT_PORT=str(free_udp_port()))
    return env


def run_worker_in_thread(*argv, timeout=60):
    """`tarifa worker ARGV` in-process, on its own thread (its own event loop: the test thread
    may already hold Playwright's), until the queue is empty."""
    errors = []
    # Tasks run on the worker's thread pool; with persistent connections (CONN_MAX_AGE) those
    # threads would keep the test database open and delay dropping it by PostgreSQL's 5 s.
    db_settings = connections.settings["default"]
    max_age = db_settings.get("CONN_MAX_AGE")
    db_settings["CONN_MAX_AGE"] = 0

    def target():
        try:
            call_command("worker", *argv)
        except BaseException as exc:  # noqa: BLE001 — re-raised in the test thread
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=target, name="test-worker")
    thread.start()
    thread.join(timeout)
    db_settings["CONN_MAX_AGE"] = max_age
    assert not thread.is_alive(), f"the worker did not finish within {timeout} s"
    if errors:
        raise errors[0]
