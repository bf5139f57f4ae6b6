"""Journal jobs (procrastinate): the sealer after commit, and a sweeper every minute."""

from procrastinate.contrib.django import app

from . import selectors


@app.task(queue="federation", name="journals.seal")
def seal_job() -> int:
    """Seal what was committed (deferred after commit by record_entry; lock `journals.seal`: one at a time)."""
    from . import services

    return services.seal_all()


@app.periodic(cron="* * * * *", periodic_id="journals.sweep")
@app.task(queue="federation", name="journals.sweep", queueing_lock="journals.sweep", lock="journals.seal")
def sweep(timestamp: int) -> dict:
    """Every minute on a branch: seal entries whose sealer job was lost, make the checkpoints of finished
    days, ship what waits for the centre (a centre registered after entries were sealed)."""
    if not selectors.enabled() or selectors.is_centre():
        return {}
    from . import services

    sealed = services.seal_all()
    checkpoints = len(services.make_due_checkpoints())
    return {"sealed": sealed, "checkpoints": checkpoints, "shipped": services.ship()}
