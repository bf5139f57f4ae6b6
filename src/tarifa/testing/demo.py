"""The demo data set for a whole test module: loaded once, in a transaction rolled back at the end."""

import contextlib

from django.db import transaction


@contextlib.contextmanager
def demo_loaded(django_db_blocker):
    """Use in a module-scoped fixture: `with demo_loaded(django_db_blocker): yield`."""
    from tarifa.web.demo_loader import load_demo

    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            load_demo(actor="demo")
            yield
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


def restore_migration_rows():
    """Re-create the rows migrations create (the built-in usage types): a transactional test run
    earlier in the same database flushed them, and the demo data needs them."""
    import importlib

    from django.apps import apps

    importlib.import_module("tarifa.rating.migrations.0002_usage_types").create(apps, None)
