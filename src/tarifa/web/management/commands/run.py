"""`tarifa run` (what `make run` does): bootstrap, then the web server, a job worker, the
Diameter credit-control server (`tarifa charging diameter`, port $TARIFA_DIAMETER_PORT or 3868) and the
RADIUS server (`tarifa aaa serve`, on TARIFA_AAA_BIND:TARIFA_AAA_AUTH_PORT/TARIFA_AAA_ACCT_PORT, default
127.0.0.1:1812/1813; TARIFA_AAA_ENABLED=0 leaves it out).

All run as child processes of this one. Ctrl-C or SIGTERM here is passed on to them;
when one stops on its own, the others are stopped too and `run` exits.

Without DATABASE_URL, importing the settings started the embedded PostgreSQL (under
./var/pgdata) and exported its DATABASE_URL: the children inherit it and connect to
the same server, which stays up as long as this process does. Any other `tarifa`
command started meanwhile registers itself with the same server (pgserver counts its
users), so it is safe to use beside a running `make run`.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from .bootstrap import bootstrap
from .createadmin import ADMIN_USERNAME, PASSWORD_ENV
from .serve import default_port

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _die_with_parent():
    """In the child, before exec: get SIGTERM if `run` itself dies (even by SIGKILL)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Command(BaseCommand):
    help = ("Bootstrap the database, then run the web server, a background-job worker and the Diameter "
            "credit-control server until Ctrl-C. This is what `make run` does.")
    requires_system_checks = []  # bootstrap's migrate runs them

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address the web server listens on.")
        parser.add_argument("--port", type=int, default=None, help="Port (default $PORT, else 8000).")
        parser.add_argument("--workers", type=int, default=None, help="Web worker processes (default 2 × cores).")
        parser.add_argument("--concurrency", type=int, default=None, help="Jobs the job worker runs at once.")
        parser.add_argument("--access-log", action="store_true", help="Log every request.")
        parser.add_argument("--no-demo", action="store_true", help="Do not load demo data into an empty database.")
        parser.add_argument("--stop-timeout", type=float, default=30.0,
                            help="Seconds the children get to stop before they are killed.")

    def say(self, text=""):
        self.stdout.write(text)
        self.stdout.flush()

    def handle(self, *args, **opts):
        port = opts["port"] or default_port()
        host = opts["host"]
        result = bootstrap(stdout=self.stdout, verbosity=opts["verbosity"], demo=not opts["no_demo"])
        connections.close_all()

        env = os.environ.copy()
        if not env.get("DATABASE_URL"):
            raise CommandError("DATABASE_URL is not set after loading the settings; cannot share the database.")
        env["PORT"] = str(port)
        base = [sys.executable, "-m", "tarifa.cli"]
        serve_cmd = [*base, "serve", "--bind", f"{host}:{port}"]
        if opts["workers"]:
            serve_cmd += ["--workers", str(opts["workers"])]
        if opts["access_log"]:
            serve_cmd.append("--access-log")
        worker_cmd = [*base, "worker"]
        if opts["concurrency"]:
            worker_cmd += ["--concurrency", str(opts["concurrency"])]
        # The Diameter Gy/Ro credit-control server (online charging), on TARIFA_DIAMETER_PORT (3868).
        diameter_cmd = [*base, "charging", "diameter", "--host", host,
                        "--port", os.environ.get("TARIFA_DIAMETER_PORT") or "3868"]
        commands = [("serve", serve_cmd), ("worker", worker_cmd), ("diameter", diameter_cmd)]
        if settings.TARIFA_AAA_ENABLED:
            commands.append(("aaa", [*base, "aaa", "serve"]))

        received = []

        def on_signal(signum, frame):
            received.append(signum)

        previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
        children = {}
        try:
            for name, cmd in commands:
                # Own process group: a terminal's Ctrl-C reaches `run` only, which passes it on once.
                children[name] = subprocess.Popen(cmd, env=env, process_group=0, preexec_fn=_die_with_parent)
                self.say(f"{name}: pid {children[name].pid}")
            url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
            up = self.wait_until_up(url, children, received)
            self.say("")
            self.say(self.style.SUCCESS(f"Tarifa is running at {url}") if up else f"Tarifa's address: {url}")
            # Always, even if the server is slow or failed: a generated password is shown only here.
            self.say(self.credentials(result))
            if settings.TARIFA_AAA_ENABLED:
                self.say(f"RADIUS: {settings.TARIFA_AAA_BIND} port {settings.TARIFA_AAA_AUTH_PORT} (authentication), "
                         f"{settings.TARIFA_AAA_ACCT_PORT} (accounting).")
            if up:
                self.say("Press Ctrl-C to stop.")
            exit_code = self.supervise(children, received)
        finally:
            self.stop(children, received, opts["stop_timeout"])
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if exit_code:
            sys.exit(exit_code)

    def credentials(self, result) -> str:
        if result.fresh and result.admin is not None:
            if result.admin.from_env:
                return f"Log in as {ADMIN_USERNAME!r} with the password from {PASSWORD_ENV}."
            return (f"Log in as {ADMIN_USERNAME!r} with password {result.admin.password} "
                    "(generated now and shown only this once; keep it).")
        return result.describe()

    def wait_until_up(self, url, children, received, timeout=90.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not received:
            if any(child.poll() is not None for child in children.values()):
                return False
            try:
                with urllib.request.urlopen(url + "healthz", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        if not received:
            self.stderr.write(f"The web server did not answer on {url} within {timeout:.0f} s; still waiting.")
        return False

    def supervise(self, children, received) -> int:
        while not received:
            for name, child in children.items():
                code = child.poll()
                if code is not None:
                    self.stderr.write(f"{name} exited with code {code}; stopping the others.")
                    return code or 1
            time.sleep(0.2)
        return 0

    def stop(self, children, received, timeout):
        sig = received[0] if received and received[0] == signal.SIGINT else signal.SIGTERM
        alive = {name: child for name, child in children.items() if child.poll() is None}
        if alive:
            self.say(f"Stopping {', '.join(alive)}…")
        for child in alive.values():
            try:
                child.send_signal(sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        for name, child in alive.items():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop within {timeout:.0f} s; killing it.")
                child.kill()
                child.wait()
        if alive:
            self.say("Stopped.")
