"""Portal jobs (procrastinate): the rate limits' old attempts deleted every night."""

from procrastinate.contrib.django import app

from . import throttle


@app.periodic(cron="17 3 * * *", periodic_id="portal.purge_attempts")
@app.task(queue="maintenance", name="portal.purge_attempts", queueing_lock="portal.purge_attempts")
def purge_attempts(timestamp: int) -> int:
    """Every night: the sign-in, code and voucher attempts older than 30 days (the limits look back
    15 minutes) are deleted; returns how many."""
    return throttle.purge()
