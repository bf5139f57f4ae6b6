from procrastinate.contrib.django import app

from tarifa.kernel.clock import today


@app.periodic(cron="5 0 * * *", periodic_id="subscriptions.daily_charge")
@app.task(queue="billing", name="subscriptions.daily_charge", queueing_lock="subscriptions.daily_charge")
def daily_charge(timestamp: int):
    """Every day at 00:05: charge the fees due (and catch up missed days)."""
    from .daily import run

    run(as_of=today(), actor="system:daily")


@app.periodic(cron="*/10 * * * *", periodic_id="subscriptions.expire_promises")
@app.task(queue="billing", name="subscriptions.expire_promises")
def expire_promises(timestamp: int):
    from .services import expire_promised_payments

    expire_promised_payments(actor="system")
