"""Issue 10 (operable end to end), the subscriptions' items: tariff-change parameters (6),
fees charged past a termination or suspension reversed (7), the suspension reason's
balance at the moment of the suspension (8), every status transition in the audit trail
(9), the charge preview (guard rail), identifiers normalised before uniqueness (16)."""

import datetime as dt
from decimal import Decimal

import pytest

from tarifa.audit.models import AuditEvent
from tarifa.catalog import services as catalog
from tarifa.kernel import clock
from tarifa.kernel.errors import DomainError
from tarifa.ledger.models import Transfer
from tarifa.ledger.selectors import check_ledger
from tarifa.subscriptions import daily, services
from tarifa.subscriptions.models import ChargeRun, StatusChange, Subscription, Suspension

from .helpers import ACTOR, balance, charged, customer_account, make_catalog, pay, run_events

pytestmark = pytest.mark.django_db


def at(y, m, d, h=9):
    return dt.datetime(y, m, d, h, tzinfo=dt.timezone.utc)


@pytest.fixture
def world():
    with clock.travel_to(at(2025, 1, 1)) as c:
        yield c, make_catalog()


def audit(sub, **filters):
    return AuditEvent.objects.filter(object_type="subscriptions.subscription", object_id=str(sub.pk), **filters)


# Item 6: a tariff change takes the new tariff's fixed parameters -----------------------------

def speed_tariffs():
    home = catalog.create_service_type(actor=ACTOR, code="fiber", name="Fiber", category="internet",
                                       identifier_kinds=["login"])
    service = catalog.create_service(actor=ACTOR, code="fiber", name="Fiber", service_type=home)
    made = {}
    for code, speed, fee in (("F500", "500", "50.00"), ("F100", "100", "20.00")):
        tariff = catalog.create_tariff(actor=ACTOR, code=code, name=code, service=service, currency="EUR",
                                       recurring_fee=fee, valid_from=dt.date(2024, 1, 1))
        catalog.create_parameter(actor=ACTOR, tariff=tariff, code="speed", label="Speed", kind="integer",
                                        value=speed, unit="Mbit/s")
        made[code] = tariff
    # An open parameter the 500 tariff offers with choices the 100 tariff narrows.
    catalog.create_parameter(actor=ACTOR, tariff=made["F500"], code="ipv6", label="IPv6", kind="choice",
                                    choices=["yes", "no", "dual"], required=False)
    catalog.create_parameter(actor=ACTOR, tariff=made["F100"], code="ipv6", label="IPv6", kind="choice",
                                    choices=["yes", "no"], required=False)
    catalog.create_parameter(actor=ACTOR, tariff=made["F500"], code="vlan", label="VLAN", kind="integer",
                                    required=False)
    catalog.create_parameter(actor=ACTOR, tariff=made["F100"], code="vlan", label="VLAN", kind="integer",
                                    required=False)
    return made


def test_tariff_change_today_takes_the_new_fixed_parameters(world):
    c, _ = world
    t = speed_tariffs()
    account = customer_account()
    pay(account, "500")
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["F500"], login="fast1",
                                       parameters={"ipv6": "dual", "vlan": "12"}, activate=True)
    assert sub.parameters == {"speed": "500", "ipv6": "dual", "vlan": "12"}
    sub = services.change_tariff(sub, actor=ACTOR, tariff=t["F100"])
    # speed fixed by the new tariff; vlan still valid, kept; ipv6 "dual" no longer a choice, dropped.
    assert sub.parameters == {"speed": "100", "vlan": "12"}
    event = audit(sub, action="change_tariff").get()
    assert event.changes["parameters"][1] == {"speed": "100", "vlan": "12"}


