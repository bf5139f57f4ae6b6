from procrastinate.contrib.django import app


@app.periodic(cron="* * * * *", periodic_id="scripts.run_due")
@app.task(queue="scripts", name="scripts.run_due", queueing_lock="scripts.run_due")
def run_due(timestamp: int):
    """Every minute: run the scheduled scripts whose schedule has a slot since their last run."""
    from .services import run_due_scripts

    run_due_scripts()
