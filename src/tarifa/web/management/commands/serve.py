"""`tarifa serve`: the production web server (gunicorn running tarifa.wsgi:application).

Ctrl-C (SIGINT) stops at once, SIGTERM lets running requests finish (up to
--graceful-timeout seconds). Static files are served by WhiteNoise, so no separate
web server is needed; behind a TLS proxy set TARIFA_BEHIND_TLS_PROXY=1.
"""

import gc
import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections


def default_port() -> int:
    try:
        return int(os.environ.get("PORT") or 8000)
    except ValueError:
        raise CommandError(f"PORT must be a number, not {os.environ['PORT']!r}") from None


def default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    # One process per core (at least two), each with 8 threads (--threads): a payment is ~20 ms of
    # Python and as long again waiting for PostgreSQL, so threads cover the waits while more
    # processes than cores only compete for them. Measured on 2 cores (BENCHMARKS.md, issue 18):
    # 2 × 8 served 1.6–1.7 × the payments/s of 4 × 4 with a lower p99, in interleaved runs.
    return max(2, cores)


def gunicorn_options(*, bind, workers, threads, timeout, graceful_timeout, access_log) -> dict:
    options = {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "timeout": timeout,
        "graceful_timeout": graceful_timeout,
        "preload_app": True,  # import Django once, fork workers; errors show before listening
        "errorlog": "-",
        "loglevel": os.environ.get("TARIFA_SERVER_LOG_LEVEL", "info"),
        "proc_name": "tarifa-serve",
        "forwarded_allow_ips": os.environ.get("TARIFA_FORWARDED_ALLOW_IPS", "127.0.0.1,::1"),
    }
    if access_log:
        options["accesslog"] = "-"
    return options


def run_gunicorn(options: dict) -> None:
    from gunicorn.app.base import BaseApplication

    class TarifaServer(BaseApplication):
        def load_config(self):
            for key, value in options.items():
                self.cfg.set(key, value)
            # gunicorn ≥ 24 opens a control socket under $HOME; two servers (e.g. tests beside
            # `make run`) would fight over it, and Tarifa does not use it.
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self):
            from tarifa.wsgi import application

            # Everything imported so far lives as long as the process: keep it out of the
            # garbage collector. Forked workers then share those pages instead of copying them,
            # and no process spends seconds collecting them at exit.
            gc.freeze()
            return application

    # WhiteNoise serves the app's static files through the finders; it warns when
    # STATIC_ROOT (filled only by collectstatic) is missing.
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    # No database connection may cross the fork into the workers.
    connections.close_all()
    # These processes use their connections for requests only: the request timeout is a connection
    # parameter instead of a SET and a RESET around every request.
    from tarifa.web.timeouts import set_at_connect

    set_at_connect()
    TarifaServer().run()


class Command(BaseCommand):
    help = "Run the production web server (gunicorn) on 127.0.0.1:$PORT (default 8000)."

    def add_arguments(self, parser):
        parser.add_argument("--bind", action="append",
                            help="Address to listen on, host:port or unix:/path (repeatable). "
                                 "Default 127.0.0.1:$PORT, PORT defaulting to 8000.")
        parser.add_argument("--workers", type=int, default=None,
                            help="Worker processes (default: one per CPU core, at least 2).")
        parser.add_argument("--threads", type=int, default=int(os.environ.get("TARIFA_SERVER_THREADS", "8")),
                            help="Threads per worker process (default 8; 1 selects gunicorn's sync worker).")
        parser.add_argument("--timeout", type=int, default=60, help="Seconds before a silent worker is restarted.")
        parser.add_argument("--graceful-timeout", type=int, default=10,
                            help="Seconds running requests get to finish on SIGTERM.")
        parser.add_argument("--access-log", action="store_true", help="Log every request to standard output.")

    def handle(self, *args, **opts):
        bind = opts["bind"] or [f"127.0.0.1:{default_port()}"]
        workers = opts["workers"] or int(os.environ.get("TARIFA_SERVER_WORKERS") or default_workers())
        if workers < 1 or opts["threads"] < 1:
            raise CommandError("--workers and --threads must be at least 1.")
        run_gunicorn(gunicorn_options(bind=bind, workers=workers, threads=opts["threads"], timeout=opts["timeout"],
                                      graceful_timeout=opts["graceful_timeout"], access_log=opts["access_log"]))
