"""Fixtures shared by every test. Tests run on real PostgreSQL: the embedded server under
./var/ unless TEST_DATABASE_URL is given (see settings._database_url)."""

pytest_plugins = ["tarifa.testing.fixtures", "tarifa.testing.processes", "tarifa.testing.invariants"]


def pytest_configure(config):
    # The translations (.po → .mo) are build output: compiled here for a run without `make test`.
    from tarifa.kernel.msgfmt import compile_all

    compile_all()
