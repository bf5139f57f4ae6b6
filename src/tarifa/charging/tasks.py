"""Online charging jobs (procrastinate)."""

from procrastinate.contrib.django import app

from tarifa.kernel.clock import now

from . import services


@app.periodic(cron="* * * * *", periodic_id="charging.expire_sessions")
@app.task(queue="charging", name="charging.expire_sessions", queueing_lock="charging.expire_sessions")
def expire_sessions(timestamp: int) -> int:
    """Every minute: close the silent sessions whose reservation's validity is over, settled at what they
    reported (their holds expire in the ledger, exactly once). Idempotent; a missed run is caught up."""
    return services.expire_sessions(as_of=now())
