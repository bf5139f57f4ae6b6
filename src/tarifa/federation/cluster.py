"""A federation on one machine: a centre and N branches as real processes on loopback (docs/federation.md,
"A federation on one machine"). Used by `tarifa federation demo`, `tarifa federation test` (harness.py),
bench/federation.py and the end-to-end tests.

Each node has its own database on the server this process uses (DATABASE_URL's, or the embedded one that
`make run` starts), migrated and bootstrapped with its own TARIFA_NODE_ROLE / TARIFA_NODE_CODE /
TARIFA_BRANCH_CODE (so its demo data carries its branch code: customer and account numbers, owner branch),
its own web server (`tarifa serve` on a loopback port) and job worker (`tarifa worker`). Every node is
registered at every other one with its public key (`tarifa federation register`). With a fault proxy
(faultproxy.py) each node's registry points at the proxy's port for the link to that peer, not at the peer.

The processes are started in their own process groups with PDEATHSIG, so they stop when this process dies
even by SIGKILL; `Cluster.stop()` stops them all (SIGINT, then SIGKILL after a grace period) and is what
Ctrl-C / SIGTERM run in `tarifa federation demo`.

Nothing here imports the apps above federation: the harness drives nodes over HTTP and reads their
databases with plain SQL.
"""

import concurrent.futures
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tarifa.kernel.dburl import url_for

CENTRE = "CTR"
ADMIN_USERNAME = "admin"
START_TIMEOUT = 900  # seconds: migrating and loading the demo on a busy 2-core machine
# Short back-off: a peer that comes back is retried within seconds (a real installation keeps 1 s … 300 s).
FAST_RETRY = {"TARIFA_FEDERATION_RETRY_BASE": "0.5", "TARIFA_FEDERATION_RETRY_MAX": "2",
              "TARIFA_FEDERATION_TIMEOUT": "5"}


def _die_with_parent():
    """In the child, before exec: SIGKILL when this process dies, however it dies (no orphans)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_url(dbname: str) -> str:
    """A URL for database `dbname` on the PostgreSQL server this process's default database is on."""
    from django.db import connections

    return url_for(connections["default"].settings_dict, dbname)


def _admin_sql(sql: str) -> None:
    import psycopg

    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        conn.execute(sql)


