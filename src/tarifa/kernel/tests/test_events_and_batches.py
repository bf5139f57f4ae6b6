"""`kernel.dispatch_events`: many events in one job, each handled on its own; a failing one is retried
in a job of its own and the others are handled. `kernel.retry_stalled_jobs`: a dead worker's job requeued."""

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


@pytest.mark.django_db
def test_a_dead_workers_batch_job_goes_back_to_the_queue():
    """`kernel.retry_stalled_jobs`: a job of a resumable task whose worker stopped beating is todo again;
    a live worker's job and a job of another task are left alone."""
    from django.db import connection

    from tarifa.kernel.batches import RESUMABLE, retry_stalled
    from tarifa.kernel.tasks import dispatch_event

    assert "kernel.dispatch_events" in RESUMABLE and "kernel.dispatch_event" not in RESUMABLE
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '5 minutes'),"
                       " (now()) RETURNING id")
        dead, live = (r[0] for r in cursor.fetchall())
    stalled = dispatch_events.defer(event_ids="")
    working = dispatch_events.defer(event_ids="")
    other = dispatch_event.defer(event_id="00000000-0000-0000-0000-000000000000")
    with connection.cursor() as cursor:
        for job, worker in ((stalled, dead), (working, live), (other, dead)):
            cursor.execute("UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE id = %s", [worker, job])
    assert retry_stalled() == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, status FROM procrastinate_jobs WHERE id = ANY(%s)", [[stalled, working, other]])
        assert dict(cursor.fetchall()) == {stalled: "todo", working: "doing", other: "doing"}
