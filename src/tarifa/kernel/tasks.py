from procrastinate.contrib.django import app

from . import batches
from .events import handle
from .models import DomainEvent


@app.task(queue="events", retry=5, name="kernel.dispatch_event")
def dispatch_event(event_id: str):
    event = DomainEvent.objects.filter(pk=event_id).first()
    if event is not None:
        handle(event)



batches.RESUMABLE.add("kernel.dispatch_events")  # each event is handled once (handled_at)


@app.task(queue="events", name="kernel.dispatch_events")
def dispatch_events(event_ids: str):
    """Handle many events in one job (a bill run's batch: one job per 500 invoices, not one each);
    `event_ids` comma-separated (a plain string: cheap to queue). Each event is handled on its own
    (`handle`: its transaction, handled once); an event whose handler fails gets a job of its own
    (`kernel.dispatch_event`, with its retries) and the others go on."""
    import logging

    for event_id in filter(None, event_ids.split(",")):
        event = DomainEvent.objects.filter(pk=event_id).first()
        if event is None:
            continue
        try:
            handle(event)
        except Exception:  # noqa: BLE001 — retried alone
            logging.getLogger(__name__).exception("event %s failed; retried in a job of its own", event_id)
            dispatch_event.defer(event_id=str(event_id))


@app.periodic(cron="* * * * *", periodic_id="kernel.retry_stalled_jobs")
@app.task(queue="events", name="kernel.retry_stalled_jobs", queueing_lock="kernel.retry_stalled_jobs")
def retry_stalled_jobs(timestamp: int):
    """Every minute: a bill run's or daily charge's batch job whose worker died goes back to the queue
    (its batch is pending again: the dead worker's transaction was rolled back)."""
    from .batches import retry_stalled

    retry_stalled()
