"""Rate limits are shared by every server process (they are counted in PostgreSQL): two real
server processes on two ports, failures spread over both, a spoofed X-Forwarded-For that
changes nothing, and a lockout that reads the same whether or not the login exists."""

import json
import subprocess
import urllib.error
import urllib.request

from tarifa.testing.processes import TARIFA, Running, child_env, free_port, wait_healthy

LOGIN = "maria.garcia@example.com"
PASSWORD = "Maria-portal-2026"


def token(base, login, password, spoof=None):
    headers = {"Content-Type": "application/json"}
    if spoof:
        headers["X-Forwarded-For"] = spoof
    request = urllib.request.Request(base + "/api/portal/v1/auth/token/", method="POST", headers=headers,
                                     data=json.dumps({"login": login, "password": password}).encode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), dict(exc.headers)


def test_login_limits_hold_across_two_server_processes(fresh_database):
    port1, port2 = free_port(), free_port()
    env = child_env(fresh_database, port1)
    env["TARIFA_SERVER_WORKERS"] = "1"
    running = Running(env)
    second = None
    try:
        base1, base2 = f"http://127.0.0.1:{port1}", f"http://127.0.0.1:{port2}"
        wait_healthy(base1, running, timeout=240)
        second = subprocess.Popen([str(TARIFA), "serve", "--bind", f"127.0.0.1:{port2}", "--workers", "1"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_healthy(base2, running, timeout=120)

        # The right password works on either process.
        assert token(base2, LOGIN, PASSWORD)[0] == 200

        # 5 failures for the login, spread over both processes, each claiming another client
        # address in X-Forwarded-For (not believed: no trusted proxy is configured).
        for i in range(5):
            status, body, _ = token(base1 if i % 2 else base2, LOGIN, "wrong password", spoof=f"203.0.113.{i}")
            assert status == 401 and body["error"]["code"] == "invalid_login"
        # Now refused on both processes, even with the right password and a new "address".
        for base in (base1, base2):
            status, body, headers = token(base, LOGIN, PASSWORD, spoof="198.51.100.7")
            assert status == 429, body
            assert body["error"]["code"] == "too_many_attempts" and int(headers["Retry-After"]) > 0
        locked_existing = body["error"]["message"]

        # A login that does not exist: the same answers, the same lockout words.
        for i in range(5):
            status, body, _ = token(base1 if i % 2 else base2, "nobody@example.com", "wrong password")
            assert status == 401 and body["error"]["code"] == "invalid_login"
        status, body, _ = token(base2, "nobody@example.com", "wrong password")
        assert status == 429 and body["error"]["message"] == locked_existing

        # Per client address: 20 failures from this address over any logins lock the address,
        # whatever X-Forwarded-For says (11 so far: 5 + 1 + 5; the refused ones count too).
        for i in range(12):
            token(base1 if i % 2 else base2, f"guess{i}@example.com", "wrong password", spoof=f"192.0.2.{i}")
        status, body, _ = token(base1, "another@example.com", "wrong password", spoof="192.0.2.200")
        assert status == 429 and body["error"]["message"] == locked_existing
    finally:
        if second is not None:
            second.terminate()
            second.wait(30)
        running.stop()


def test_attempts_older_than_thirty_days_are_purged_by_the_nightly_job(db):
    import datetime as dt

    from tarifa.kernel.clock import travel_to
    from tarifa.portal import tasks, throttle
    from tarifa.portal.models import Attempt

    start = dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone.utc)
    with travel_to(start) as clock:
        throttle.note(Attempt.Kind.LOGIN, "old@example.com", "192.0.2.1", succeeded=False)
        clock.add_days(29)
        throttle.note(Attempt.Kind.LOGIN, "recent@example.com", "192.0.2.1", succeeded=False)
        clock.add_days(2)
        assert tasks.purge_attempts(0) == 1
    assert list(Attempt.objects.values_list("key", flat=True)) == ["recent@example.com"]
