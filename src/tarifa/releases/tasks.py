"""The branch's periodic pull of reference releases (procrastinate)."""

import logging

from procrastinate.contrib.django import app

log = logging.getLogger(__name__)


@app.periodic(cron="* * * * *", periodic_id="releases.pull")
@app.task(queue="federation", name="releases.pull", queueing_lock="releases.pull", lock="releases.pull")
def pull(timestamp: int | None = None) -> dict:
    """Every minute on a branch: apply the centre's new releases (a centre that does not answer is tried
    again next minute; a refused release is reported by `tarifa federation status`)."""
    from tarifa.federation import selectors as federation
    from tarifa.kernel.errors import DomainError

    from . import services

    if federation.role() != "branch":
        return {}
    try:
        return services.pull(actor="system")
    except DomainError as exc:
        log.info("releases: pull failed: %s", exc.message)
        return {"error": exc.code}
