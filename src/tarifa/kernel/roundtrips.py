"""Fewer round trips to PostgreSQL on hot paths."""

from contextlib import contextmanager

from django.db import connection


@contextmanager
def one_round_trip():
    """Send the statements run inside without waiting for each one's answer (psycopg's pipeline
    mode): writes whose results nobody reads go to the server together and are answered together
    when the block ends (or earlier, when a statement's rows are read). A transaction block
    (`transaction.atomic`) that ends inside sends its RELEASE or COMMIT in the same batch.

    An error is raised, as Django's database error, at the latest when the block ends: use it for
    writes that are not expected to fail, where nothing inside acts on an error.
    """
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.pipeline():
        yield


def pipeline_safe_job_queue() -> None:
    """Let jobs be deferred inside `one_round_trip` (a domain event emitted there queues its dispatch job).
    procrastinate's Django connector reads `cursor.description` before fetching the rows; in psycopg's
    pipeline mode a statement's description exists only once its result was fetched, so the defer failed
    with "'NoneType' object is not iterable". Fetching first gives the same rows outside pipeline mode."""
    from procrastinate.contrib.django.django_connector import DjangoConnector

    if getattr(DjangoConnector._dictfetch, "tarifa_pipeline_safe", False):
        return

    def _dictfetch(self, cursor):
        rows = cursor.fetchall()
        columns = [col[0] for col in cursor.description]
        return (dict(zip(columns, row)) for row in rows)

    _dictfetch.tarifa_pipeline_safe = True
    DjangoConnector._dictfetch = _dictfetch
