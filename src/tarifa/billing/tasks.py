from procrastinate.contrib.django import app

from tarifa.kernel import batches
from tarifa.kernel.clock import today

batches.RESUMABLE |= {"billing.bill_run", "billing.bill_run_batch"}


@app.task(queue="billing", name="billing.bill_run")
def bill_run(run_id: str):
    """Plan a queued bill run (the UI and `tarifa billing run --enqueue` hand runs to the workers): its
    batches become `billing.bill_run_batch` jobs that any worker takes; this worker then takes batches too."""
    from . import billrun

    if billrun.plan_run(run_id):
        billrun.work(run_id)


@app.task(queue="billing", name="billing.bill_run_batch")
def bill_run_batch(run_id: str, batch_id: int):
    """Invoice one batch of a bill run (then any other still pending); the last finishes the run."""
    from . import billrun

    billrun.work(run_id, prefer=batch_id)


@app.periodic(cron="30 1 * * *", periodic_id="billing.daily_collections")
@app.task(queue="billing", name="billing.daily_collections", queueing_lock="billing.daily_collections")
def daily_collections(timestamp: int):
    """Every day at 01:30: invoices past due become overdue, then the dunning ladder advances."""
    from . import dunning, services

    services.mark_overdue(as_of=today())
    dunning.run(as_of=today(), actor="system:dunning")