def test_scheduled_tariff_change_takes_the_new_fixed_parameters(world):
    c, _ = world
    t = speed_tariffs()
    account = customer_account()
    pay(account, "500")
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["F500"], login="fast2",
                                       parameters={"vlan": "7"}, activate=True)
    services.change_tariff(sub, actor=ACTOR, tariff=t["F100"], effective=dt.date(2025, 1, 10))
    sub.refresh_from_db()
    assert sub.parameters["speed"] == "500"  # not yet
    c.add_days(9)
    daily.run(as_of=c.today(), actor="system:daily")
    sub.refresh_from_db()
    assert sub.tariff_id == t["F100"].pk
    assert sub.parameters == {"speed": "100", "vlan": "7"}


# Item 7: fees charged past a termination / suspension are reversed ---------------------------

def test_termination_reverses_fees_charged_for_later_days(world):
    c, t = world
    account = customer_account()
    pay(account, "100")
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["MOB"],
                                       phone_number="+15550199001", activate=True)  # 0.50 a day
    daily.run(as_of=dt.date(2025, 1, 12), actor="system:daily")  # charged ahead, through the 12th
    assert charged(sub) == Decimal("6.00")  # 1st … 12th
    before = balance(account)
    c.add_days(4)  # the 5th
    sub = services.terminate(sub, actor=ACTOR, reason="moving away")
    reversals = Transfer.objects.filter(kind="reversal", reference_id=str(sub.pk))
    assert sorted(r.tags["period"] for r in reversals) == [f"2025-01-{d:02d}" for d in range(6, 13)]
    assert all(r.reverses.kind == "charge" and r.amount == Decimal("0.50") for r in reversals)
    assert all("terminated on 2025-01-05" in r.memo for r in reversals)
    assert balance(account) == before + Decimal("3.50")
    # What the subscription paid in the end: the 1st to the 5th.
    net = charged(sub) - sum(r.amount for r in reversals)
    assert net == Decimal("2.50")
    event = audit(sub, action="fees_reversed").get()
    assert "3.50 EUR" in event.message and "2025-01-06" in event.message
    assert check_ledger()["ok"]
    # Terminating is final: nothing is reversed twice (a second call is refused).
    with pytest.raises(DomainError):
        services.terminate(sub, actor=ACTOR)
    assert Transfer.objects.filter(kind="reversal", reference_id=str(sub.pk)).count() == 7


def test_suspension_reverses_days_charged_ahead_and_resumption_charges_them_again(world):
    c, t = world
    account = customer_account()
    pay(account, "100")
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["MOB"],
                                       phone_number="+15550199002", activate=True)
    daily.run(as_of=dt.date(2025, 1, 12), actor="system:daily")
    c.add_days(4)  # the 5th
    services.suspend(sub, actor=ACTOR, cause="operator", reason="fraud check")
    reversed_days = sorted(r.tags["period"] for r in Transfer.objects.filter(kind="reversal",
                                                                             reference_id=str(sub.pk)))
    assert reversed_days == [f"2025-01-{d:02d}" for d in range(6, 13)]
    assert check_ledger()["ok"]
    c.add_days(3)  # the 8th: resumed; the 8th … 12th (already run) are charged again
    services.resume(sub, actor=ACTOR, cause="operator", reason="cleared")
    live = {tr.tags["period"] for tr in Transfer.objects.filter(kind="charge", reference_id=str(sub.pk),
                                                                  reversals__isnull=True)}
    assert live == {f"2025-01-{d:02d}" for d in (1, 2, 3, 4, 5, 8, 9, 10, 11, 12)}
    c.add_days(5)  # the 13th: the daily run goes on from the 13th, nothing twice
    daily.run(as_of=c.today(), actor="system:daily")
    assert Transfer.objects.filter(kind="charge", reference_id=str(sub.pk), tags__period="2025-01-12").count() == 2
    assert check_ledger()["ok"]


def test_suspension_on_a_tariff_charging_suspended_days_reverses_nothing(world):
    c, t = world
    tariff = catalog.create_tariff(actor=ACTOR, code="MOB-S", name="Mobile charged when suspended",
                                   service=t["MOB"].service, currency="EUR", period="day", recurring_fee="0.50",
                                   valid_from=dt.date(2024, 1, 1), charge_suspended_days=True)
    account = customer_account()
    pay(account, "100")
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariff,
                                       phone_number="+15550199003", activate=True)
    daily.run(as_of=dt.date(2025, 1, 12), actor="system:daily")
    c.add_days(4)
    services.suspend(sub, actor=ACTOR, cause="operator")
    assert not Transfer.objects.filter(kind="reversal").exists()


