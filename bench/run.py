"""Run Tarifa's benchmarks and append their results to bench/out/results.jsonl.

A benchmark is a module `bench/<name>.py` with a `main()` that does its measured work and
returns a dict of figures (numbers, with units in the keys: {"payments_per_s": 1830.0}).
`python -m bench` runs them all in name order; `python -m bench name ...` runs some.
Each result line records the figures, the wall time, the git commit and the machine, so
later runs compare against earlier ones.
"""

import argparse
import contextlib
import datetime as dt
import importlib
import json
import os
import pkgutil
import platform
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "results.jsonl"
NOT_BENCHMARKS = {"run"}


def discover() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)])
                  if not m.name.startswith("_") and m.name not in NOT_BENCHMARKS)


def setup_django() -> None:
    """Django with Tarifa's settings; database() below then gives a benchmark its own database."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tarifa.settings")
    os.environ.setdefault("TARIFA_TEST_DATABASE_NAME", "bench_tarifa")
    import django

    django.setup()


def free_port() -> int:
    """A free TCP port on loopback for a server the benchmark starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def database():
    """A fresh, migrated database (named by TARIFA_TEST_DATABASE_NAME, default bench_tarifa) on
    the same server as `make run`, dropped afterwards: benchmarks never touch real data."""
    from django.test.utils import setup_databases, teardown_databases

    old = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        teardown_databases(old, verbosity=0)


def backend_peak_kib(cursor) -> int | None:
    """Peak resident memory (VmHWM, KiB) of the PostgreSQL backend behind `cursor`, when this
    machine can read it (same host, /proc)."""
    cursor.execute("SELECT pg_backend_pid()")
    pid = cursor.fetchone()[0]
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def run_one(name: str) -> dict:
    record = {"bench": name, "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "commit": git_commit(), "python": platform.python_version(), "machine": platform.machine(),
              "cpus": os.cpu_count()}
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"bench.{name}")
        if not callable(getattr(module, "main", None)):
            raise TypeError(f"bench/{name}.py has no main()")
        result = module.main()
        record["result"] = result if isinstance(result, dict) else {"value": result}
        record["ok"] = True
    except Exception as exc:  # one broken benchmark must not hide the others' results
        record["ok"] = False
        record["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    available = discover()
    if args.list:
        print("\n".join(available) or "(no benchmarks yet)")
        return 0
    unknown = [n for n in args.names if n not in available]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available) or 'none'}")
    names = args.names or available
    if not names:
        print("No benchmarks yet: add bench/<name>.py with a main() (see bench/README.md).")
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in names:
        print(f"== {name}", flush=True)
        record = run_one(name)
        with OUT.open("a") as out:
            out.write(json.dumps(record, default=str) + "\n")
        if record["ok"]:
            figures = ", ".join(f"{k}={v}" for k, v in record["result"].items())
            print(f"   {figures} ({record['seconds']} s)", flush=True)
        else:
            failed += 1
            print(f"   FAILED: {record['error']}", flush=True)
    print(f"{len(names) - failed} benchmark(s) ran, {failed} failed; results appended to {OUT.relative_to(HERE.parent)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
