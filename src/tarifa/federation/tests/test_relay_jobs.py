"""A relay job whose worker died (SIGKILL) does not hold its destination's lock for good."""

import pytest


@pytest.mark.django_db
def test_a_dead_workers_relay_job_is_retried_or_ended_when_the_same_work_already_waits():
    """A relay killed with its worker holds `federation.relay:<code>` (the lock): retry_stalled_jobs puts it
    back in the queue, or — when a relay for the same destination already waits (one waiting job per queueing
    lock) — ends it as aborted, which frees the lock for the waiting one."""
    from django.db import connection

    from tarifa.federation.tasks import relay, relay_lock
    from tarifa.kernel.batches import RESUMABLE, retry_stalled

    assert "federation.relay" in RESUMABLE
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '5 minutes') "
                       "RETURNING id")
        dead = cursor.fetchone()[0]
    alone = relay.configure(lock=relay_lock("B7"), queueing_lock=relay_lock("B7")).defer(receiver="B7")
    killed = relay.configure(lock=relay_lock("B8"), queueing_lock=relay_lock("B8")).defer(receiver="B8")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE id = ANY(%s)",
                       [dead, [alone, killed]])
    waiting = relay.configure(lock=relay_lock("B8"), queueing_lock=relay_lock("B8")).defer(receiver="B8")
    assert retry_stalled() == 2
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, status FROM procrastinate_jobs WHERE id = ANY(%s)", [[alone, killed, waiting]])
        assert dict(cursor.fetchall()) == {alone: "todo", killed: "aborted", waiting: "todo"}