# Items 8 and 9: the suspension's figures and the audit trail of automatic transitions ---------

def test_daily_charge_suspension_names_the_balance_at_that_moment_and_is_audited(world):
    c, t = world
    account = customer_account()
    pay(account, "5.63")
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["MOB"],
                                       phone_number="+15550199004", activate=True)  # 0.50 a day
    assert balance(account) == Decimal("5.13")
    c.add_days(11)  # catch up the 2nd … 12th in one run: ten days fit (0.13 left), the 12th does not
    result = daily.run(as_of=c.today(), actor="system:daily")
    assert result["refused"] >= 1 and result["suspended"] == 1
    assert balance(account) == Decimal("0.13")
    sub.refresh_from_db()
    assert sub.status == "suspended"
    reason = sub.suspensions.get().reason
    assert reason.startswith("Suspended by the daily charge: balance 0.13 EUR below the day's fee 0.50 EUR")
    assert "5.13" not in reason
    change = sub.status_changes.get(to_status="suspended")
    assert change.reason == reason and change.actor == "system:daily"
    event = audit(sub, action="suspended").get()
    assert event.actor_label == "system:daily" and event.message == reason
    assert event.changes["status"] == ["active", "suspended"]
    # A payment resumes it: audited too, with the actor of the payment handler.
    pay(account, "10")
    run_events()
    sub.refresh_from_db()
    assert sub.status == "active"
    resumed = audit(sub, action="resume").get()
    assert resumed.actor_label == "system:payment"
    assert resumed.message.startswith("Resumed by a payment: funds 10.13 EUR")
    assert resumed.changes["status"] == ["suspended", "active"]


def test_threshold_suspension_is_audited_in_the_currency_units(world):
    c, t = world
    tariff = catalog.create_tariff(actor=ACTOR, code="NET-T", name="Net with a threshold", service=t["NET-31"].service,
                                   currency="EUR", period="day", recurring_fee="1.00", valid_from=dt.date(2024, 1, 1),
                                   suspend_below="5", resume_at="5")
    account = customer_account()
    pay(account, "10")
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariff, login="th1",
                                       activate=True)  # 9.00 left
    c.add_days(5)  # 4.00 left: below the suspend level 5
    daily.run(as_of=c.today(), actor="system:daily")
    sub.refresh_from_db()
    assert sub.status == "suspended"
    event = audit(sub, action="suspended").get()
    assert event.message == "Suspended by the daily charge: funds 4.00 EUR below the suspend level 5.00 EUR"
    assert sub.suspensions.get().reason == event.message
    # Every transition of the life cycle table is in the audit trail.
    transitions = StatusChange.objects.filter(subscription=sub).exclude(from_status="").count()
    assert audit(sub, action__in=["active", "suspended", "resume", "terminated"]).count() == transitions == 2


def test_audit_events_api_lists_automatic_transitions(world, admin_user, api):
    c, t = world
    account = customer_account()
    pay(account, "0.50")
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["MOB"],
                                       phone_number="+15550199005", activate=True)
    c.add_days(1)
    daily.run(as_of=c.today(), actor="system:daily")
    response = api(admin_user).get(f"/api/v1/audit-events/?object_id={sub.pk}")
    assert response.status_code == 200
    body = response.json()
    rows = body["results"] if isinstance(body, dict) else body
    assert any(r["action"] == "suspended" and r["message"].startswith("Suspended by the daily charge")
               for r in rows)


# Guard rail: the charge preview writes nothing --------------------------------------------------

