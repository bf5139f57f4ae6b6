"""Subscriptions: bad input writes nothing; voluntary suspension, promises, SIM and number; API and screens."""

import datetime as dt
from decimal import Decimal

import pytest

from tarifa.catalog import services as catalog
from tarifa.kernel import clock
from tarifa.kernel.errors import DomainError
from tarifa.ledger import services as ledger
from tarifa.subscriptions import daily, services
from tarifa.subscriptions.models import StatusChange, Subscription, Suspension

from .helpers import ACTOR, balance, charged, customer_account, make_catalog, pay, run_events

pytestmark = pytest.mark.django_db


def at(y, m, d, h=9):
    return dt.datetime(y, m, d, h, tzinfo=dt.timezone.utc)


@pytest.fixture
def world():
    with clock.travel_to(at(2025, 1, 1)) as c:
        tariffs = make_catalog()
        account = customer_account(payment_mode="postpaid", credit_limit="100")
        yield c, tariffs, account


def test_overlapping_identifiers_are_refused_and_nothing_is_written(world):
    c, tariffs, account = world
    services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["MOB"], phone_number="+15550100100",
                                 iccid="89001")
    count = Subscription.objects.count()
    for ident in ({"phone_number": "+15550100100"}, {"iccid": "89001", "phone_number": "+15550100200"}):
        with pytest.raises(DomainError) as err:
            services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["MOB"], **ident)
        assert err.value.code == "identifier_in_use" and err.value.status == 409
    assert Subscription.objects.count() == count
    # An identifier the service type does not use is refused.
    with pytest.raises(DomainError) as err:
        services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["MOB"], login="x")
    assert err.value.code == "identifier_not_used"


def test_the_database_refuses_duplicates_among_live_subscriptions(world):
    from django.db import IntegrityError, transaction

    c, tariffs, account = world
    a = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["MOB"], phone_number="+15550100001")
    b = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["MOB"], phone_number="+15550100002")
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscription.objects.filter(pk=b.pk).update(phone_number="+15550100001")
    services.terminate(a, actor=ACTOR)
    Subscription.objects.filter(pk=b.pk).update(phone_number="+15550100001")  # free once the other is terminated


def test_activation_on_a_closed_account_is_refused(world):
    c, tariffs, _account = world
    account = customer_account()
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="c")
    ledger.close_account(account, actor=ACTOR, reason="left")
    with pytest.raises(DomainError) as err:
        services.activate_subscription(sub, actor=ACTOR)
    assert err.value.code == "account_closed"
    sub.refresh_from_db()
    assert sub.status == "pending" and not sub.tariff_periods.exists()
    account.refresh_from_db()
    with pytest.raises(DomainError):
        services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="d")


def test_a_future_tariff_change_applies_on_its_day_and_other_service_is_refused(world):
    c, tariffs, account = world
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="f",
                                       activate=True)
    with pytest.raises(DomainError) as err:
        services.change_tariff(sub, actor=ACTOR, tariff=tariffs["TV"])
    assert err.value.code == "tariff_other_service"
    with pytest.raises(DomainError) as err:
        services.change_tariff(sub, actor=ACTOR, tariff=tariffs["NET-62"], effective=dt.date(2024, 12, 31))
    assert err.value.code == "backdated_change"
    services.change_tariff(sub, actor=ACTOR, tariff=tariffs["NET-62"], effective=dt.date(2025, 1, 11))
    sub.refresh_from_db()
    assert sub.tariff.code == "NET-31"
    c.add_days(10)  # 11 January
    daily.run(as_of=c.today())
    sub.refresh_from_db()
    assert sub.tariff.code == "NET-62"
    assert charged(sub, "recurring") == Decimal("10.00") + Decimal("2.00")


def test_voluntary_suspension_for_a_fee_not_charged_meanwhile_and_ends_as_planned(world):
    c, tariffs, account = world
    catalog.create_price_version(actor=ACTOR, tariff=tariffs["NET-31"], valid_from=dt.date(2025, 1, 2),
                                 recurring_fee="31.00", one_time_fees={"voluntary_suspension": "2.00"})
    c.add_days(1)
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="v",
                                       activate=True)
    with pytest.raises(DomainError) as err:
        services.suspend(sub, actor=ACTOR, cause="customer_request", planned_end=c.today() + dt.timedelta(days=365))
    assert err.value.code == "suspension_too_long"
    services.suspend(sub, actor=ACTOR, cause="customer_request", reason="holiday",
                     planned_end=dt.date(2025, 1, 10))
    assert charged(sub, "voluntary_suspension") == Decimal("2.00")
    for _ in range(9):
        c.add_days(1)
        daily.run(as_of=c.today())
    sub.refresh_from_db()
    assert sub.status == "active"  # ended on the 10th as planned
    # Charged the 2nd (activation day); 3rd…9th suspended whole days; the 10th charged again.
    periods = sorted(t.tags["period"] for t in sub_transfers(sub))
    assert periods == ["2025-01-02", "2025-01-10", "2025-01-11"]


