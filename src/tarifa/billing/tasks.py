from procrastinate.contrib.django import app

from tarifa.kernel.clock import today


@app.task(queue="billing", name="billing.bill_run")
def bill_run(run_id: str):
    """Execute a queued bill run (the UI and `tarifa billing run --enqueue` hand runs to the workers)."""
    from .billrun import execute_run
    from .models import BillRun

    run = BillRun.objects.filter(pk=run_id).first()
    if run is not None and run.status == BillRun.Status.QUEUED:
        execute_run(run)


@app.periodic(cron="30 1 * * *", periodic_id="billing.daily_collections")
@app.task(queue="billing", name="billing.daily_collections", queueing_lock="billing.daily_collections")
def daily_collections(timestamp: int):
    """Every day at 01:30: invoices past due become overdue, then the dunning ladder advances."""
    from . import dunning, services

    services.mark_overdue(as_of=today())
    dunning.run(as_of=today(), actor="system:dunning")
