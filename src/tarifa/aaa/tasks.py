"""AAA jobs (procrastinate): CoA/Disconnect after subscription events, periodic reconciliation,
monthly traffic caps, finished sessions into rating."""

from procrastinate.contrib.django import app

from . import coa_services


@app.task(queue="aaa", name="aaa.bring_in_step")
def bring_in_step(subscription_id: str, reason: str) -> int:
    """Send CoA/Disconnect to the NAS of every open session of the subscription that is out of
    step (see coa_services). Returns the number of requests sent."""
    return len(coa_services.bring_in_step(subscription_id, reason=reason, actor="system"))


@app.task(queue="aaa", name="aaa.prepaid_disconnect")
def prepaid_disconnect(nas_id: str, acct_session_id: str) -> int:
    """A prepaid session whose balance is exhausted at an Interim-Update: Disconnect-Request to its
    NAS (logged with the reason "balance"). Returns the number of requests sent."""
    return coa_services.disconnect_exhausted(nas_id, acct_session_id)


@app.periodic(cron="*/5 * * * *", periodic_id="aaa.reconcile")
@app.task(queue="aaa", name="aaa.reconcile", queueing_lock="aaa.reconcile")
def reconcile(timestamp: int) -> dict:
    """Every five minutes: compare the open sessions with the subscriptions and act on every
    difference (a reconciliation run records it)."""
    return coa_services.run_summary(coa_services.reconcile(actor="system", trigger="periodic"))


@app.periodic(cron="* * * * *", periodic_id="aaa.enforce_caps")
@app.task(queue="aaa", name="aaa.enforce_caps", queueing_lock="aaa.enforce_caps")
def enforce_caps(timestamp: int) -> dict:
    """Every minute: the open sessions of subscriptions over their profile's monthly traffic cap
    that do not have the capped access yet get it (CoA to the capped speed, or Disconnect-Request),
    logged with the reason "cap"; the RADIUS server reloads its snapshot."""
    return coa_services.enforce_caps(actor="system")


@app.periodic(cron="* * * * *", periodic_id="aaa.charge_sessions")
@app.task(queue="aaa", name="aaa.charge_sessions", queueing_lock="aaa.charge_sessions")
def charge_sessions(timestamp: int) -> dict:
    """Every minute: finished sessions into rating (one usage record per session, once)."""
    from . import usage

    return usage.charge_finished_sessions(actor="system")

@app.periodic(cron="*/5 * * * *", periodic_id="aaa.close_stale")
@app.task(queue="aaa", name="aaa.close_stale", queueing_lock="aaa.close_stale")
def close_stale(timestamp: int):
    """Every 5 minutes (the RADIUS server also does it every minute): close sessions silent for longer
    than their interim interval × TARIFA_AAA_STALE_FACTOR, usage kept."""
    from .services import close_stale_sessions

    close_stale_sessions()


@app.periodic(cron="17 3 * * *", periodic_id="aaa.housekeeping")
@app.task(queue="aaa", name="aaa.housekeeping", queueing_lock="aaa.housekeeping")
def housekeeping(timestamp: int):
    """Daily: the next months' partitions of the finished sessions; the auth log's retention."""
    from . import partitions
    from .services import prune_auth_log

    partitions.ensure(months_ahead=2)
    prune_auth_log()
