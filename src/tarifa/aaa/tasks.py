"""AAA jobs (procrastinate): CoA/Disconnect after subscription events, periodic reconciliation,
finished sessions into rating."""

from procrastinate.contrib.django import app

from . import coa_services


@app.task(queue="aaa", name="aaa.bring_in_step")
def bring_in_step(subscription_id: str, reason: str) -> int:
    """Send CoA/Disconnect to the NAS of every open session of the subscription that is out of
    step (see coa_services). Returns the number of requests sent."""
    return len(coa_services.bring_in_step(subscription_id, reason=reason, actor="system"))


@app.periodic(cron="*/5 * * * *", periodic_id="aaa.reconcile")
@app.task(queue="aaa", name="aaa.reconcile", queueing_lock="aaa.reconcile")
def reconcile(timestamp: int) -> dict:
    """Every five minutes: compare the open sessions with the subscriptions and act on every
    difference (a reconciliation run records it)."""
    return coa_services.run_summary(coa_services.reconcile(actor="system", trigger="periodic"))
