"""The parent side of the sandbox: a small pool of pre-started Lua processes (`child.py`).

`execute(source, context=..., functions=..., on_call=..., cpu_ms=..., memory=...)` runs one script in
an idle process and returns an `Outcome`. Each call the script makes arrives here and is answered
by `on_call(name, args, kwargs) -> {"ok": True, "value": ...} | {"ok": False, "error": {...}}`, in
this process (and so in the caller's database transaction). The process is killed and replaced when
it does not finish within the wall-clock limit (its CPU budget plus a grace, not counting the time
this side spends answering its calls), when it dies (RLIMIT_CPU, RLIMIT_AS), and after a run that hit
a limit. No ORM here: `services.run_script` records the run.
"""

from __future__ import annotations

import json
import logging
import os
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

CHILD = Path(__file__).with_name("child.py")
MAX_MESSAGE = 4 << 20
MAX_CALLS = 200


@dataclass
class Outcome:
    ok: bool
    value: object = None
    error: str | None = None
    kind: str = ""  # "" (ok) | error | budget | memory | killed
    logs: list[str] = field(default_factory=list)
    calls: int = 0
    cpu_ms: float | None = None
    wall_ms: float = 0.0  # time the sandbox process ran, without the time spent on its calls here


class ChildGone(Exception):
    pass


