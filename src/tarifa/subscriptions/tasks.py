from procrastinate.contrib.django import app

from tarifa.kernel import batches
from tarifa.kernel.clock import today

batches.RESUMABLE |= {"subscriptions.daily_charge", "subscriptions.charge_batch"}


@app.periodic(cron="5 0 * * *", periodic_id="subscriptions.daily_charge")
@app.task(queue="billing", name="subscriptions.daily_charge", queueing_lock="subscriptions.daily_charge")
def daily_charge(timestamp: int):
    """Every day at 00:05: charge the fees due (and catch up missed days) — planned as batches that any
    worker takes (`subscriptions.charge_batch`); this worker takes batches too."""
    from . import daily

    record = daily.plan(as_of=today(), actor="system:daily")
    daily.work(record.pk)


@app.task(queue="billing", name="subscriptions.charge_batch")
def charge_batch(run_id: str, batch_id: int):
    """Charge one batch of a daily charge (then any other still pending); the last finishes the run."""
    from .daily import work

    work(run_id, prefer=batch_id)


@app.periodic(cron="*/10 * * * *", periodic_id="subscriptions.expire_promises")
@app.task(queue="billing", name="subscriptions.expire_promises")
def expire_promises(timestamp: int):
    from .services import expire_promised_payments

    expire_promised_payments(actor="system")
