"""Work split into batches that any number of workers take: the lease is a row lock.

A long run (a bill run, a daily charge) records its batches as rows of a table of its app
(`id`, `run_id`, `seq`, `done`, `attempts`, `result`, `finished_at`) and defers one job per batch.
A worker takes a batch by locking its row in the transaction that does the batch's work and
marks it done in that same transaction, so:

- a batch is done exactly once (its work and its `done` commit together; a second taker sees
  it done, or waits on the lock and then sees it done);
- a worker that dies (even SIGKILL) loses its connection, PostgreSQL rolls its transaction
  back and releases the lock (`client_connection_check_interval` makes the server notice a
  vanished client during a long statement too), and the batch is pending again;
- a worker whose own batch is done or taken goes on with any pending batch of the run that
  nobody holds (SKIP LOCKED), then waits on the locks of the batches still in hand; if their
  holder dies, it takes them over. Stalled jobs are also retried by `kernel.retry_stalled_jobs`.

`claim()` returns a batch id locked in the caller's transaction, or None when every batch of
the run is done.
"""

from django.db import connection

# How often a backend checks that its client is still there while a statement runs.
CLIENT_CHECK = "2s"


def session_setup() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SET client_connection_check_interval = '{CLIENT_CHECK}'")


def claim(table: str, run_id, *, prefer=None, wait=True):
    """Lock one pending batch of `run_id` in the current transaction: `prefer` if it is pending
    and free, else any pending free batch (lowest seq first), else — with `wait` — the first
    pending batch someone else holds, waiting for its lock (re-checked once held: its holder
    may have finished it). None when no batch of the run is pending."""
    with connection.cursor() as cursor:
        if prefer is not None:
            cursor.execute(f"SELECT id FROM {table} WHERE id = %s AND NOT done FOR UPDATE SKIP LOCKED", [prefer])
            row = cursor.fetchone()
            if row:
                return _taken(cursor, table, row[0])
        cursor.execute(f"SELECT id FROM {table} WHERE run_id = %s AND NOT done ORDER BY seq LIMIT 1"
                       " FOR UPDATE SKIP LOCKED", [run_id])
        row = cursor.fetchone()
        if row:
            return _taken(cursor, table, row[0])
        if not wait:
            return None
        while True:
            cursor.execute(f"SELECT id FROM {table} WHERE run_id = %s AND NOT done ORDER BY seq LIMIT 1", [run_id])
            row = cursor.fetchone()
            if row is None:
                return None
            # Wait for the holder: it commits the batch (done) or dies (the lock is released).
            cursor.execute(f"SELECT id FROM {table} WHERE id = %s AND NOT done FOR UPDATE", [row[0]])
            row = cursor.fetchone()
            if row:
                return _taken(cursor, table, row[0])


def _taken(cursor, table, batch_id):
    cursor.execute(f"UPDATE {table} SET attempts = attempts + 1 WHERE id = %s", [batch_id])
    return batch_id


def finish(table: str, batch_id, result: dict) -> None:
    import json

    from tarifa.kernel.clock import now

    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET done = TRUE, result = %s::jsonb, finished_at = %s WHERE id = %s",
                       [json.dumps(result), now(), batch_id])


def pending(table: str, run_id) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table} WHERE run_id = %s AND NOT done", [run_id])
        return cursor.fetchone()[0]


# Tasks whose jobs may be run again when their worker died (idempotent: batches above).
RESUMABLE: set[str] = set()
STALLED_AFTER_S = 30  # a worker's heartbeat is every 10 s (procrastinate's defaults)

# `superseded`: a job with the same queueing lock already waits (it does the same work), so the stalled one
# cannot go back to the queue (one waiting job per queueing lock) and is not needed: it is ended as aborted,
# which also releases its `lock` for the waiting one.
STALLED_SQL = """
SELECT j.id, j.queueing_lock IS NOT NULL AND EXISTS (
         SELECT 1 FROM procrastinate_jobs t WHERE t.queueing_lock = j.queueing_lock AND t.status = 'todo')
FROM procrastinate_jobs j LEFT JOIN procrastinate_workers w ON w.id = j.worker_id
WHERE j.status = 'doing' AND j.task_name = ANY(%s)
  AND (w.id IS NULL OR w.last_heartbeat < now() - make_interval(secs => %s))
"""


def retry_stalled(seconds: float = STALLED_AFTER_S) -> int:
    """Jobs of RESUMABLE tasks whose worker stopped beating (died) go back to the queue (or end, when the same
    work already waits in the queue)."""
    from procrastinate.contrib.django import app

    from tarifa.kernel.clock import now

    with connection.cursor() as cursor:
        cursor.execute(STALLED_SQL, [sorted(RESUMABLE), seconds])
        rows = cursor.fetchall()
    for job_id, superseded in rows:
        if superseded:
            with connection.cursor() as cursor:
                cursor.execute("SELECT procrastinate_finish_job_v1(%s, 'aborted', false)", [job_id])
        else:
            app.job_manager.retry_job_by_id(job_id, retry_at=now())
    return len(rows)
