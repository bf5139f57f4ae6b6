"""Subscription events and reconciliation reach the NAS (the test NAS listener)."""

import datetime as dt

import pytest
from django.core.management import call_command

from tarifa.aaa import coa_services
from tarifa.aaa.models import CoaAttempt, Nas, Profile, ReconciliationRun, Session
from tarifa.aaa.nas_listener import NasListener
from tarifa.kernel.clock import now
from tarifa.subscriptions import services as subs
from tarifa.subscriptions.tests.helpers import customer_account, make_catalog, pay, run_events

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "nas-secret"


@pytest.fixture(autouse=True)
def fast_coa(settings):
    settings.TARIFA_AAA_COA_TIMEOUT = 0.3
    settings.TARIFA_AAA_COA_ATTEMPTS = 3


@pytest.fixture
def nas_listener():
    with NasListener(secret=SECRET) as listener:
        yield listener


@pytest.fixture
def world(nas_listener):
    tariffs = make_catalog()
    Profile.objects.create(name="Net 31", tariff=tariffs["NET-31"], rate_down_kbps=51200, rate_up_kbps=10240,
                           when_suspended=Profile.WhenSuspended.REJECT)
    Profile.objects.create(name="Net 62", tariff=tariffs["NET-62"], rate_down_kbps=102400, rate_up_kbps=20480)
    nas = Nas.objects.create(name="bras-1", ip_address="127.0.0.1", secret=SECRET, type=Nas.Type.MIKROTIK,
                             coa_port=nas_listener.port)
    account = customer_account()
    pay(account, "100")
    sub = subs.create_subscription(actor="test", billing_account=account, tariff=tariffs["NET-31"], login="alice",
                                   activate=True)
    return {"tariffs": tariffs, "nas": nas, "sub": sub, "nas_listener": nas_listener}


def open_session(nas, sub=None, *, login="alice", sid="S1", ip="10.0.0.7", started=None):
    started = started or now()
    return Session.objects.create(nas=nas, acct_session_id=sid, subscription=sub, login=login, framed_ip=ip,
                                  started_at=started, updated_at=started)


def run_aaa_jobs():
    """What the workers do: the events, then the aaa queue's jobs."""
    from tarifa.testing.processes import run_worker_in_thread

    run_events()
    run_worker_in_thread("--one-shot", "--queues", "aaa")


def test_suspension_sends_a_disconnect_request_to_the_nas(world):
    listener, sub = world["nas_listener"], world["sub"]
    session = open_session(world["nas"], sub)
    subs.suspend(sub, actor="test", cause="operator", reason="test")
    run_aaa_jobs()
    (got,) = listener.wait_for(1)
    assert got.kind == "disconnect" and got.authenticator_ok and got.message_authenticator_ok
    assert got.attributes["User-Name"] == "alice" and got.attributes["Acct-Session-Id"] == "S1"
    assert got.attributes["Framed-IP-Address"] == "10.0.0.7"
    (logged,) = CoaAttempt.objects.all()
    assert (logged.kind, logged.reason, logged.outcome, logged.session_id) == ("disconnect", "suspended", "ack",
                                                                               session.pk)
    assert logged.attributes["Acct-Session-Id"] == "S1" and logged.subscription_id == sub.pk


def test_retry_on_timeout_each_attempt_logged(world):
    listener, sub = world["nas_listener"], world["sub"]
    listener.script = ["silent", "ack"]
    open_session(world["nas"], sub)
    subs.terminate(sub, actor="test", reason="moved away")
    run_aaa_jobs()
    listener.wait_for(2)
    rows = list(CoaAttempt.objects.order_by("attempt"))
    assert [(r.attempt, r.outcome) for r in rows] == [(1, "timeout"), (2, "ack")]
    assert len({r.request_id for r in rows}) == 1 and rows[0].reason == "terminated"


def test_nak_handled_and_recorded(world):
    listener, sub = world["nas_listener"], world["sub"]
    listener.default = ("nak", 503)
    open_session(world["nas"], sub)
    subs.suspend(sub, actor="test", cause="operator", reason="test")
    run_aaa_jobs()
    (row,) = CoaAttempt.objects.all()
    assert row.outcome == "nak" and row.error_cause == 503
    assert row.error_cause_text == "503 Session Context Not Found"


