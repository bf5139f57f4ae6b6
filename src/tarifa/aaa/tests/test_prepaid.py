"""RADIUS prepaid against the real server and radclient: the Access-Accept grants what a charging
reservation holds, Interim-Updates debit, Stop settles, an empty balance is rejected, an exhausted
one disconnected; flat-rate subscribers reserve nothing."""

import datetime as dt
from decimal import Decimal

import pytest

from tarifa.aaa import prepaid, services, usage
from tarifa.aaa.coa_models import CoaAttempt
from tarifa.aaa.models import AuthAttempt, FinishedSession
from tarifa.aaa.nas_listener import NasListener
from tarifa.catalog import services as catalog
from tarifa.charging.models import ChargingSession, Reservation
from tarifa.ledger.models import Hold
from tarifa.ledger.selectors import check_ledger
from tarifa.rating import services as rating
from tarifa.rating.engine import SECOND
from tarifa.rating.tests.helpers import make_plan
from tarifa.subscriptions import services as subscriptions
from tarifa.subscriptions.tests.helpers import balance, customer_account, make_catalog, pay

from .helpers import ACTOR, SECRET, radclient, running_server, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

MB = 10**6


@pytest.fixture
def world(settings):
    """Data at 0.01 per whole MB (rating's usage-test plan, subject MOB) on a rated internet tariff
    without a fee; internet time at 0.36 an hour (0.0001 a second); a MikroTik NAS."""
    from tarifa.testing.demo import restore_migration_rows

    restore_migration_rows()  # the built-in usage types, flushed by an earlier transactional test
    settings.TARIFA_AAA_PREPAID_BYTES = 100 * MB
    settings.TARIFA_AAA_PREPAID_TIME = 3600
    settings.TARIFA_AAA_PREPAID_USAGE_TYPES = ["data"]
    plan = make_plan()
    tenant = plan["tenant"]
    rating.create_usage_type(actor=ACTOR, code="internet_time", name="Internet time", measure="time")
    hourly = rating.create_rate(actor=ACTOR, tenant=tenant, code="R_HOUR", slots=[
        {"price": "0.36", "rate_unit": "3600s", "rate_increment": "1s"}])
    rating.create_destination_rate(actor=ACTOR, tenant=tenant, code="DR_HOUR", destination=None, rate=hourly,
                                   rounding_method="*up", rounding_decimals=4)
    time_plan = rating.create_rating_plan(actor=ACTOR, tenant=tenant, code="RP_TIME",
                                          bindings=[{"destination_rate_code": "DR_HOUR"}])
    rating.create_rating_profile(actor=ACTOR, tenant=tenant, category="internet_time", subject="MOB",
                                 activation_time=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), rating_plan=time_plan)
    tariffs = make_catalog()
    metered = catalog.create_tariff(actor=ACTOR, code="NET-PRE", name="Net prepaid", service=tariffs["NET-31"].service,
                                    currency="EUR", recurring_fee="0", valid_from=dt.date(2024, 1, 1))
    rating.create_tariff_rating(actor=ACTOR, tariff=metered, tenant=tenant, subject="MOB")
    for tariff in (metered, tariffs["NET-31"]):
        services.create_profile(actor=ACTOR, name=tariff.code, tariff=tariff, rate_down_kbps=20_000,
                                rate_up_kbps=5_000, interim_interval=60)
    return {"metered": metered, "flat": tariffs["NET-31"]}


def _subscriber(tariff, login, funds):
    account = customer_account(payment_mode="prepaid")
    if Decimal(funds):
        pay(account, funds)
    sub = subscriptions.create_subscription(actor=ACTOR, billing_account=account, tariff=tariff, login=login,
                                            password="wonderland", activate=True)
    return account, sub


def _nas(nas_type="mikrotik", coa_port=3799):
    return services.create_nas(actor=ACTOR, name="BRAS", ip_address="127.0.0.1", secret=SECRET, type=nas_type,
                               coa_port=coa_port)


def _auth(server, login, extra=""):
    return radclient(server, "auth", f"User-Name = {login}, User-Password = wonderland, {extra}"
                                     "Message-Authenticator = 0x00")


def _acct(server, status, login, sid, **counters):
    attrs = "".join(f", {name.replace('_', '-')} = {value}" for name, value in counters.items())
    out = radclient(server, "acct", f'Acct-Status-Type = {status}, User-Name = {login}, Acct-Session-Id = "{sid}"'
                                    f"{attrs}")
    assert "Received Accounting-Response" in out, out
    return out


def _open_holds():
    return Hold.objects.filter(state=Hold.State.PENDING).count()


