"""`tarifa worker`: a procrastinate worker, with the periodic-task scheduler.

Runs every app's tasks (`tasks.py`, discovered when Django starts) and defers the tasks
declared with `@app.periodic(cron=...)` on schedule. Start as many as you like, on any
machine with the same DATABASE_URL: jobs are taken with row locks in PostgreSQL, and
each periodic run is deferred once. SIGINT/SIGTERM stop it after the running jobs end.
This is `tarifa procrastinate worker` with Tarifa's defaults.
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run a background-job worker (procrastinate) with the periodic scheduler."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("-c", "--concurrency", type=int, default=None,
                            help="Jobs processed at once by this worker (default 1).")
        parser.add_argument("-q", "--queues", nargs="*", default=None,
                            help="Queues to take jobs from (space or comma separated; default: all).")
        parser.add_argument("-n", "--name", default=None, help="Worker name shown in the jobs table.")
        parser.add_argument("--one-shot", action="store_true",
                            help="Process the jobs waiting now, then exit (periodic tasks are not scheduled).")
        parser.add_argument("--shutdown-graceful-timeout", type=float, default=None,
                            help="On stop, seconds to wait for running jobs before aborting them (default: wait).")

    def handle(self, *args, **opts):
        argv = ["worker"]
        if opts["concurrency"] is not None:
            argv += ["--concurrency", str(opts["concurrency"])]
        if opts["queues"]:
            queues = [q.strip() for item in opts["queues"] for q in item.split(",") if q.strip()]
            argv += ["--queues", ",".join(queues)]
        if opts["name"]:
            argv += ["--name", opts["name"]]
        if opts["one_shot"]:
            argv += ["--one-shot"]
        if opts["shutdown_graceful_timeout"] is not None:
            argv += ["--shutdown-graceful-timeout", str(opts["shutdown_graceful_timeout"])]
        if not opts["one_shot"]:
            call_command("procrastinate", *argv)
            return
        # One shot: the jobs waiting now, and nothing the scheduler would add meanwhile (on start it
        # defers the latest tick of every periodic task, e.g. a reconciliation, into the same run).
        # The real app: `procrastinate.contrib.django.app` is a proxy that only reads through.
        from procrastinate.contrib.django import procrastinate_app
        from procrastinate.periodic import PeriodicRegistry

        app = procrastinate_app.current_app
        registry, app.periodic_registry = app.periodic_registry, PeriodicRegistry()
        try:
            call_command("procrastinate", *argv)
        finally:
            app.periodic_registry = registry
