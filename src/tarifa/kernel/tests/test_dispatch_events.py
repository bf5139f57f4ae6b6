"""`kernel.dispatch_events`: many events in one job, each handled on its own; a failing one is retried
in a job of its own and the others are handled."""

import pytest

from tarifa.kernel import events
from tarifa.kernel.models import DomainEvent
from tarifa.kernel.tasks import dispatch_events


@pytest.mark.django_db
def test_one_job_handles_many_events_and_isolates_a_failing_one(monkeypatch):
    from procrastinate.contrib.django.models import ProcrastinateJob

    seen = []

    def handler(event):
        if event.payload.get("n") == 2:
            raise RuntimeError("boom")
        seen.append(event.payload["n"])

    monkeypatch.setitem(events._handlers, "test.many", [handler])
    made = [DomainEvent.objects.create(name="test.many", payload={"n": n}) for n in range(4)]
    before = ProcrastinateJob.objects.filter(task_name="kernel.dispatch_event").count()
    dispatch_events(event_ids=",".join(str(e.pk) for e in made))
    assert sorted(seen) == [0, 1, 3]
    handled = dict(DomainEvent.objects.filter(pk__in=[e.pk for e in made]).values_list("payload__n", "handled_at"))
    assert handled[2] is None and all(handled[n] for n in (0, 1, 3))
    retry = ProcrastinateJob.objects.filter(task_name="kernel.dispatch_event").order_by("-id")
    assert retry.count() == before + 1 and retry.first().args == {"event_id": str(made[2].pk)}
    dispatch_events(event_ids=",".join(str(e.pk) for e in made))  # again: nothing handled twice
    assert sorted(seen) == [0, 1, 3]