def sub_transfers(sub):
    from .helpers import fee_transfers

    return fee_transfers(sub, "recurring")


def test_blocking_causes_resume_only_when_all_are_cleared(world):
    c, tariffs, account = world
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="b",
                                       activate=True)
    services.suspend(sub, actor=ACTOR, cause="operator", reason="check")
    services.suspend(sub, actor=ACTOR, cause="dunning", reason="overdue")
    with pytest.raises(DomainError):
        services.suspend(sub, actor=ACTOR, cause="operator")
    sub = services.resume(sub, actor=ACTOR, cause="operator")
    assert sub.status == "suspended"
    sub = services.resume(sub, actor=ACTOR, cause="dunning")
    assert sub.status == "active"
    assert list(StatusChange.objects.filter(subscription=sub).values_list("to_status", flat=True)) == [
        "pending", "active", "suspended", "active"]


def test_promised_payment_resumes_then_expiry_suspends_again():
    with clock.travel_to(at(2025, 1, 1)) as c:
        tariffs = make_catalog()
        account = customer_account()
        pay(account, "6.00")
        sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="pp",
                                           activate=True)  # 5.00 activation + 1.00: nothing left
        c.add_days(1)
        daily.run(as_of=c.today())
        sub.refresh_from_db()
        assert sub.status == "suspended"  # the 2nd's 1.00 was refused
        services.grant_promised_payment(account, actor=ACTOR)
        sub.refresh_from_db()
        assert sub.status == "active"
        # While the promise lasts its 20.00 are credit on top of the limit: the day is charged.
        assert balance(account) == Decimal("-1.00")
        with pytest.raises(DomainError) as err:
            services.grant_promised_payment(account, actor=ACTOR)
        assert err.value.code == "promised_payment_too_soon"
        for _ in range(2):
            c.add_days(1)
            daily.run(as_of=c.today())
        assert balance(account) == Decimal("-3.00")
        c.add_days(1)
        c.add(dt.timedelta(hours=1))  # 5 January 10:00: the promise expired at 9:00, unpaid
        daily.run(as_of=c.today())
        sub.refresh_from_db()
        assert sub.status == "suspended"
        assert Suspension.objects.filter(subscription=sub, cause="balance", ended_at__isnull=True).exists()
        # Back to the normal limit: nothing more is charged while the promised debt is open.
        assert balance(account) == Decimal("-3.00")


def test_sim_replacement_and_number_change_charge_their_fees(world):
    c, tariffs, account = world
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["MOB"],
                                       phone_number="+15550100300", iccid="89100", activate=True)
    other = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["MOB"],
                                         phone_number="+15550100301", iccid="89101")
    with pytest.raises(DomainError) as err:
        services.replace_sim(sub, actor=ACTOR, iccid="89101")
    assert err.value.code == "identifier_in_use"
    sub = services.replace_sim(sub, actor=ACTOR, iccid="89102", imsi="001")
    assert sub.iccid == "89102" and charged(sub, "sim_replacement") == Decimal("5.00")
    sub = services.change_number(sub, actor=ACTOR, phone_number="+15550100302")
    assert sub.phone_number == "+15550100302" and charged(sub, "number_change") == Decimal("4.00")
    assert other.phone_number == "+15550100301"


