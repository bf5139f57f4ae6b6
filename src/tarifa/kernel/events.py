"""Domain events through the outbox (rule 2: upward effects travel as events).

`emit()` writes the event in the caller's transaction; after commit a job hands it
to the handlers that apps subscribed with `@subscribe("name")`. Handlers must be
idempotent: an event is retried until every handler succeeds.
"""

from collections import defaultdict
from collections.abc import Callable

from django.db import transaction

from .models import DomainEvent

_handlers: dict[str, list[Callable]] = defaultdict(list)


def subscribe(name: str):
    def register(func):
        if func not in _handlers[name]:
            _handlers[name].append(func)
        return func

    return register


def emit(name: str, *, obj=None, payload: dict | None = None) -> DomainEvent:
    event = DomainEvent.objects.create(
        name=name,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        payload=payload or {},
    )
    if _handlers.get(name):
        from tarifa.kernel.tasks import dispatch_event

        # Enqueued in the same transaction: the job exists iff the event does.
        dispatch_event.defer(event_id=str(event.id))
    return event


def handle(event: DomainEvent) -> None:
    from .clock import now

    with transaction.atomic():
        locked = DomainEvent.objects.select_for_update().get(pk=event.pk)
        if locked.handled_at:
            return
        for handler in _handlers.get(locked.name, []):
            handler(locked)
        locked.handled_at = now()
        locked.attempts += 1
        locked.save(update_fields=["handled_at", "attempts"])
