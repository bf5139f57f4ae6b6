"""Monthly traffic caps: the capped set (selector), the cap job's CoA/Disconnect (the test NAS
listener), the normal speed back when the month turns, and the Access-Request answers (the RADIUS
server's snapshot, the rlm_rest authorize endpoint)."""

import datetime as dt

import pytest

from tarifa.aaa import coa_services, selectors, services, tasks
from tarifa.aaa.decision import decide
from tarifa.aaa.models import CoaAttempt, FinishedSession, Nas, Profile, Session
from tarifa.aaa.nas_listener import NasListener
from tarifa.kernel.clock import travel_to
from tarifa.kernel.errors import ValidationFailed
from tarifa.subscriptions import services as subs
from tarifa.subscriptions.tests.helpers import customer_account, make_catalog, pay, run_events

from .helpers import ACTOR, radclient, running_server, subscriber, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "nas-secret"
MB = 10**6
MID_DECEMBER = dt.datetime(2026, 12, 20, 12, 0, tzinfo=dt.UTC)
NEW_YEAR = dt.datetime(2027, 1, 1, 0, 10, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def fast_coa(settings):
    settings.TARIFA_AAA_COA_TIMEOUT = 0.3
    settings.TARIFA_AAA_COA_ATTEMPTS = 3


@pytest.fixture
def world():
    with NasListener(secret=SECRET) as listener:
        tariffs = make_catalog()
        capped = Profile.objects.create(name="Net 31", tariff=tariffs["NET-31"], rate_down_kbps=51200,
                                        rate_up_kbps=10240, monthly_cap_mb=1, capped_rate_down_kbps=512,
                                        capped_rate_up_kbps=256)
        Profile.objects.create(name="Net 62", tariff=tariffs["NET-62"], rate_down_kbps=102400, rate_up_kbps=20480)
        nas = Nas.objects.create(name="bras-1", ip_address="127.0.0.1", secret=SECRET, type=Nas.Type.MIKROTIK,
                                 coa_port=listener.port)
        account = customer_account()
        pay(account, "100")
        sub = subs.create_subscription(actor="test", billing_account=account, tariff=tariffs["NET-31"],
                                       login="alice", password="wonderland", activate=True)
        uncapped = subs.create_subscription(actor="test", billing_account=account, tariff=tariffs["NET-62"],
                                            login="bob", activate=True)
        run_events()
        yield {"tariffs": tariffs, "nas": nas, "sub": sub, "uncapped": uncapped, "listener": listener,
               "profile": capped}


def open_session(nas, sub, *, sid="S1", ip="10.0.0.7", bytes_out=2 * MB, started=None, updated=None):
    started = started or MID_DECEMBER - dt.timedelta(minutes=10)
    return Session.objects.create(nas=nas, acct_session_id=sid, subscription=sub, login=sub.login, framed_ip=ip,
                                  started_at=started, updated_at=updated or started + dt.timedelta(minutes=5),
                                  bytes_in=100, bytes_out=bytes_out)


def finished(nas, sub, *, sid, started, stopped, bytes_out):
    return FinishedSession.objects.create(nas=nas, acct_session_id=sid, subscription=sub, login=sub.login,
                                          started_at=started, updated_at=stopped, stopped_at=stopped,
                                          bytes_out=bytes_out)


def run_cap_job():
    """What the periodic job does: aaa.enforce_caps through a worker (queue aaa)."""
    from tarifa.testing.processes import run_worker_in_thread

    tasks.enforce_caps.defer(timestamp=0)
    run_worker_in_thread("--one-shot", "--queues", "aaa")


def test_over_the_cap_a_coa_lowers_the_speed_once_and_the_new_month_gives_it_back(world):
    listener, sub, nas = world["listener"], world["sub"], world["nas"]
    with travel_to(MID_DECEMBER) as clock:
        session = open_session(nas, sub)
        open_session(nas, world["uncapped"], sid="B1", ip="10.0.0.8", bytes_out=50 * MB)  # no cap: never touched
        assert selectors.capped_subscriptions() == {sub.pk}
        run_cap_job()
        (got,) = listener.wait_for(1)
        assert got.kind == "coa" and got.attributes["Acct-Session-Id"] == "S1"
        assert got.attributes["Mikrotik-Rate-Limit"] == "256k/512k"
        (row,) = CoaAttempt.objects.all()
        assert (row.reason, row.outcome, row.granted, row.session_id) == ("cap", "ack", "capped:512/256", session.pk)
        # In step now: a second run, reconciliation and a subscription event send nothing.
        run_cap_job()
        assert coa_services.enforce_caps(actor="test")["sessions"] == 0
        assert coa_services.reconcile(actor="test").differences == 0
        assert coa_services.bring_in_step(sub.pk, reason="resumed") == []
        assert len(listener.received) == 1 and CoaAttempt.objects.count() == 1
        # The month turns: reconciliation gives the normal speed back.
        clock.add(NEW_YEAR - MID_DECEMBER)
        assert selectors.capped_subscriptions() == set()
        run = coa_services.reconcile(actor="test")
        assert (run.checked, run.differences, run.changed) == (2, 1, 1)
        got = listener.wait_for(2)[1]
        assert got.kind == "coa" and got.attributes["Mikrotik-Rate-Limit"] == "10240k/51200k"
        assert CoaAttempt.objects.filter(reason="reconciliation").get().granted == "normal:51200/10240"
    assert not CoaAttempt.objects.filter(login="bob").exists()


def test_a_disconnecting_cap_stops_the_session_and_rejects_new_logins(world):
    listener, sub, nas = world["listener"], world["sub"], world["nas"]
    Profile.objects.filter(pk=world["profile"].pk).update(when_capped=Profile.WhenCapped.DISCONNECT)
    with travel_to(MID_DECEMBER):
        open_session(nas, sub)
        run_cap_job()
        (got,) = listener.wait_for(1)
        assert got.kind == "disconnect" and got.attributes["Acct-Session-Id"] == "S1"
        assert CoaAttempt.objects.get().reason == "cap"
        run_cap_job()  # its Stop is on its way: not disconnected again
        assert len(listener.received) == 1
        found = selectors.subscriber("alice")
        assert found.capped
        decision = decide(found, station="", open_sessions=0)
        assert (decision.accept, decision.reason) == (False, "monthly traffic cap reached")
    with travel_to(NEW_YEAR):
        assert decide(selectors.subscriber("alice"), station="", open_sessions=0).accept


def test_this_months_traffic_counts_finished_sessions_by_their_share_of_the_month(world):
    sub, nas = world["sub"], world["nas"]
    december = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with travel_to(MID_DECEMBER):
        # Last month's session: not counted; one across the month's start: the share in December
        # (1 of its 4 hours: 0.6 of 2.4 MB); this month's: all of it.
        finished(nas, sub, sid="NOV", started=december - dt.timedelta(days=3), stopped=december - dt.timedelta(days=2),
                 bytes_out=50 * MB)
        finished(nas, sub, sid="ACROSS", started=december - dt.timedelta(hours=3),
                 stopped=december + dt.timedelta(hours=1), bytes_out=2_400_000)
        assert selectors.capped_subscriptions() == set()
        finished(nas, sub, sid="DEC", started=MID_DECEMBER - dt.timedelta(hours=2),
                 stopped=MID_DECEMBER - dt.timedelta(hours=1), bytes_out=300_000)
        assert selectors.capped_subscriptions() == set()   # 0.9 MB
        open_session(nas, sub, bytes_out=100_000)           # + 0.1 MB (and 100 bytes up)
        assert selectors.capped_subscriptions() == {sub.pk}
        assert selectors.capped_subscriptions(subscription_ids=[world["uncapped"].pk]) == set()


def test_cap_settings_are_validated():
    tariffs = make_catalog()
    with pytest.raises(ValidationFailed) as err:
        services.create_profile(actor=ACTOR, name="Capped", tariff=tariffs["NET-31"], monthly_cap_mb=1000)
    assert err.value.code == "cap_incomplete"
    assert set(err.value.fields) == {"capped_rate_down_kbps", "capped_rate_up_kbps"}
    with pytest.raises(ValidationFailed) as err:
        services.create_profile(actor=ACTOR, name="Capped", tariff=tariffs["NET-31"], monthly_cap_mb=0)
    assert err.value.code == "invalid_cap" and "monthly_cap_mb" in err.value.fields
    profile = services.create_profile(actor=ACTOR, name="Capped", tariff=tariffs["NET-31"], monthly_cap_mb=1000,
                                      when_capped="disconnect")
    with pytest.raises(ValidationFailed) as err:
        services.update_profile(profile, actor=ACTOR, when_capped="throttle", capped_rate_down_kbps=1000)
    assert set(err.value.fields) == {"capped_rate_up_kbps"}
    services.update_profile(profile, actor=ACTOR, when_capped="throttle", capped_rate_down_kbps=1000,
                            capped_rate_up_kbps=500)
    profile.refresh_from_db()
    assert (profile.monthly_cap_mb, profile.when_capped, profile.capped_rate_up_kbps) == (1000, "throttle", 500)


# -- Access-Requests: the rlm_rest authorize endpoint and the server's snapshot -----------------------

URL = "/api/v1/aaa/rest/authorize/"


def _used(sub, nas, bytes_out):
    from tarifa.kernel.clock import now

    finished(nas, sub, sid="used", started=now() - dt.timedelta(hours=1), stopped=now(), bytes_out=bytes_out)


def _body(login="alice"):
    return {"User-Name": {"type": "string", "value": [login]},
            "User-Password": {"type": "string", "value": ["wonderland"]},
            "NAS-IP-Address": {"type": "string", "value": ["127.0.0.1"]}}


def test_rest_authorize_gives_a_capped_subscriber_the_capped_speed_or_a_reject(api, make_user):
    rest = api(make_user("aaa.rest", username="freeradius"))
    sub, nas, profile = subscriber()
    services.update_profile(profile, actor=ACTOR, monthly_cap_mb=1, capped_rate_down_kbps=1000,
                            capped_rate_up_kbps=500)
    body = rest.post(URL, _body(), format="json").json()
    assert body["reply:Mikrotik-Rate-Limit"]["value"] == "5000k/20000k"   # under the cap
    _used(sub, nas, 2 * MB)
    body = rest.post(URL, _body(), format="json").json()
    assert body["reply:Mikrotik-Rate-Limit"]["value"] == "500k/1000k"
    assert body["request:Module-Success-Message"]["value"] == "tarifa: capped speed (monthly traffic cap reached)"
    services.update_profile(profile, actor=ACTOR, when_capped="disconnect")
    response = rest.post(URL, _body(), format="json")
    assert response.status_code == 401
    assert response.json()["request:Module-Failure-Message"]["value"] == "tarifa: monthly traffic cap reached"
    services.update_profile(profile, actor=ACTOR, monthly_cap_mb=None)
    assert rest.post(URL, _body(), format="json").json()["reply:Mikrotik-Rate-Limit"]["value"] == "5000k/20000k"


def test_the_server_answers_a_capped_subscriber_from_its_snapshot():
    sub, nas, profile = subscriber()
    login = "User-Name = alice, User-Password = wonderland, Message-Authenticator = 0x00"
    services.update_profile(profile, actor=ACTOR, monthly_cap_mb=1, capped_rate_down_kbps=1000,
                            capped_rate_up_kbps=500)
    _used(sub, nas, 2 * MB)
    with running_server() as server:
        assert server.snapshot.subscribers["alice"].capped
        out = radclient(server, "auth", login)
        assert "Received Access-Accept" in out and 'Mikrotik-Rate-Limit = "500k/1000k"' in out, out
        services.update_profile(profile, actor=ACTOR, when_capped="disconnect")
        wait_for(lambda: server.snapshot.subscribers["alice"].profile.when_capped == "disconnect",
                 what="the snapshot reload")
        assert "Received Access-Reject" in radclient(server, "auth", login)


def test_the_cap_job_asks_the_server_to_reload_its_snapshot():
    """enforce_caps NOTIFYs the channel the server LISTENs to (a reload per notification, test_server)."""
    import psycopg
    from django.db import connection

    from .helpers import SECRET as NAS_SECRET

    sub, nas, profile = subscriber()
    services.update_profile(profile, actor=ACTOR, monthly_cap_mb=1, capped_rate_down_kbps=1000,
                            capped_rate_up_kbps=500)
    params = connection.get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    with NasListener(secret=NAS_SECRET) as listener, psycopg.connect(autocommit=True, **params) as listen:
        Nas.objects.filter(pk=nas.pk).update(coa_port=listener.port)
        listen.execute("LISTEN tarifa_aaa")
        open_session(nas, sub, started=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10))  # notifies nothing
        assert coa_services.enforce_caps(actor="test") == {"capped": 1, "sessions": 1, "disconnected": 0,
                                                           "changed": 1, "failed": 0}
        assert listener.wait_for(1)[0].attributes["Mikrotik-Rate-Limit"] == "500k/1000k"
        notes = [n.payload for n in listen.notifies(timeout=5, stop_after=1)]
        assert notes == ["cap"]
        # In step: the next run sends and notifies nothing.
        assert coa_services.enforce_caps(actor="test")["sessions"] == 0
        assert [n.payload for n in listen.notifies(timeout=0.5)] == []