def test_preview_counts_charges_totals_and_suspensions_and_writes_nothing(world):
    c, t = world
    rich, poor = customer_account(), customer_account()
    pay(rich, "100")
    pay(poor, "0.60")
    a = services.create_subscription(actor=ACTOR, billing_account=rich, tariff=t["MOB"],
                                     phone_number="+15550199006", activate=True)
    b = services.create_subscription(actor=ACTOR, billing_account=poor, tariff=t["MOB"],
                                     phone_number="+15550199007", activate=True)
    counts = (Transfer.objects.count(), ChargeRun.objects.count(), Suspension.objects.count(),
              AuditEvent.objects.count(), StatusChange.objects.count())
    balances = (balance(rich), balance(poor))
    c.add_days(2)
    preview = daily.preview(as_of=c.today(), actor=ACTOR)
    assert preview["charges"] == 2  # rich: the 2nd and 3rd; poor (0.10 left): both days refused
    assert preview["totals"] == {"EUR": "1.00"}
    assert preview["suspended"] == 1 and preview["refused"] == 2
    assert preview["future"] is False and preview["first_day"] == "2025-01-01"  # no run before: from the first activation
    assert (Transfer.objects.count(), ChargeRun.objects.count(), Suspension.objects.count(),
            AuditEvent.objects.count(), StatusChange.objects.count()) == counts
    assert (balance(rich), balance(poor)) == balances
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.status, b.status) == ("active", "active")
    assert daily.preview(as_of=c.today() + dt.timedelta(days=3), actor=ACTOR)["future"] is True
    # The run itself does what the preview said.
    result = daily.run(as_of=c.today(), actor=ACTOR)
    assert (result["inserted"], result["refused"], result["suspended"]) == (2, 2, 1)


def test_charge_api_dry_run(world, admin_user, api):
    c, t = world
    account = customer_account()
    pay(account, "10")
    services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["MOB"], phone_number="+15550199008",
                                 activate=True)
    c.add_days(1)
    n = Transfer.objects.count()
    response = api(admin_user).post("/api/v1/billing/charge/", {"as_of": str(c.today()), "dry_run": True},
                                    format="json")
    assert response.status_code == 200, response.content
    assert response.json()["charges"] == 1 and response.json()["totals"] == {"EUR": "0.50"}
    assert Transfer.objects.count() == n and not ChargeRun.objects.exists()


def test_charge_page_previews_then_runs_only_when_confirmed(world, admin_user, staff_client):
    c, t = world
    account = customer_account()
    pay(account, "10")
    services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["MOB"], phone_number="+15550199009",
                                 activate=True)
    c.add_days(1)
    client = staff_client(admin_user)
    n = Transfer.objects.count()
    future = c.today() + dt.timedelta(days=5)
    page = client.post("/subscriptions/charge/", {"as_of": str(future)})
    text = page.content.decode()
    assert page.status_code == 200
    assert "in the future" in text and "Confirm" in text
    assert Transfer.objects.count() == n and not ChargeRun.objects.exists()
    page = client.post("/subscriptions/charge/", {"as_of": str(c.today())})
    text = page.content.decode()
    assert "0.50 EUR" in text and "in the future" not in text
    assert Transfer.objects.count() == n
    done = client.post("/subscriptions/charge/", {"as_of": str(c.today()), "confirmed": "1"})
    assert done.status_code == 200
    assert Transfer.objects.count() == n + 1 and ChargeRun.objects.count() == 1


# Item 16: identifiers normalised before uniqueness --------------------------------------------

@pytest.fixture
def us_numbers(settings):
    settings.TARIFA_DEFAULT_COUNTRY_CODE = "1"


def test_phone_numbers_in_another_notation_are_duplicates(world, us_numbers):
    c, t = world
    account = customer_account()
    pay(account, "100")
    first = services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["MOB"],
                                         phone_number="+15550199001")
    with pytest.raises(DomainError) as err:
        services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["MOB"],
                                     phone_number="555-0199-001")
    assert err.value.code == "identifier_in_use" and first.number in err.value.message
    other = services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["MOB"],
                                         phone_number="(555) 0199 002", iccid="8901 2345 6789-0123 456")
    assert (other.phone_number, other.iccid) == ("+15550199002", "8901234567890123456")
    with pytest.raises(DomainError) as err:
        services.change_number(other, actor=ACTOR, phone_number="1 555 0199 001")
    assert err.value.code == "identifier_in_use"
    with pytest.raises(DomainError) as err:
        services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["MOB"], phone_number="call me")
    assert err.value.code == "invalid_identifier" and "phone_number" in err.value.fields


