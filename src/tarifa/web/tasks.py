"""The shell's jobs."""

import datetime as dt

from django.conf import settings
from procrastinate.contrib.django import app

from tarifa.kernel.clock import now

from . import idempotency


@app.periodic(cron="17 3 * * *", periodic_id="web.purge_idempotent_requests")
@app.task(queue="maintenance", name="web.purge_idempotent_requests",
          queueing_lock="web.purge_idempotent_requests")
def purge_idempotent_requests(timestamp: int) -> int:
    """Daily: forget stored API answers older than TARIFA_IDEMPOTENCY_DAYS (default 30).

    Afterwards a retry with such an old key runs as a new request; the services' own
    keys (ledger transfers, payments) still refuse to apply money twice."""
    days = int(getattr(settings, "TARIFA_IDEMPOTENCY_DAYS", 30))
    return idempotency.purge(older_than=now() - dt.timedelta(days=days))


@app.task(queue="tasks", name="web.run_background_task")
def run_background_task(task_id: str) -> str:
    """Run a background task (tarifa.web.background): its progress and result on its page."""
    from . import background

    return background.run(task_id).state


from . import exports  # noqa: E402,F401  (registers the "web.export" background task)
