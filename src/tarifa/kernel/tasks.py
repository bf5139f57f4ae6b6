from procrastinate.contrib.django import app

from .events import handle
from .models import DomainEvent


@app.task(queue="events", retry=5, name="kernel.dispatch_event")
def dispatch_event(event_id: str):
    event = DomainEvent.objects.filter(pk=event_id).first()
    if event is not None:
        handle(event)


@app.periodic(cron="* * * * *", periodic_id="kernel.retry_stalled_jobs")
@app.task(queue="events", name="kernel.retry_stalled_jobs", queueing_lock="kernel.retry_stalled_jobs")
def retry_stalled_jobs(timestamp: int):
    """Every minute: a bill run's or daily charge's batch job whose worker died goes back to the queue
    (its batch is pending again: the dead worker's transaction was rolled back)."""
    from .batches import retry_stalled

    retry_stalled()
