"""Ledger jobs (procrastinate)."""

from django.utils.translation import gettext_lazy as _
from procrastinate.contrib.django import app

from tarifa.kernel.clock import now
from tarifa.web import background

from . import services


@app.periodic(cron="* * * * *", periodic_id="ledger.expire_holds")
@app.task(queue="ledger", name="ledger.expire_holds", queueing_lock="ledger.expire_holds")
def expire_holds(timestamp: int) -> int:
    """Every minute: expire the holds that are due by now. Idempotent; a late or missed run
    is caught up by the next one (it expires everything overdue, not only this minute's)."""
    return services.expire_holds(as_of=now())


@app.periodic(cron="41 2 * * *", periodic_id="ledger.ensure_partitions")
@app.task(queue="ledger", name="ledger.ensure_partitions", queueing_lock="ledger.ensure_partitions")
def ensure_partitions(timestamp: int) -> int:
    """Daily: the transfer table's partitions for this month and the next
    services.PARTITION_MONTHS_AHEAD months exist (made when missing). Idempotent; a missed
    day is caught up by the next (months ahead leave weeks of slack)."""
    return services.ensure_transfer_partitions()


@background.task_kind("ledger.check", label=_("Ledger check"), permission="ledger.view_ledgeraccount",
                      result_template="ledger/_check_result.html")
def run_ledger_check(task, progress) -> dict:
    """The ledger check (`tarifa ledger check`) as a background task: progress per check,
    the report as its result."""
    from .selectors import check_ledger

    return check_ledger(progress=progress)
