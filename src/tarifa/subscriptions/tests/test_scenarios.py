"""The operator's stories, with a moving clock (STYLE.md: Kill Bill's clock tests)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command

from tarifa.catalog import services as catalog
from tarifa.kernel import clock
from tarifa.kernel.models import DomainEvent
from tarifa.ledger.selectors import check_ledger
from tarifa.subscriptions import daily, services
from tarifa.subscriptions.models import StatusChange, Subscription

from .helpers import ACTOR, balance, charged, customer_account, fee_transfers, make_catalog, pay, run_events

pytestmark = pytest.mark.django_db


def at(y, m, d, h=9):
    return dt.datetime(y, m, d, h, tzinfo=dt.timezone.utc)


def charge_day(c):
    return daily.run(as_of=c.today(), actor="test")


def test_prepaid_subscriber_activated_mid_month_charged_daily_warned_suspended_pays_and_resumes():
    with clock.travel_to(at(2025, 1, 1)) as c:
        tariffs = make_catalog()
        account = customer_account()  # prepaid, credit limit 0: the balance never goes below 0
        pay(account, "20.00")
        c.add_days(14)  # 15 January, mid-month
        sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"],
                                           login="ivan", activate=True)
        # Activation fee and the 15th's share of the month (31.00 / 31 days = 1.00 a day).
        assert sub.status == "active" and sub.activated_on == dt.date(2025, 1, 15)
        assert charged(sub, "activation") == Decimal("5.00")
        assert charged(sub, "recurring") == Decimal("1.00")
        assert balance(account) == Decimal("14.00")
        warnings = 0
        suspended_on = None
        lowest = balance(account)
        for _ in range(20):
            c.add_days(1)
            result = charge_day(c)
            lowest = min(lowest, balance(account))
            sub.refresh_from_db()
            warnings = DomainEvent.objects.filter(name="account.low_balance").count()
            if sub.status == "suspended":
                suspended_on = c.today()
                break
        # Warned once when the balance went below 5.00, not every day after.
        assert warnings == 1
        # 14.00 lasts 14 days (16th … 29th). On the 30th the day's 1.00 does not fit the
        # limit: it is refused (nothing written) and the service is suspended at once.
        assert suspended_on == dt.date(2025, 1, 30)
        assert (result["inserted"], result["refused"], result["suspended"]) == (0, 1, 1)
        assert balance(account) == Decimal("0.00") and lowest >= 0
        assert "2025-01-30" not in {t.tags["period"] for t in fee_transfers(sub, "recurring")}
        suspension = sub.suspensions.get()
        assert suspension.cause == "balance" and suspension.reason == (
            "Suspended by the daily charge: balance 0.00 EUR below the day's fee 1.00 EUR (2025-01-30)")
        assert DomainEvent.objects.filter(name="subscription.suspended", object_id=str(sub.pk)).count() == 1
        # Suspended whole days are not charged, and the refused day is not caught up.
        c.add_days(1)
        charge_day(c)  # 31 January
        c.add_days(1)
        charge_day(c)  # 1 February
        assert balance(account) == Decimal("0.00")
        # Pays at the cash desk on 1 February at noon: resumed at once (the event's job).
        c.add(dt.timedelta(hours=3))
        pay(account, "30.00")
        run_events()
        sub.refresh_from_db()
        assert sub.status == "active"
        assert DomainEvent.objects.filter(name="subscription.resumed", object_id=str(sub.pk)).count() == 1
        # Resumed on 1 February: that day is charged at resumption (31.00 / 28 days).
        assert balance(account) == Decimal("30.00") - Decimal("1.107143")
        changes = list(StatusChange.objects.filter(subscription=sub).values_list("to_status", flat=True))
        assert changes == ["pending", "active", "suspended", "active"]
        # Running the day again charges nothing twice.
        before = balance(account)
        charge_day(c)
        assert balance(account) == before
        # 30, 31 January were never charged; every other day once.
        days = sorted(t.tags["period"] for t in fee_transfers(sub, "recurring"))
        assert days == [f"2025-01-{d}" for d in range(15, 30)] + ["2025-02-01"]
    assert check_ledger()["ok"]


def test_price_version_change_on_the_15th_applies_from_the_15th():
    with clock.travel_to(at(2025, 3, 1)) as c:
        tariffs = make_catalog()
        account = customer_account(payment_mode="postpaid", credit_limit="1000")
        sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"],
                                           login="p", activate=True)
        catalog.create_price_version(actor=ACTOR, tariff=tariffs["NET-31"], valid_from=dt.date(2025, 3, 15),
                                     recurring_fee="62.00")
        c.add_days(30)  # 31 March
        charge_day(c)  # catches up 2 … 31 March in one run
        days = {t.tags["period"]: t.amount for t in fee_transfers(sub, "recurring")}
        assert len(days) == 31
        assert days["2025-03-14"] == Decimal("1.00")
        assert days["2025-03-15"] == Decimal("2.00")
        assert charged(sub, "recurring") == Decimal("14.00") + Decimal("34.00")
    assert check_ledger()["ok"]


def test_postpaid_organization_changes_one_tariff_mid_month_and_terminates_another():
    with clock.travel_to(at(2025, 1, 1)) as c:
        tariffs = make_catalog()
        account = customer_account(kind="organization", payment_mode="postpaid", credit_limit="500")
        net = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"],
                                           login="acme", activate=True)
        mob = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["MOB"],
                                           phone_number="+15550001", iccid="8901000000000000001", activate=True)
        tv = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["TV"],
                                          smart_card="SC-1", activate=True)
        assert charged(tv) == Decimal("10.00")  # not prorated: the whole month on its first day
        c.add_days(14)
        charge_day(c)  # 15 January
        # Tariff change on the 16th, prorated by day: 15 days at 1.00, then 2.00 a day.
        c.add_days(1)
        with pytest.raises(Exception) as err:
            services.change_tariff(net, actor=ACTOR, tariff=tariffs["MOB"])
        assert err.value.code == "tariff_other_service"
        net = services.change_tariff(net, actor=ACTOR, tariff=tariffs["NET-62"])
        assert net.tariff.code == "NET-62"
        assert charged(net, "tariff_change") == Decimal("1.00")
        # Terminate mobile on the 20th with its final charges.
        c.add_days(4)
        mob = services.terminate(mob, actor=ACTOR, reason="not needed")
        assert mob.status == "terminated" and mob.terminated_on == dt.date(2025, 1, 20)
        assert charged(mob) == Decimal("0.50") * 20
        c.add_days(11)  # 31 January
        charge_day(c)
        assert charged(net, "recurring") == Decimal("15.00") + Decimal("2.00") * 16
        assert charged(mob) == Decimal("10.00")  # nothing after termination
        assert charged(tv) == Decimal("10.00")
        c.add_days(1)
        charge_day(c)  # 1 February: the TV month
        assert charged(tv) == Decimal("20.00")
        # Postpaid: charges accumulate (the account owes), service stays within the credit limit.
        net.refresh_from_db()
        assert net.status == "active"
        assert balance(account) < 0
        # The number is free again for another subscription.
        other = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["MOB"],
                                             phone_number="+15550001")
        assert other.status == "pending"
    assert check_ledger()["ok"]


def test_running_a_day_twice_and_catching_up_missed_days():
    with clock.travel_to(at(2025, 1, 1)) as c:
        tariffs = make_catalog()
        account = customer_account(payment_mode="postpaid", credit_limit="1000")
        sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["MOB"],
                                           phone_number="+15550101555", activate=True)
        c.add_days(1)
        charge_day(c)
        first = charge_day(c)
        assert first["inserted"] == 0
        c.add_days(5)  # days 3..6 missed
        call_command("billing", "charge", "--as-of", str(c.today()))
        assert charged(sub) == Decimal("0.50") * 7
        assert sorted(t.tags["period"] for t in fee_transfers(sub))[-1] == "2025-01-07"
    assert check_ledger()["ok"]


def test_sql_charges_equal_the_pure_rules():
    """The set-based charge and fees.py agree, day by day, on a varied history."""
    from tarifa.subscriptions import charging, fees

    with clock.travel_to(at(2025, 1, 1)) as c:
        tariffs = make_catalog()
        account = customer_account(payment_mode="postpaid", credit_limit="10000")
        tv = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["TV"],
                                          smart_card="S1", activate=True)
        services.add_item(tv, actor=ACTOR, package=tariffs["TV"].price_versions.get().channel_prices.get().package)
        net = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"],
                                           login="n", activate=True)
        c.add_days(3)
        services.suspend(net, actor=ACTOR, cause="operator", reason="check")
        c.add_days(4)
        services.resume(net, actor=ACTOR, cause="operator")
        services.change_tariff(net, actor=ACTOR, tariff=tariffs["NET-62"], effective=c.today() + dt.timedelta(days=3))
        first, last = dt.date(2025, 1, 1), dt.date(2025, 3, 10)
        rows = charging.preview(first=first, last=last)
        sql = {r["idempotency_key"]: r["amount"] for r in rows}
        from tarifa.ledger.models import Transfer

        posted = set(Transfer.objects.values_list("idempotency_key", flat=True))
        expected = {}
        for sub in (tv, net):
            sub.refresh_from_db()
            view = _view(sub)
            for ch in fees.charges_due(view, _tariffs(), first, last, already=posted):
                expected[ch.key] = ch.amount
        assert sql == expected


def _tariffs():
    from tarifa.catalog.models import Tariff
    from tarifa.subscriptions import fees

    out = {}
    for t in Tariff.objects.all():
        versions = tuple(fees.PriceVersionView(v.valid_from, v.recurring_fee,
                                               {p.item_code: p.amount for p in v.channel_prices.all()})
                         for v in t.price_versions.all())
        out[t.code] = fees.TariffView(t.code, t.period, t.proration, t.charge_suspended_days, versions)
    return out


def _view(sub):
    from tarifa.subscriptions import fees

    return fees.SubscriptionView(
        id=str(sub.pk), activated_on=sub.activated_on, terminated_on=sub.terminated_on,
        periods=tuple((p.tariff.code, p.valid_from, p.valid_until) for p in sub.tariff_periods.all()),
        suspensions=tuple((s.started_on, s.ended_on) for s in sub.suspensions.all()),
        items=tuple((i.code, i.added_on, i.removed_on) for i in sub.items.all()))


def test_subscription_numbers_and_identifiers(db):
    with clock.travel_to(at(2025, 1, 1)):
        tariffs = make_catalog()
        account = customer_account()
        sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["MOB"],
                                           phone_number="+15550100001", iccid="111")
        assert sub.number.startswith("HQ-S")
        assert Subscription.objects.count() == 1
