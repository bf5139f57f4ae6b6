"""After every test that used the database, the invariants of the money and the stock hold.

The ledger's (`tarifa ledger check`), billing's documents (`billing.check.check_documents`: totals,
lines, sources and what the ledger moved, for every issued invoice) and the warehouse's
(`tarifa inventory check`) are run at the end of each such test, on what it left, before the test
database is rolled back or emptied; a test that breaks one leaves an error naming the offenders.
A test whose purpose is to show that a check finds a broken invariant says so:
`@pytest.mark.breaks_invariants("why")`.
"""

import json

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "breaks_invariants(why): breaks an invariant on purpose; not checked after")


def broken_invariants() -> dict:
    """{check name: its problems} for every check that does not hold now."""
    from tarifa.billing.check import check_documents
    from tarifa.inventory.selectors import check_inventory
    from tarifa.ledger.selectors import check_ledger

    found = {}
    for name, check in (("ledger", check_ledger), ("billing", check_documents), ("inventory", check_inventory)):
        result = check()
        if not result["ok"]:
            found[name] = result["problems"]
    return found


@pytest.fixture(autouse=True)
def invariants_hold(request):
    node = request.node
    uses_db = node.get_closest_marker("django_db") is not None or "_django_db_helper" in request.fixturenames
    if not uses_db or node.get_closest_marker("breaks_invariants") is not None:
        yield
        return
    # The test database first, so that this teardown runs before it is rolled back or flushed.
    request.getfixturevalue("_django_db_helper")
    yield
    found = broken_invariants()
    if found:
        pytest.fail("invariants broken after the test:\n" + json.dumps(found, indent=1, default=str)[:4000],
                    pytrace=False)