def test_tariff_change_sends_coa_with_the_new_speed(world):
    listener, sub = world["nas_listener"], world["sub"]
    session = open_session(world["nas"], sub)
    subs.change_tariff(sub, actor="test", tariff=world["tariffs"]["NET-62"])
    run_aaa_jobs()
    (got,) = listener.wait_for(1)
    assert got.kind == "coa" and got.attributes["Mikrotik-Rate-Limit"] == "20480k/102400k"
    row = CoaAttempt.objects.get()
    assert row.granted == "normal:102400/20480" and row.outcome == "ack"
    # In step now: nothing more to send, by the handler or by reconciliation.
    assert coa_services.bring_in_step(sub.pk, reason="tariff_changed") == []
    run = coa_services.reconcile(actor="test")
    assert (run.checked, run.differences) == (1, 0)
    assert session.pk


def test_pay_first_profile_gets_a_coa_not_a_disconnect(world):
    listener, sub = world["nas_listener"], world["sub"]
    Profile.objects.filter(tariff=world["tariffs"]["NET-31"]).update(
        when_suspended=Profile.WhenSuspended.PAY_FIRST, pay_first_rate_down_kbps=256, pay_first_rate_up_kbps=128)
    open_session(world["nas"], sub)
    subs.suspend(sub, actor="test", cause="operator", reason="test")
    run_aaa_jobs()
    (got,) = listener.wait_for(1)
    assert got.kind == "coa" and got.attributes["Mikrotik-Rate-Limit"] == "128k/256k"
    subs.resume(sub, actor="test", cause="operator", reason="paid")
    run_aaa_jobs()
    got = listener.wait_for(2)[1]
    assert got.kind == "coa" and got.attributes["Mikrotik-Rate-Limit"] == "10240k/51200k"


def test_reconciliation_finds_and_disconnects_a_session_that_should_not_exist(world, capsys):
    listener, sub, nas = world["nas_listener"], world["sub"], world["nas"]
    open_session(nas, None, login="mallory", sid="X1", ip="10.0.0.66")  # nobody's login
    assert coa_services.reconcile(actor="test").differences == 1       # found while alice is in step
    listener.wait_for(1)
    open_session(nas, sub, sid="OK1")
    stale = open_session(nas, sub, sid="OLD", started=now() - dt.timedelta(hours=1))
    # A suspension whose event never reached the NAS (the events were not run): the subscription is
    # suspended, its sessions are online.
    subs.suspend(sub, actor="test", cause="operator", reason="test")
    CoaAttempt.objects.all().delete()
    ReconciliationRun.objects.all().delete()
    listener.received.clear()
    call_command("aaa", "reconcile")
    out = capsys.readouterr().out
    import json

    report = json.loads(out)
    assert report["checked"] == 3 and report["differences"] == 3 and report["disconnected"] == 3
    disconnected = {r.attributes["Acct-Session-Id"] for r in listener.wait_for(3)}
    assert disconnected == {"OK1", "X1", "OLD"}  # mallory again: her Stop never came
    problems = {f["acct_session_id"]: f["problem"] for f in report["findings"]}
    assert "no subscription has the login 'mallory'" in problems["X1"]
    assert "suspended" in problems["OLD"]
    run = ReconciliationRun.objects.get()
    assert run.disconnected == 3 and run.failed == 0
    assert CoaAttempt.objects.filter(reason="reconciliation", outcome="ack").count() == 3
    # Acknowledged: a second run right away does not disconnect them again (their Stop is on its way).
    again = coa_services.reconcile(actor="test")
    assert again.differences == 0
    assert stale.pk


def test_a_session_older_than_the_history_moves_pools_by_disconnect(world):
    """A session that started before the subscription's recorded life cycle (imported sessions, a NAS
    that kept a session across a migration) had what the first recorded change started from; moving it
    into the pay-first profile with another pool is a Disconnect-Request."""
    listener, sub = world["nas_listener"], world["sub"]
    Profile.objects.filter(tariff=world["tariffs"]["NET-31"]).update(
        when_suspended=Profile.WhenSuspended.PAY_FIRST, ip_pool="home", pay_first_pool="pay-first",
        pay_first_rate_down_kbps=256, pay_first_rate_up_kbps=128)
    open_session(world["nas"], sub, started=now() - dt.timedelta(days=2))
    subs.suspend(sub, actor="test", cause="operator", reason="test")
    run_aaa_jobs()
    (got,) = listener.wait_for(1)
    assert got.kind == "disconnect"
    assert CoaAttempt.objects.get().kind == "disconnect"
