"""Payments jobs (procrastinate)."""

from procrastinate.contrib.django import app

from tarifa.kernel.clock import now


@app.periodic(cron="*/30 * * * *", periodic_id="payments.autopay")
@app.task(queue="payments", name="payments.autopay", queueing_lock="payments.autopay")
def autopay(timestamp: int) -> dict:
    """Every 30 minutes: top up accounts below their agreed level, at most once per agreement
    and day (AutoPayRun is unique per day), so frequent runs catch a balance that drops
    during the day without ever charging twice."""
    from .services.autopay import run_autopay

    return run_autopay(as_of=now())
