"""Ledger jobs (procrastinate)."""

from procrastinate.contrib.django import app

from tarifa.kernel.clock import now

from . import services


@app.periodic(cron="* * * * *", periodic_id="ledger.expire_holds")
@app.task(queue="ledger", name="ledger.expire_holds", queueing_lock="ledger.expire_holds")
def expire_holds(timestamp: int) -> int:
    """Every minute: expire the holds that are due by now. Idempotent; a late or missed run
    is caught up by the next one (it expires everything overdue, not only this minute's)."""
    return services.expire_holds(as_of=now())