def test_api_life_cycle(world, admin_user, api):
    c, tariffs, account = world
    client = api(admin_user)
    r = client.post("/api/v1/subscriptions/", {"billing_account": account.number, "tariff": "NET-31",
                                               "login": "api-user"}, format="json")
    assert r.status_code == 201, r.json()
    sid = r.json()["id"]
    assert r.json()["status"] == "pending"
    assert client.post(f"/api/v1/subscriptions/{sid}/activate/").json()["status"] == "active"
    r = client.post(f"/api/v1/subscriptions/{sid}/suspend/", {"cause": "operator", "reason": "x"}, format="json")
    assert r.json()["status"] == "suspended" and r.json()["open_causes"] == ["operator"]
    r = client.post(f"/api/v1/subscriptions/{sid}/resume/", {"cause": "operator"}, format="json")
    assert r.json()["status"] == "active"
    r = client.post(f"/api/v1/subscriptions/{sid}/change-tariff/", {"tariff": "MOB"}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "tariff_other_service"
    r = client.post("/api/v1/subscriptions/", {"billing_account": account.number, "tariff": "NET-31",
                                               "login": "api-user"}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "identifier_in_use"
    r = client.post(f"/api/v1/subscriptions/{sid}/terminate/", {"reason": "bye"}, format="json")
    assert r.json()["status"] == "terminated"
    r = client.post("/api/v1/billing/charge/", {"as_of": "2025-01-01"}, format="json")
    assert r.status_code == 200 and "inserted" in r.json()


def test_api_shows_the_life_cycle_history_and_the_tariff_periods(world, admin_user, api, make_user):
    c, tariffs, account = world
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="hist",
                                       activate=True)
    services.suspend(sub, actor=ACTOR, cause="operator", reason="cable cut")
    services.resume(sub, actor=ACTOR, cause="operator", reason="repaired")
    services.change_tariff(sub, actor=ACTOR, tariff=tariffs["NET-62"], effective=c.today() + dt.timedelta(days=5))
    client = api(admin_user)
    r = client.get(f"/api/v1/subscription-status-changes/?subscription={sub.pk}")
    assert r.status_code == 200, r.json()
    rows = [(x["from_status"], x["to_status"], x["cause"], x["reason"], x["actor"]) for x in r.json()["results"]]
    assert rows == [("", "pending", "", "created", ACTOR), ("pending", "active", "", "activated", ACTOR),
                    ("active", "suspended", "operator", "cable cut", ACTOR),
                    ("suspended", "active", "operator", "repaired", ACTOR)]
    r = client.get(f"/api/v1/tariff-periods/?subscription={sub.pk}")
    periods = [(x["tariff"], x["valid_from"], x["valid_until"]) for x in r.json()["results"]]
    assert periods == [("NET-31", "2025-01-01", "2025-01-06"), ("NET-62", "2025-01-06", None)]
    viewer = api(make_user("subscriptions.view_subscription"))
    assert viewer.get("/api/v1/subscription-status-changes/").status_code == 403


def test_customer_page_panel_and_activate_action(world, admin_user, staff_client):
    c, tariffs, account = world
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="ui")
    http = staff_client(admin_user)
    page = http.get(f"/crm/customer/{account.customer_id}/")
    assert page.status_code == 200
    assert sub.number.encode() in page.content and b'data-action="activate"' in page.content
    r = http.post(f"/subscriptions/subscription/{sub.pk}/do/activate/")
    assert r.status_code == 302
    sub.refresh_from_db()
    assert sub.status == "active"
    assert http.get(f"/subscriptions/subscription/{sub.pk}/").status_code == 200
    r = http.post("/subscriptions/charge/", {"as_of": "2025-01-01"})
    assert r.status_code == 200


def test_payment_event_resumes_through_the_handler(world):
    c, tariffs, _ = world
    account = customer_account()
    pay(account, "6.00")
    sub = services.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="r",
                                       activate=True)  # 5.00 + 1.00
    c.add_days(1)
    daily.run(as_of=c.today())
    sub.refresh_from_db()
    assert sub.status == "suspended"  # the 2nd's 1.00 did not fit
    pay(account, "10.00")
    run_events()  # the first payment's event is handled too: nothing to resume then
    sub.refresh_from_db()
    assert sub.status == "active"
    assert balance(account) == Decimal("10.00") - Decimal("1.00")


def test_new_subscription_from_the_customer_page_is_created(world, make_user, staff_client):
    """Issue 10 item 1: the form showed only Parameters and Note, Save answered 500."""
    from tarifa.testing.forms import initial_post_data

    c, tariffs, account = world
    http = staff_client(make_user("subscriptions.add_subscription", "crm.view_customer",
                                  "subscriptions.view_subscription", password=None))
    page = http.get(f"/crm/customer/{account.customer_id}/").content.decode()
    link = f"/subscriptions/subscription/add/?billing_account={account.pk}"
    assert link in page
    form = http.get(link).context["form"]
    assert {"billing_account", "tariff", "login", "activate"} <= set(form.fields)
    assert form["billing_account"].value() == str(account.pk)
    r = http.post(link, initial_post_data(form, tariff=str(tariffs["NET-31"].pk), login="form-user",
                                          activate="on"))
    assert r.status_code == 302, r.context["form"].errors
    sub = Subscription.objects.get(login="form-user")
    assert (sub.billing_account_id, sub.tariff_id, sub.status) == (account.pk, tariffs["NET-31"].pk, "active")
    assert r["Location"] == f"/subscriptions/subscription/{sub.pk}/"
