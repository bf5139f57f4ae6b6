"""Federation jobs (procrastinate): the relay per destination and its sweeper."""

from procrastinate.contrib.django import app

from tarifa.kernel import batches

from . import selectors

# A relay killed mid-run (its worker SIGKILLed) is run again: it resends what the peer did not acknowledge,
# and the peer answers a message it already applied as a duplicate. Until then its `lock` would hold every
# later relay to that destination.
batches.RESUMABLE.add("federation.relay")


def relay_lock(receiver: str) -> str:
    return f"federation.relay:{receiver}"


@app.task(queue="federation", name="federation.relay")
def relay(receiver: str) -> dict:
    """Send the messages waiting for `receiver`, in stream order. Deferred by services.send with the lock and
    queueing lock `federation.relay:<receiver>`: one job runs per destination, at most one more waits."""
    from . import relay as relaying

    return relaying.run(receiver)


@app.periodic(cron="* * * * *", periodic_id="federation.sweep")
@app.task(queue="federation", name="federation.sweep", queueing_lock="federation.sweep")
def sweep(timestamp: int) -> int:
    """Every minute: a relay for every destination with messages due (a job lost with a crashed worker, a
    node added to the registry after messages for it were written). Nothing on a standalone node."""
    if not selectors.enabled():
        return 0
    from .services import _defer_relay

    return sum(1 for receiver in selectors.due_destinations() if _defer_relay(receiver))