def _drop(names) -> None:
    """Drop databases, in parallel (each DROP waits for a checkpoint, seconds on a busy server)."""
    if not names:
        return
    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(lambda name: _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'), names))


def base_env() -> dict:
    """This process's environment without what would switch a child to test settings or to another database."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PYTEST_", "TEST_DATABASE", "TARIFA_TEST_DATABASE", "DJANGO_ALLOW_ASYNC"))
            and k != "DATABASE_URL"}


def tarifa_command() -> list[str]:
    return [sys.executable, "-m", "tarifa.cli"]


@dataclass
class Node:
    code: str
    role: str  # centre | branch
    name: str
    database: str  # database name
    port: int
    log_dir: Path
    extra_env: dict = field(default_factory=dict)
    processes: dict = field(default_factory=dict)  # serve | worker -> Popen
    key: dict | None = None  # {"key_id", "public_key"}
    url_for_peers: str = ""  # what the others put in their registry (the proxy's address for the link)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return server_url(self.database)

    def env(self) -> dict:
        env = base_env()
        env.update(DATABASE_URL=self.database_url, PORT=str(self.port), PYTHONUNBUFFERED="1",
                   TARIFA_NODE_ROLE=self.role, TARIFA_NODE_CODE=self.code, TARIFA_BRANCH_CODE=self.code,
                   TARIFA_BRANCH_NAME=self.name, TARIFA_AAA_ENABLED="0", TARIFA_SERVER_WORKERS="1",
                   TARIFA_TEST_CARD_PROVIDER=env.get("TARIFA_TEST_CARD_PROVIDER", "1"))
        env.update(self.extra_env)
        return env

    def run(self, *args, timeout=START_TIMEOUT, stdin=None) -> str:
        """A `tarifa` command on this node, to completion; its standard output (raises on failure)."""
        done = subprocess.run([*tarifa_command(), *args], env=self.env(), capture_output=True, text=True,
                              timeout=timeout, input=stdin)
        if done.returncode != 0:
            raise RuntimeError(f"{self.code}: tarifa {' '.join(args)} failed ({done.returncode}):\n"
                               f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
        return done.stdout

    def start(self, *which: str) -> None:
        """Start its web server and/or worker (both by default) if they are not running."""
        commands = {"serve": [*tarifa_command(), "serve", "--bind", f"127.0.0.1:{self.port}", "--workers", "1"],
                    "worker": [*tarifa_command(), "worker", "--concurrency", "2", "--name", f"{self.code}-worker"]}
        for name in which or ("serve", "worker"):
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                continue
            log = open(self.log_dir / f"{self.code}-{name}.log", "ab")  # noqa: SIM115 — the child keeps it
            self.processes[name] = subprocess.Popen(commands[name], env=self.env(), stdout=log,
                                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                    process_group=0, preexec_fn=_die_with_parent)
            log.close()

    def pids(self) -> dict:
        return {name: p.pid for name, p in self.processes.items() if p.poll() is None}

    def kill(self, *which: str, sig=signal.SIGKILL) -> None:
        """Signal its processes (and their children: the web server's workers) — SIGKILL by default."""
        for name in which or tuple(self.processes):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            try:
                os.killpg(process.pid, sig)  # own process group: the web server's workers too
            except ProcessLookupError:
                pass
            if sig == signal.SIGKILL:
                process.wait()

    def stop(self, timeout=20.0) -> None:
        """SIGINT (what Ctrl-C sends), then SIGKILL whatever is still there after `timeout`."""
        running = {n: p for n, p in self.processes.items() if p.poll() is None}
        for name in running:
            self.kill(name, sig=signal.SIGINT)
        deadline = time.monotonic() + timeout
        for name, process in running.items():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(name)
        for process in running.values():  # the group: a web worker left behind by its master
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, timeout=180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            serve = self.processes.get("serve")
            if serve is not None and serve.poll() is not None:
                raise RuntimeError(f"{self.code}: the web server exited ({serve.returncode}); see "
                                   f"{self.log_dir / (self.code + '-serve.log')}")
            if self.healthy():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.code}: /healthz did not answer within {timeout:.0f} s")


class Cluster:
    """A centre and `branches` branches. `prefix` names the databases (`<prefix>_ctr`, `<prefix>_b1`, …).

    `proxy`: a faultproxy.FaultProxy, started here; every node's registry then points at the proxy's port
    for the link to that peer. `ports`: the nodes' web ports in order (default: free ports)."""

    def __init__(self, *, branches=3, prefix=None, proxy=None, ports=None, demo=True, keep=False,
                 admin_password=None, extra_env=None, log_dir=None):
        if branches < 1:
            raise ValueError("at least one branch")
        self.prefix = prefix or f"tarifa_fed_{uuid.uuid4().hex[:8]}"
        self.demo = demo
        self.keep = keep  # keep the databases after stop()
        self.proxy = proxy
        self.admin_password = admin_password or f"Fed-{secrets.token_urlsafe(9)}"
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="tarifa-federation-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        specs = [(CENTRE, "centre", "Central node")] + [(f"B{i}", "branch", f"Branch {i}")
                                                         for i in range(1, branches + 1)]
        ports = list(ports or [])
        self.nodes: dict[str, Node] = {}
        for i, (code, role, name) in enumerate(specs):
            env = {"TARIFA_ADMIN_PASSWORD": self.admin_password, **FAST_RETRY, **(extra_env or {})}
            self.nodes[code] = Node(code=code, role=role, name=name, database=f"{self.prefix}_{code.lower()}",
                                    port=ports[i] if i < len(ports) else free_port(), log_dir=self.log_dir,
                                    extra_env=env)
        self._lock = threading.Lock()
        self.created: list[str] = []

    # -- life cycle -------------------------------------------------------------------------------------------

    @property
    def centre(self) -> Node:
        return self.nodes[CENTRE]

    @property
    def branches(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.role == "branch"]

    def setup(self, say=lambda text: None) -> None:
        """Databases (a migrated template copied per node), bootstrap with demo data, keys, registries."""
        fresh = list(self.nodes.values())
        if fresh:
            template = f"{self.prefix}_template"
            say(f"Migrating a template database ({template})…")
            _drop([template, *(n.database for n in fresh)])
            _admin_sql(f'CREATE DATABASE "{template}"')
            self.created.append(template)  # dropped with the others at the end (a drop waits for a checkpoint)
            first = next(iter(self.nodes.values()))
            env = first.env() | {"DATABASE_URL": server_url(template)}
            done = subprocess.run([*tarifa_command(), "migrate", "--no-input", "-v", "0"], env=env,
                                  capture_output=True, text=True, timeout=START_TIMEOUT)
            if done.returncode != 0:
                raise RuntimeError(f"migrating the template failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
            for node in fresh:
                _admin_sql(f'CREATE DATABASE "{node.database}" TEMPLATE "{template}"')
                self.created.append(node.database)
        say("Bootstrapping every node (its branch, admin, demo data)…")
        args = ["bootstrap", "-v", "0"] + ([] if self.demo else ["--no-demo"])
        self.each(lambda node: node.run(*args))
        self.each(lambda node: setattr(node, "key", json.loads(node.run("federation", "key"))["keys"][-1]))
        self.register()

    def link_url(self, source: Node, target: Node) -> str:
        """Where `source` reaches `target`: the proxy's port for that link, or the target itself."""
        if self.proxy is None:
            return target.url
        return self.proxy.url(source.code, target.code)

    def register(self) -> None:
        """Every node registered at every other one (code, role, address, public key) — idempotent."""
        if self.proxy is not None:
            self.proxy.set_targets({n.code: ("127.0.0.1", n.port) for n in self.nodes.values()})

        def one(node):
            peers = [{"code": peer.code, "name": peer.name, "role": peer.role, "url": self.link_url(node, peer),
                      "key_id": peer.key["key_id"], "public_key": peer.key["public_key"]}
                     for peer in self.nodes.values() if peer is not node]
            node.run("federation", "register", "--file", "-", stdin=json.dumps(peers))

        self.each(one)

    def start(self, say=lambda text: None) -> None:
        for node in self.nodes.values():
            node.start()
        for node in self.nodes.values():
            node.wait_healthy()
            say(f"{node.code} is up at {node.url}")

    def stop(self) -> None:
        with self._lock:
            for node in self.nodes.values():
                node.kill("serve", "worker", sig=signal.SIGINT)
            for node in self.nodes.values():
                node.stop()
            _drop([name for name in self.created if not self.keep or name.endswith("_template")])
            self.created.clear()

    def pids(self) -> list[int]:
        return [pid for node in self.nodes.values() for pid in node.pids().values()]

    def each(self, func) -> None:
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            for future in [pool.submit(func, node) for node in self.nodes.values()]:
                future.result()

    def describe(self) -> list[dict]:
        return [{"code": n.code, "role": n.role, "url": n.url + "/", "database": n.database,
                 "login": ADMIN_USERNAME, "password": self.admin_password} for n in self.nodes.values()]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def demo(*, branches=3, base_port=8100, password=None, proxy=False, keep=False, demo=True, say=print,
         ready=None) -> None:
    """`tarifa federation demo`: bring the federation up, print each node's address and login, keep it up
    until KeyboardInterrupt (Ctrl-C, or SIGTERM turned into it by the command), then stop every process."""
    from .faultproxy import FaultProxy

    fault_proxy = FaultProxy(base_port=base_port + 100) if proxy else None
    ports = [base_port + i for i in range(branches + 1)]
    cluster = Cluster(branches=branches, prefix="tarifa_demo" if keep else None, proxy=fault_proxy, ports=ports,
                      demo=demo, keep=keep, admin_password=password)
    try:
        if fault_proxy is not None:
            fault_proxy.start()
        say(f"Federation demo: a centre and {branches} branches; logs in {cluster.log_dir}")
        cluster.setup(say=say)
        cluster.start(say=say)
        say("")
        for node in cluster.describe():
            say(f"  {node['code']:4} {node['role']:7} {node['url']:24} login {node['login']} / {node['password']}"
                f"   (database {node['database']})")
        if fault_proxy is not None:
            say(f"  links through the fault proxy on ports {fault_proxy.describe()}")
        say("")
        say("Try: log in at B1, find a subscriber of B2 (Find a subscriber in the federation), take a payment for "
            "them (Take a payment for another branch) and see it applied at B2; `tarifa federation ping --to B2` "
            "(or POST /api/v1/federation/nodes/<id>/ping/) sends test messages. Every process's output is in the "
            "log directory above.")
        say("Press Ctrl-C to stop all of it.")
        if ready is not None:
            ready(cluster)
        while True:
            for node in cluster.nodes.values():
                for name, process in node.processes.items():
                    if process.poll() is not None and not getattr(process, "reported", False):
                        process.reported = True
                        say(f"{node.code} {name} exited with code {process.returncode} "
                            f"(log: {cluster.log_dir / f'{node.code}-{name}.log'})")
            time.sleep(0.5)
    finally:
        say("Stopping every node…")
        cluster.stop()
        if fault_proxy is not None:
            fault_proxy.stop()
        say("Stopped." + (f" The databases are kept ({cluster.prefix}_*)." if keep else ""))
