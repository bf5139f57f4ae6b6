import pytest


@pytest.fixture
def ledger_ok(db):
    """Asserts every ledger invariant (selectors.check_ledger) after the test."""
    yield
    from tarifa.ledger.selectors import check_ledger

    report = check_ledger()
    assert report["ok"], report["problems"]
