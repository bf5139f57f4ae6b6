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
