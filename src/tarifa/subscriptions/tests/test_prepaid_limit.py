"""A prepaid account never goes below −credit limit (issue 3): daily fees are posted only while
they fit, the rest is refused and its subscription suspended for balance; operations whose
one-time fees do not fit are refused. Postpaid accounts are not held to it here."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tarifa.catalog import services as catalog
from tarifa.kernel import clock
from tarifa.kernel.errors import DomainError
from tarifa.kernel.models import DomainEvent
from tarifa.ledger.models import Transfer
from tarifa.ledger.selectors import check_ledger
from tarifa.subscriptions import daily, services
from tarifa.subscriptions.models import ChargeRun, StatusChange, Subscription

from .helpers import ACTOR, balance, charged, customer_account, fee_transfers, make_catalog, pay, run_events

pytestmark = pytest.mark.django_db


def at(y, m, d, h=9):
    return dt.datetime(y, m, d, h, tzinfo=dt.timezone.utc)


@pytest.fixture
def world():
    with clock.travel_to(at(2025, 1, 1)) as c:
        yield c, make_catalog()


def mobile(account, tariff, n):
    return services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariff,
                                        phone_number=f"+1555{n:04d}", iccid=f"8900{n:04d}", activate=True)


def open_causes(sub):
    return set(sub.suspensions.filter(ended_at__isnull=True).values_list("cause", flat=True))


def test_two_subscriptions_only_the_first_charge_fits(world):
    c, tariffs = world
    account = customer_account()
    pay(account, "1.75")
    first, second = mobile(account, tariffs["MOB"], 1), mobile(account, tariffs["MOB"], 2)  # 0.50 a day each
    assert balance(account) == Decimal("0.75")
    c.add_days(1)
    result = daily.run(as_of=c.today(), actor="test")
    # The older subscription's 0.50 fits (0.25 left); the second's does not: refused, suspended.
    assert (result["inserted"], result["refused"], result["suspended"]) == (1, 1, 1)
    assert balance(account) == Decimal("0.25")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("active", "suspended")
    assert open_causes(second) == {"balance"}  # although 0.25 is above the tariff's suspend-below (0)
    assert DomainEvent.objects.filter(name="subscription.suspended", object_id=str(second.pk)).count() == 1
    assert charged(second) == Decimal("0.50")  # its activation day only
    assert ChargeRun.objects.get(as_of=c.today()).refused == 1
    assert check_ledger()["ok"]
    # Re-running the day posts nothing more, suspends nothing twice.
    again = daily.run(as_of=c.today(), actor="test")
    assert (again["inserted"], again["suspended"]) == (0, 0)
    assert balance(account) == Decimal("0.25")
    assert Transfer.objects.filter(kind="charge").count() == 3
    # The next day the first does not fit either; the second, suspended, is not charged.
    c.add_days(1)
    result = daily.run(as_of=c.today(), actor="test")
    assert (result["inserted"], result["refused"], result["suspended"]) == (0, 1, 1)
    first.refresh_from_db()
    assert first.status == "suspended" and balance(account) == Decimal("0.25")
    # A payment that pays one day resumes one subscription (the older), not both; the
    # other is not resumed only to be suspended again.
    pay(account, "0.30")
    run_events()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("active", "suspended")
    assert balance(account) == Decimal("0.05")
    assert DomainEvent.objects.filter(name="subscription.resumed", object_id=str(second.pk)).count() == 0
    assert list(StatusChange.objects.filter(subscription=second).values_list("to_status", flat=True)) == [
        "pending", "active", "suspended"]
    assert check_ledger()["ok"]


def test_credit_limit_5_goes_to_minus_5_and_not_beyond(world):
    c, tariffs = world
    account = customer_account(credit_limit="5")
    sub = mobile(account, tariffs["MOB"], 3)  # 0.50 today: −0.50
    for _ in range(12):
        c.add_days(1)
        daily.run(as_of=c.today(), actor="test")
        assert balance(account) >= Decimal("-5")
    sub.refresh_from_db()
    assert balance(account) == Decimal("-5.00")  # ten days: 1 … 10 January
    assert sub.status == "suspended" and open_causes(sub) == {"balance"}
    assert sorted(t.tags["period"] for t in fee_transfers(sub))[-1] == "2025-01-10"
    # A one-time fee that would cross the limit is refused with the operation; nothing is written.
    transfers = Transfer.objects.count()
    with pytest.raises(DomainError) as err:
        services.replace_sim(sub, actor=ACTOR, iccid="8999")
    assert err.value.code == "insufficient_funds" and err.value.status == 409
    assert "sim replacement fee (5 EUR) does not fit" in err.value.message
    sub.refresh_from_db()
    assert sub.iccid == "89000003" and Transfer.objects.count() == transfers
    assert check_ledger()["ok"]


def test_postpaid_accounts_are_charged_beyond_their_limit_as_before(world):
    c, tariffs = world
    account = customer_account(payment_mode="postpaid", credit_limit="1.60")
    subs = [mobile(account, tariffs["MOB"], n) for n in (4, 5, 6)]
    assert balance(account) == Decimal("-1.50")
    c.add_days(1)
    result = daily.run(as_of=c.today(), actor="test")
    # Every charge is posted, past the limit (the invoice asks for it; a prepaid account
    # would have been charged one); the thresholds then suspend (postpaid levels: 0).
    assert (result["inserted"], result["refused"], result["suspended"]) == (3, 0, 3)
    assert balance(account) == Decimal("-3.00")
    for sub in subs:
        sub.refresh_from_db()
        assert sub.status == "suspended" and sub.suspensions.get().reason == (
            "Suspended by the daily charge: balance -3.00 EUR beyond the credit limit 1.60 EUR")
    sub = services.replace_sim(subs[0], actor=ACTOR, iccid="8998")  # a one-time fee is not limited either
    assert charged(sub, "sim_replacement") == Decimal("5.00")
    assert check_ledger()["ok"]


def test_an_activation_whose_fees_do_not_fit_is_refused_and_nothing_is_written(world):
    c, tariffs = world
    account = customer_account()
    pay(account, "5.50")  # the activation fee fits, the first day (1.00) does not
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="x")
    events = DomainEvent.objects.count()
    with pytest.raises(DomainError) as err:
        services.activate_subscription(sub, actor=ACTOR)
    assert err.value.code == "insufficient_funds"
    assert "recurring fee for 2025-01-01" in err.value.message
    sub.refresh_from_db()
    assert sub.status == "pending" and not sub.tariff_periods.exists() and not sub.suspensions.exists()
    assert balance(account) == Decimal("5.50") and DomainEvent.objects.count() == events
    pay(account, "0.50")
    assert services.activate_subscription(sub, actor=ACTOR).status == "active"
    assert balance(account) == Decimal("0.00")
    with pytest.raises(DomainError) as err:  # created and activated at once: nothing of it stays
        services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="y",
                                     activate=True)
    assert err.value.code == "insufficient_funds"
    assert not Subscription.objects.filter(login="y").exists()


@pytest.fixture
def fees_tariff(world):
    c, tariffs = world
    home = tariffs["NET-31"].service
    return catalog.create_tariff(actor=ACTOR, code="NET-FEES", name="Net with fees", service=home, currency="EUR",
                                 recurring_fee="31.00", valid_from=dt.date(2024, 1, 1),
                                 one_time_fees={"reconnection": "2.00", "termination": "3.00"})


def test_a_reconnection_fee_that_does_not_fit_refuses_the_resumption(world, fees_tariff):
    c, _ = world
    account = customer_account()
    pay(account, "2.50")
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=fees_tariff, login="dun",
                                       activate=True)  # 1.00: 1.50 left
    services.suspend(sub, actor=ACTOR, cause="dunning", reason="overdue")
    with pytest.raises(DomainError) as err:
        services.resume(sub, actor=ACTOR, cause="dunning")
    assert err.value.code == "insufficient_funds" and "reconnection fee (2 EUR)" in err.value.message
    sub.refresh_from_db()
    assert sub.status == "suspended" and open_causes(sub) == {"dunning"}
    pay(account, "1.00")
    run_events()
    sub = services.resume(sub, actor=ACTOR, cause="dunning")
    assert sub.status == "active" and charged(sub, "reconnection") == Decimal("2.00")
    assert balance(account) == Decimal("0.50")  # today was charged at activation


def test_termination_is_never_refused_a_termination_fee_that_does_not_fit_is_not_charged(world, fees_tariff):
    c, _ = world
    account = customer_account()
    pay(account, "1.00")
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=fees_tariff, login="bye",
                                       activate=True)  # 1.00: nothing left
    sub = services.terminate(sub, actor=ACTOR, reason="moving")
    assert sub.status == "terminated" and charged(sub, "termination") == 0
    assert balance(account) == Decimal("0.00")
    from tarifa.audit.models import AuditEvent

    note = AuditEvent.objects.filter(object_id=str(sub.pk), action="fee_not_charged").get()
    assert "termination fee 3 EUR not charged" in note.message
    assert check_ledger()["ok"]


# --- property --------------------------------------------------------------------------------------

accounts = st.lists(st.tuples(st.decimals(min_value=0, max_value=3, places=2),  # credit limit
                              st.decimals(min_value=0, max_value=4, places=2),  # paid in
                              st.integers(1, 3)),  # subscriptions (0.50 a day each)
                    min_size=1, max_size=3)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(accounts=accounts, days=st.integers(1, 4))
def test_property_no_prepaid_account_ends_below_its_limit(world, accounts, days):
    _, tariffs = world
    with clock.travel_to(at(2025, 1, 1)) as c, transaction.atomic():
        made = []
        n = 0
        for limit, paid, count in accounts:
            account = customer_account(credit_limit=limit)
            if paid:
                pay(account, paid)
            for _ in range(count):
                n += 1
                try:
                    mobile(account, tariffs["MOB"], n)
                except DomainError as err:  # an activation that does not fit is refused whole
                    assert err.code == "insufficient_funds" and balance(account) - Decimal("0.50") < -limit
            made.append((account, limit))
        for _ in range(days):
            c.add_days(1)
            daily.run(as_of=c.today(), actor="test")
            for account, limit in made:
                assert balance(account) >= -limit
        for account, limit in made:
            # Whatever is still active was charged its day; whatever could not pay is suspended.
            for sub in Subscription.objects.filter(billing_account=account, status="active"):
                assert fee_transfers(sub).filter(tags__period=str(c.today())).exists()
        assert check_ledger()["ok"]
        transaction.set_rollback(True)