class Worker:
    """One sandbox process and its channel."""

    def __init__(self, process_memory: int, user: str | None = None):
        self.owner = os.getpid()
        # No inherited descriptors (database sockets), no environment (no DATABASE_URL, no keys), its own
        # session (a signal to Tarifa's process group does not reach it; it ends when its stdin closes).
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(CHILD), str(process_memory)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, cwd="/", close_fds=True, start_new_session=True,
            user=user or None)
        self.ready = False
        self.runs = 0

    @property
    def alive(self) -> bool:
        return self.owner == os.getpid() and self.proc.poll() is None

    def send(self, message: dict):
        data = json.dumps(message, ensure_ascii=False, allow_nan=False).encode()
        try:
            self.proc.stdin.write(struct.pack(">I", len(data)) + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise ChildGone(str(exc)) from None

    def _read(self, n: int, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        chunks, left = [], n
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise TimeoutError
            readable, _, _ = select.select([fd], [], [], wait)
            if not readable:
                raise TimeoutError
            chunk = os.read(fd, left)
            if not chunk:
                raise ChildGone("the sandbox process ended")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def receive(self, deadline: float) -> dict:
        (length,) = struct.unpack(">I", self._read(4, deadline))
        if length > MAX_MESSAGE:
            raise ChildGone("the sandbox sent an oversized message")
        return json.loads(self._read(length, deadline))

    def wait_ready(self, timeout: float = 30.0):
        if not self.ready:
            message = self.receive(time.monotonic() + timeout)
            if message.get("op") != "ready":
                raise ChildGone("the sandbox process did not start")
            self.ready = True

    def kill(self):
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning("sandbox process %s did not end after SIGKILL", self.proc.pid)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


class Pool:
    def __init__(self):
        self._idle: list[Worker] = []
        self._lock = threading.Lock()

    @staticmethod
    def settings():
        from django.conf import settings

        return (getattr(settings, "TARIFA_SCRIPT_POOL_SIZE", 2),
                getattr(settings, "TARIFA_SCRIPT_PROCESS_MEMORY", 512 * 1024 * 1024),
                getattr(settings, "TARIFA_SCRIPT_MAX_RUNS_PER_PROCESS", 500))

    def _spawn(self) -> Worker:
        from django.conf import settings

        return Worker(self.settings()[1], user=getattr(settings, "TARIFA_SCRIPT_USER", ""))

    def acquire(self) -> Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker
                if worker.owner == os.getpid():
                    worker.kill()
        return self._spawn()

    def release(self, worker: Worker, *, healthy: bool):
        size, _, max_runs = self.settings()
        worker.runs += 1
        if not healthy or not worker.alive or worker.runs >= max_runs:
            worker.kill()
            self.fill()  # the replacement starts now, ready for the next run
            return
        with self._lock:
            if len(self._idle) < size:
                self._idle.append(worker)
                return
        worker.kill()

    def fill(self):
        """Start processes until the pool holds its size (they start in the background)."""
        size = self.settings()[0]
        with self._lock:
            self._idle = [w for w in self._idle if w.alive]
            missing = size - len(self._idle)
        for _ in range(max(0, missing)):
            worker = self._spawn()
            with self._lock:
                self._idle.append(worker)

    def pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._idle if w.alive]

    def close(self):
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            if worker.owner == os.getpid():
                worker.kill()


pool = Pool()


def limits():
    from django.conf import settings

    return (getattr(settings, "TARIFA_SCRIPT_CPU_MS", 1000),
            getattr(settings, "TARIFA_SCRIPT_MEMORY", 32 * 1024 * 1024),
            getattr(settings, "TARIFA_SCRIPT_GRACE_MS", 2000))


def check(source: str) -> str | None:
    """The Lua syntax error in `source` ("script:3: 'end' expected near <eof>"), or None."""
    try:
        worker = pool.acquire()
    except OSError as exc:
        return f"the syntax could not be checked: the sandbox process could not start ({exc.strerror or exc})"
    healthy = False
    try:
        worker.wait_ready()
        worker.send({"op": "check", "source": source})
        message = worker.receive(time.monotonic() + 10)
        healthy = message.get("op") == "checked"
        return message.get("error") if healthy else "the syntax could not be checked"
    except (TimeoutError, ChildGone):
        return "the syntax could not be checked"
    finally:
        pool.release(worker, healthy=healthy)


def wall_limit_ms(cpu_ms: int, grace_ms: int) -> int:
    """The wall-clock limit of the sandbox's own time in a run: the CPU budget is what the script may
    use (the hook stops it there); a busy machine gives the process a share of a core, hence 4× the
    budget, plus a grace. Only work that escapes the hook (a C function: a pathological pattern
    match) runs into it."""
    return 4 * cpu_ms + grace_ms


def execute(source: str, *, context=None, functions=(), on_call=None, cpu_ms=None, memory=None,
            grace_ms=None) -> Outcome:
    """Run `source` (Lua) in a sandbox process; never raises for anything the script does."""
    default_cpu, default_memory, default_grace = limits()
    cpu_ms = int(cpu_ms or default_cpu)
    memory = int(memory or default_memory)
    grace_ms = int(default_grace if grace_ms is None else grace_ms)
    wall_limit = wall_limit_ms(cpu_ms, grace_ms) / 1000
    outcome = Outcome(ok=False)
    try:
        worker = pool.acquire()
    except OSError as exc:  # cannot start Python as TARIFA_SCRIPT_USER, no processes left …
        log.error("the script sandbox could not start: %s", exc)
        return Outcome(ok=False, kind="killed", error=f"the sandbox process could not start: {exc.strerror or exc}")
    healthy = False
    child_time = 0.0
    try:
        worker.wait_ready()
        worker.send({"op": "run", "source": source, "context": context or {}, "functions": list(functions),
                     "cpu_ms": cpu_ms, "memory": memory})
        while True:
            started = time.monotonic()
            try:
                message = worker.receive(started + max(0.0, wall_limit - child_time))
            finally:
                child_time += time.monotonic() - started
            op = message.get("op")
            if op == "log":
                outcome.logs.append(str(message.get("line", "")))
            elif op == "call":
                outcome.calls += 1
                if outcome.calls > MAX_CALLS:
                    answer = {"ok": False, "error": {"code": "too_many_calls",
                                                     "message": f"at most {MAX_CALLS} calls in one run"}}
                elif on_call is None:
                    answer = {"ok": False, "error": {"code": "unknown_function", "message": "no functions offered"}}
                else:
                    answer = on_call(str(message.get("name")), message.get("args") or [], message.get("kwargs") or {})
                worker.send(answer)
            elif op == "done":
                outcome.ok = bool(message.get("ok"))
                outcome.value = message.get("value")
                outcome.error = message.get("error")
                outcome.kind = "" if outcome.ok else (message.get("kind") or "error")
                outcome.cpu_ms = message.get("cpu_ms")
                # A run that hit a limit may have left the process's allocator in any state: replace it.
                healthy = outcome.kind in ("", "error")
                break
            else:
                raise ChildGone(f"unexpected message {op!r}")
    except TimeoutError:
        outcome.ok, outcome.kind = False, "killed"
        outcome.error = (f"killed: no result within {wall_limit * 1000:.0f} ms of run time "
                         f"(CPU-time budget {cpu_ms} ms)")
    except ChildGone as exc:
        outcome.ok, outcome.kind = False, "killed"
        # Its pipe closes a moment before its exit status is there to read: wait for it (briefly),
        # or the reason (the CPU-time limit's signal) is lost.
        try:
            code = worker.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None and code < 0:
            import signal

            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            reason = {"SIGXCPU": f"CPU-time limit of the sandbox reached (budget {cpu_ms} ms)",
                      "SIGKILL": "killed", "SIGSEGV": "crashed (likely out of memory)"}.get(name, name)
            outcome.error = f"the sandbox process ended: {reason}"
        else:
            outcome.error = f"the sandbox process ended: {exc}"
    finally:
        outcome.wall_ms = round(child_time * 1000, 1)
        pool.release(worker, healthy=healthy)
    return outcome
