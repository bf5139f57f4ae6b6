import itertools

import pytest

_seq = itertools.count(1)


@pytest.fixture(autouse=True)
def ledger_ok(db):
    """Every payments test ends with the ledger's invariants holding (selectors.check_ledger)."""
    yield
    from tarifa.ledger.selectors import check_ledger

    report = check_ledger()
    assert report["ok"], report["problems"]


@pytest.fixture
def account():
    """account(currency="USD", **kwargs) -> a new customer's open billing account."""
    from tarifa.ledger.tests import factories

    def make(currency="USD", **kwargs):
        return factories.account(currency=currency, **kwargs)

    return make


@pytest.fixture
def key():
    return lambda prefix="k": f"{prefix}-{next(_seq)}"


@pytest.fixture
def cashier(make_user):
    """cashier(*extra_perms, desk=None) -> a user who operates cash desks (assigned to `desk`)."""
    from tarifa.payments import services

    def make(*perms, desk=None, username=None):
        user = make_user("payments.operate_cash_desk", "payments.view_payment", "payments.add_payment",
                         "payments.view_cashiershift", "payments.add_cashhandover", "payments.view_cashhandover",
                         "ledger.view_billingaccount", "crm.view_customer", *perms,
                         username=username or f"cashier{next(_seq)}")
        if desk is not None:
            services.update_cash_desk(desk, actor="test", cashiers=[*desk.cashiers.all(), user])
        return user

    return make


@pytest.fixture
def desk():
    """desk(code=None, currency="USD") -> a cash desk."""
    from tarifa.payments import services

    def make(code=None, currency="USD", **kwargs):
        code = code or f"D{next(_seq)}"
        return services.create_cash_desk(actor="test", code=code, name=f"Desk {code}", currency=currency, **kwargs)

    return make


def balance(acc):
    acc.ledger_account.refresh_from_db()
    return acc.ledger_account.balance