def test_without_a_default_country_code_a_national_number_is_refused(world, settings):
    c, t = world
    settings.TARIFA_DEFAULT_COUNTRY_CODE = ""
    account = customer_account()
    with pytest.raises(DomainError) as err:
        services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["MOB"], phone_number="5550199001")
    assert err.value.code == "invalid_identifier"
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["MOB"],
                                       phone_number="+44 20 7946 0018")
    assert sub.phone_number == "+442079460018"


def test_mac_addresses_in_one_notation(world):
    c, t = world
    account = customer_account()
    pay(account, "100")
    a = services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["NET-31"], login="m1",
                                     mac_address="AA-BB-CC-00-11-22")
    assert a.mac_address == "aa:bb:cc:00:11:22"
    for notation in ("aabb.cc00.1122", "AABBCC001122", "aa:bb:cc:00:11:22"):
        with pytest.raises(DomainError) as err:
            services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["NET-31"], login="m2",
                                         mac_address=notation)
        assert err.value.code == "identifier_in_use"


def test_data_migration_normalises_stored_identifiers_and_reports_what_it_leaves(world, us_numbers, capsys):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("tarifa.subscriptions.migrations.0005_normalise_identifiers")
    c, t = world
    account = customer_account()
    keep = services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["MOB"],
                                        phone_number="+15550199001")
    odd, clash, bad = (services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["MOB"],
                                                    phone_number=f"+1555019910{n}") for n in range(3))
    net = services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["NET-31"], login="old1",
                                       mac_address="aa:bb:cc:00:11:23")
    # Stored before normalisation existed, in other notations.
    Subscription.objects.filter(pk=odd.pk).update(phone_number="555-0199-002")
    Subscription.objects.filter(pk=clash.pk).update(phone_number="(555) 0199-001")
    Subscription.objects.filter(pk=bad.pk).update(phone_number="call me")
    Subscription.objects.filter(pk=net.pk).update(mac_address="AABB.CC00.1123")
    migration.forwards(apps, None)
    values = dict(Subscription.objects.values_list("pk", "phone_number"))
    assert values[keep.pk] == "+15550199001" and values[odd.pk] == "+15550199002"
    assert values[clash.pk] == "(555) 0199-001" and values[bad.pk] == "call me"  # left, and said
    assert Subscription.objects.get(pk=net.pk).mac_address == "aa:bb:cc:00:11:23"
    out = capsys.readouterr().out
    assert clash.number in out and keep.number in out and bad.number in out
    assert "2 normalised, 2 left" in out
    assert audit(clash, action="identifier_not_normalised").get().message.endswith(f"is {keep.number}'s")
    assert audit(odd, action="normalise_identifier").get().changes == {"phone_number": ["555-0199-002",
                                                                                        "+15550199002"]}


def test_planned_end_of_a_customer_request_is_counted_by_the_run_and_audited(world):
    c, t = world
    account = customer_account()
    pay(account, "100")
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=t["NET-31"], login="hol1",
                                       activate=True)
    services.suspend(sub, actor=ACTOR, cause="customer_request", reason="holiday", planned_end=dt.date(2025, 1, 5))
    c.add_days(4)
    preview = daily.preview(as_of=c.today(), actor=ACTOR)
    assert preview["resumed"] == 1
    result = daily.run(as_of=c.today(), actor="system:daily")
    assert result["resumed"] == 1
    event = audit(sub, action="resume").get()
    assert event.actor_label == "system:daily"
    assert event.message.startswith("Resumed by the daily charge: the customer's suspension reached its planned end"
                                    " 2025-01-05")
