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


@app.periodic(cron="*/5 * * * *", periodic_id="payments.expire_checkouts")
@app.task(queue="payments", name="payments.expire_checkouts", queueing_lock="payments.expire_checkouts")
def expire_checkouts(timestamp: int) -> int:
    """Every 5 minutes: card checkouts the provider never answered (30 minutes) become expired."""
    from .services.cards import expire_checkouts as expire

    return expire(as_of=now())