def test_data_quota_on_mikrotik_interim_debits_stop_settles_and_rating_does_not_charge_again(world):
    account, sub = _subscriber(world["metered"], "alice", "100")
    _nas()
    start = balance(account)
    with running_server() as server:
        assert server.snapshot.subscribers["alice"].prepaid
        # No Acct-Session-Id in the Access-Request: the session is bound at its Accounting-Start.
        out = _auth(server, "alice")
        assert "Received Access-Accept" in out, out
        assert "Mikrotik-Total-Limit = 100000000" in out and "Mikrotik-Total-Limit-Gigawords = 0" in out, out
        assert 'Mikrotik-Rate-Limit = "5000k/20000k"' in out  # the profile still applies
        session = ChargingSession.objects.get(origin="radius")
        assert session.external_id.startswith("127.0.0.1/auth:alice:") and session.usage_type == "data"
        assert Reservation.objects.get(session=session, state="open").amount == Decimal("1.00")
        account.ledger_account.refresh_from_db()
        assert account.ledger_account.available == start - 1

        _acct(server, "Start", "alice", "m1", Acct_Interim_Interval=60)
        session.refresh_from_db()
        assert session.external_id == "127.0.0.1/m1"
        _acct(server, "Interim-Update", "alice", "m1", Acct_Input_Octets=10 * MB, Acct_Output_Octets=20 * MB,
              Acct_Session_Time=60)
        session.refresh_from_db()
        assert session.used_units == 30 * MB and session.charged == Decimal("0.30")
        # The next slice: what the NAS still allows of its 100 MB.
        assert Reservation.objects.get(session=session, state="open").units == 70 * MB
        assert balance(account) == start - Decimal("0.30")
        _acct(server, "Stop", "alice", "m1", Acct_Input_Octets=15 * MB, Acct_Output_Octets=30 * MB,
              Acct_Session_Time=90, Acct_Terminate_Cause="User-Request")
        wait_for(lambda: AuthAttempt.objects.filter(login="alice").exists(), what="the authentication log")
    session.refresh_from_db()
    assert session.state == "closed" and session.used_units == 45 * MB and session.charged == Decimal("0.45")
    assert not Reservation.objects.filter(state="open").exists() and _open_holds() == 0
    assert balance(account) == start - Decimal("0.45")
    attempt = AuthAttempt.objects.get(login="alice")
    assert attempt.outcome == "accept" and attempt.reason.startswith("prepaid: 100000000 bytes of data reserved")
    # The finished session is not rated offline as well.
    assert FinishedSession.objects.get().acct_session_id == "m1"
    summary = usage.charge_finished_sessions(actor=ACTOR)
    assert (summary["online"], summary["sent"]) == (1, 0)
    assert balance(account) == start - Decimal("0.45")
    assert check_ledger()["ok"]


def test_time_quota_is_the_session_timeout_from_the_reservation(world, settings):
    settings.TARIFA_AAA_PREPAID_USAGE_TYPES = ["internet_time", "data"]
    account, _sub = _subscriber(world["metered"], "carol", "0.10")  # 0.10 at 0.0001 a second: 1000 s
    _nas(nas_type="generic")
    start = balance(account)
    with running_server() as server:
        out = _auth(server, "carol", 'Acct-Session-Id = "t1", ')
        assert "Received Access-Accept" in out, out
        assert "Session-Timeout = 1000" in out, out
        session = ChargingSession.objects.get(external_id="127.0.0.1/t1")
        assert session.usage_type == "internet_time" and session.final_unit
        _acct(server, "Start", "carol", "t1")
        _acct(server, "Interim-Update", "carol", "t1", Acct_Session_Time=120)
        session.refresh_from_db()
        assert session.used_units == 120 * SECOND and session.charged == Decimal("0.012")
        assert Reservation.objects.get(session=session, state="open").units == 880 * SECOND
        _acct(server, "Stop", "carol", "t1", Acct_Session_Time=300)
    session.refresh_from_db()
    assert session.state == "closed" and session.charged == Decimal("0.03")
    assert balance(account) == start - Decimal("0.03") and _open_holds() == 0
    assert check_ledger()["ok"]


def test_no_balance_is_rejected_and_a_flat_rate_subscriber_reserves_nothing(world):
    _subscriber(world["metered"], "dave", "0")
    flat_account, _flat = _subscriber(world["flat"], "erin", "100")  # prepaid, daily fee, no rating
    _nas()
    with running_server() as server:
        assert not server.snapshot.subscribers["erin"].prepaid
        out = _auth(server, "dave", 'Acct-Session-Id = "d1", ')
        assert "Received Access-Reject" in out, out
        out = _auth(server, "erin", 'Acct-Session-Id = "e1", ')
        assert "Received Access-Accept" in out, out
        assert "Mikrotik-Total-Limit" not in out and "Session-Timeout" not in out
        _acct(server, "Start", "erin", "e1")
        _acct(server, "Stop", "erin", "e1", Acct_Output_Octets=50 * MB, Acct_Session_Time=60)
        wait_for(lambda: AuthAttempt.objects.count() == 2, what="the authentication log")
    assert AuthAttempt.objects.get(login="dave").reason == prepaid.EXHAUSTED
    assert AuthAttempt.objects.get(login="erin").reason == ""
    assert ChargingSession.objects.get().state == "refused"  # dave's, nothing held
    assert _open_holds() == 0 and check_ledger()["ok"]


def test_an_exhausted_balance_at_an_interim_update_disconnects_the_session(world):
    from tarifa.testing.processes import run_worker_in_thread

    account, _sub = _subscriber(world["metered"], "frank", "0.50")  # 50 MB of the 100 asked
    with NasListener(secret=SECRET) as listener:
        _nas(coa_port=listener.port)
        with running_server() as server:
            out = _auth(server, "frank", 'Acct-Session-Id = "f1", ')
            assert "Mikrotik-Total-Limit = 50000000" in out, out
            _acct(server, "Start", "frank", "f1")
            _acct(server, "Interim-Update", "frank", "f1", Acct_Output_Octets=50 * MB, Acct_Session_Time=60)
            run_worker_in_thread("--one-shot", "--queues", "aaa")
            (got,) = listener.wait_for(1)
            assert got.kind == "disconnect" and got.attributes["Acct-Session-Id"] == "f1"
            _acct(server, "Stop", "frank", "f1", Acct_Output_Octets=50 * MB, Acct_Session_Time=61)
    attempt = CoaAttempt.objects.get()
    assert (attempt.reason, attempt.outcome) == ("balance", "ack")
    assert balance(account) == Decimal("0.00") and _open_holds() == 0
    assert ChargingSession.objects.get().charged == Decimal("0.50")
    assert check_ledger()["ok"]
