"""The federation on one machine as real processes: `tarifa federation demo` (Ctrl-C and SIGTERM stop every
process it started, and drop its databases), the fault proxy's modes, and the fault harness
(`tarifa federation test`: a centre and 3 branches, every scenario, its JSON verdict).

The harness takes minutes: marked `once`, it runs on CI's first pass only (FUZZ=0 leaves it out)."""

import json
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import psutil
import psycopg
import pytest

from tarifa.federation.faultproxy import FaultProxy
from tarifa.testing.processes import TARIFA, child_env, free_port, server_url

START_TIMEOUT = 900
HARNESS_TIMEOUT = 900


def _demo(tmp_path, sig):
    base = free_port()
    env = child_env(server_url("postgres"), base)
    process = subprocess.Popen([str(TARIFA), "federation", "demo", "--branches", "2", "--base-port", str(base),
                                "--no-demo", "--password", "Demo-pass-word-77"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "Press Ctrl-C to stop all of it." not in lines:
            assert process.poll() is None, "\n".join(lines)
            assert time.monotonic() < deadline, "\n".join(lines)
            time.sleep(0.2)
        text = "\n".join(lines)
        # Every node answers on its port with its own code; the branches know each other.
        for i, code in enumerate(["CTR", "B1", "B2"]):
            assert f"http://127.0.0.1:{base + i}/" in text and "admin / Demo-pass-word-77" in text
            with urllib.request.urlopen(f"http://127.0.0.1:{base + i}/federation/v1/node", timeout=10) as r:
                assert json.loads(r.read())["code"] == code
        databases = [line.split("(database ")[1].rstrip(")") for line in lines if "(database " in line]
        assert len(databases) == 3
        with psycopg.connect(server_url(databases[1])) as conn:
            peers = conn.execute("SELECT code FROM federation_node ORDER BY code").fetchall()
            assert peers == [("B2",), ("CTR",)]
            assert conn.execute("SELECT code FROM branches_branch WHERE is_local").fetchall() == [("B1",)]
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 6  # a web server (and its worker) and a job worker per node
        process.send_signal(sig)
        assert process.wait(300) == 0, "\n".join(lines)
        reader.join(5)
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], f"left running: {alive}"
        assert "Stopped." in lines
        with psycopg.connect(server_url("postgres")) as conn:
            left = conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", [databases]).fetchall()
        assert left == []
    finally:
        if process.poll() is None:
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()


@pytest.mark.once  # minutes of process management, not of the database server: CI's first pass only
def test_the_demo_brings_up_a_centre_and_branches_and_ctrl_c_stops_every_process(tmp_path):
    _demo(tmp_path, signal.SIGINT)


@pytest.mark.once
def test_sigterm_stops_the_demo_too(tmp_path):
    _demo(tmp_path, signal.SIGTERM)


class Echo:
    """A tiny HTTP server on loopback counting the requests it answers."""

    def __init__(self):
        self.count = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                self.count += 1
                body = json.dumps({"status": "applied", "n": self.count}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


def _post(url, timeout=5):
    request = urllib.request.Request(url, data=b"{}", method="POST", headers={"Connection": "close"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=timeout) as response:
        return json.loads(response.read())


def test_the_fault_proxy_passes_duplicates_cuts_resets_blackholes_and_drops_answers():
    echo = Echo()
    proxy = FaultProxy()
    proxy.start()
    try:
        proxy.set_targets({"A": ("127.0.0.1", 1), "B": ("127.0.0.1", echo.port)})
        url = proxy.url("A", "B")
        assert _post(url)["n"] == 1
        proxy.set("A", "B", "duplicate")
        assert _post(url)["n"] == 3 and echo.count == 3  # sent twice, the second answer returned
        proxy.set("A", "B", "cut")
        with pytest.raises(OSError):  # refused: nothing listens
            _post(url)
        proxy.set("A", "B", "reset")
        with pytest.raises(OSError):
            _post(url)
        proxy.set("A", "B", "blackhole")
        started = time.monotonic()
        with pytest.raises(OSError):  # no answer: the client times out
            _post(url, timeout=1)
        assert time.monotonic() - started >= 0.9
        assert echo.count == 3  # nothing of these reached the target
        proxy.set("A", "B", "delay", delay_ms=300)
        started = time.monotonic()
        assert _post(url)["n"] == 4 and time.monotonic() - started >= 0.3
        proxy.set("A", "B", "reorder", delay_ms=200)
        assert _post(url)["n"] == 5
        deadline = time.monotonic() + 5
        while echo.count < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert echo.count == 6  # the stale copy, later
        proxy.set("A", "B", "pass")
        proxy.on_answer("A", "B", lambda status, body: body.get("n") == 7)
        with pytest.raises(OSError):  # the target answered; the answer was dropped
            _post(url)
        assert echo.count == 7 and _post(url)["n"] == 8
        stats = proxy.stats()["A->B"]
        assert stats["duplicated"] == 1 and stats["reset"] == 1 and stats["blackholed"] == 1
        assert stats["answers_dropped"] == 1 and stats["stale_copies"] == 1
    finally:
        proxy.stop()
        echo.sock.close()


@pytest.mark.once
def test_the_fault_harness_passes_every_scenario():
    env = child_env(server_url("postgres"), free_port())
    done = subprocess.run([str(TARIFA), "federation", "test"], env=env, capture_output=True, text=True,
                          timeout=HARNESS_TIMEOUT)
    verdict = json.loads(done.stdout)
    failed = {name: s for name, s in verdict["scenarios"].items() if not s["ok"]}
    assert done.returncode == 0 and verdict["ok"] and not failed, json.dumps(failed, indent=1) + done.stderr[-3000:]
    assert set(verdict["scenarios"]) == {"happy", "owner_killed", "centre_down", "link_cut", "duplicated",
                                         "reordered_delayed", "relay_killed_after_answer",
                                         "receiver_killed_after_commit"}
    for name, scenario in verdict["scenarios"].items():
        assert scenario["acknowledged"] > 0, name
        assert scenario["checks"]["acknowledged_applied_once"]["ok"], name
        assert scenario["checks"]["streams_agree"]["messages"] > 0, name
    links = verdict["scenarios"]["duplicated"]["links"]
    assert sum(link.get("duplicated", 0) for link in links.values()) > 0
    assert verdict["scenarios"]["relay_killed_after_answer"]["fault_fired"]
    assert verdict["scenarios"]["receiver_killed_after_commit"]["fault_fired"]
