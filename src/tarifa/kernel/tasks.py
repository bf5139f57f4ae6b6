from procrastinate.contrib.django import app

from .events import handle
from .models import DomainEvent


@app.task(queue="events", retry=5, name="kernel.dispatch_event")
def dispatch_event(event_id: str):
    event = DomainEvent.objects.filter(pk=event_id).first()
    if event is not None:
        handle(event)
