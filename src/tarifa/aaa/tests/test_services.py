"""Accounting applied by the services (no server): each record once, stale sessions, partitions;
NAS and passwords through the API (write-only, encrypted at rest)."""

import datetime as dt
import time

import pytest
from django.db import connection

from tarifa.aaa import partitions, protocol, services
from tarifa.aaa.models import FinishedSession, Nas, Session
from tarifa.kernel.clock import travel_to

from .helpers import subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_api(api, admin_user):
    return api(admin_user)


def rec(nas, status, sid, at, **fields):
    return protocol.AcctRecord(nas.pk, status, sid, fields.pop("login", "alice"), event_time=at, **fields)


def test_a_batch_applies_each_record_once_whatever_its_order():
    sub, nas, _ = subscriber()
    t = time.time() - 600
    logins = {"alice": sub.pk}
    out = services.apply_accounting([
        rec(nas, protocol.START, "s1", t, interim_interval=60),
        rec(nas, protocol.INTERIM, "s1", t + 120, bytes_out=500, session_time=120),
        rec(nas, protocol.INTERIM, "s1", t + 60, bytes_out=200, session_time=60),  # late: changes nothing
        rec(nas, protocol.INTERIM, "s2", t + 60, bytes_out=9, session_time=60),  # its Start was lost
    ], logins=logins)
    assert (out["started"], out["delta"]) == (2, {"alice": 2})
    s1 = Session.objects.get(acct_session_id="s1")
    assert (s1.bytes_out, s1.session_time, s1.subscription_id) == (500, 120, sub.pk)
    s2 = Session.objects.get(acct_session_id="s2")
    assert s2.started_at.timestamp() == pytest.approx(t, abs=1)  # event time − session time
    # The same Interim again, then the Stop twice (in one batch and in the next).
    stop = rec(nas, protocol.STOP, "s1", t + 180, bytes_out=800, session_time=180, terminate_cause="Lost-Carrier")
    out = services.apply_accounting([rec(nas, protocol.INTERIM, "s1", t + 120, bytes_out=500), stop, stop],
                                    logins=logins)
    assert (out["stopped"], out["delta"]) == (1, {"alice": -1})
    out = services.apply_accounting([stop, rec(nas, protocol.START, "s1", t)], logins=logins)
    assert out["duplicates"] == 2 and out["started"] == 0
    done = FinishedSession.objects.get(acct_session_id="s1")
    assert (done.bytes_out, done.terminate_cause, done.stop_reason) == (800, "Lost-Carrier", "stop")
    assert done.stopped_at.timestamp() == pytest.approx(t + 180, abs=1)
    assert list(Session.objects.values_list("acct_session_id", flat=True)) == ["s2"]


def test_accounting_off_in_a_batch_closes_what_was_open_before_it():
    _sub, nas, _ = subscriber()
    t = time.time() - 100
    out = services.apply_accounting([
        rec(nas, protocol.START, "a", t),
        rec(nas, protocol.ACCOUNTING_OFF, "", t + 1),
        rec(nas, protocol.START, "b", t + 2),  # after the NAS came back
    ])
    assert out["closed"] == 1
    assert list(Session.objects.values_list("acct_session_id", flat=True)) == ["b"]
    assert FinishedSession.objects.get(acct_session_id="a").stop_reason == "nas_restart"


def test_stale_sessions_are_closed_with_their_usage_after_interim_times_n():
    _sub, nas, _ = subscriber()
    with travel_to(dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)):
        start = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC).timestamp()
        services.apply_accounting([
            rec(nas, protocol.START, "quiet", start, interim_interval=300),
            rec(nas, protocol.INTERIM, "quiet", start + 300, bytes_in=42, session_time=300, interim_interval=300),
            rec(nas, protocol.START, "chatty", start, interim_interval=300),
            rec(nas, protocol.INTERIM, "chatty", start + 7000, bytes_in=7, session_time=7000),
        ])
        as_of = dt.datetime.fromtimestamp(start + 7000 + 60, tz=dt.UTC)
        assert services.close_stale_sessions(as_of=as_of, factor=3) == 1
    stale = FinishedSession.objects.get(acct_session_id="quiet")
    assert (stale.stop_reason, stale.bytes_in, stale.session_time) == ("stale", 42, 300)
    assert stale.stopped_at == dt.datetime.fromtimestamp(start + 300, tz=dt.UTC)  # its last update
    assert Session.objects.get().acct_session_id == "chatty"


def test_finished_sessions_land_in_their_month_partition():
    made = partitions.ensure(today=dt.date(2031, 5, 20), months_ahead=1)
    assert made == ["aaa_finishedsession_203105", "aaa_finishedsession_203106"]
    assert partitions.ensure(today=dt.date(2031, 5, 20), months_ahead=1) == []
    _sub, nas, _ = subscriber()
    at = dt.datetime(2031, 5, 21, tzinfo=dt.UTC).timestamp()
    services.apply_accounting([rec(nas, protocol.START, "p", at), rec(nas, protocol.STOP, "p", at + 10)])
    with connection.cursor() as cur:
        cur.execute("SELECT tableoid::regclass::text FROM aaa_finishedsession WHERE acct_session_id = 'p'")
        assert cur.fetchone()[0] == "aaa_finishedsession_203105"


def test_the_nas_secret_and_the_subscription_password_are_write_only_and_encrypted(admin_api):
    sub, _nas, _ = subscriber()
    body = {"name": "BRAS 2", "ip_address": "198.51.100.1", "secret": "s3cret-value", "type": "cisco", "coa_port": 1700}
    response = admin_api.post("/api/v1/aaa/nas/", body, format="json")
    assert response.status_code == 201, response.content
    assert "secret" not in response.json() and response.json()["coa_port"] == 1700
    assert admin_api.post("/api/v1/aaa/nas/", body, format="json").json()["error"]["code"] == "nas_exists"
    nas = Nas.objects.get(ip_address="198.51.100.1")
    assert nas.secret == "s3cret-value"
    with connection.cursor() as cur:
        cur.execute("SELECT secret FROM aaa_nas WHERE id = %s", [nas.pk])
        assert cur.fetchone()[0].startswith("enc1:")
    response = admin_api.patch(f"/api/v1/subscriptions/{sub.pk}/", {"password": "new-password"}, format="json")
    assert response.status_code == 200, response.content
    assert "password" not in response.json()
    sub.refresh_from_db()
    assert sub.access_password == "new-password"
    with connection.cursor() as cur:
        cur.execute("SELECT access_password FROM subscriptions_subscription WHERE id = %s", [sub.pk])
        assert cur.fetchone()[0].startswith("enc1:")


def test_sessions_api_lists_open_and_finished_sessions_with_integer_bytes(admin_api):
    sub, nas, _ = subscriber()
    t = time.time() - 100
    services.apply_accounting([
        rec(nas, protocol.START, "open1", t),
        rec(nas, protocol.INTERIM, "open1", t + 50, bytes_out=5 * 2**32 + 1),
        rec(nas, protocol.START, "old", t, login="bob"),
        rec(nas, protocol.STOP, "old", t + 10, login="bob", bytes_in=3),
    ], logins={"alice": sub.pk})
    data = admin_api.get("/api/v1/aaa/sessions/?login=alice").json()
    assert [(r["acct_session_id"], r["bytes_out"], r["active"]) for r in data["results"]] == [
        ("open1", 5 * 2**32 + 1, True)]
    data = admin_api.get("/api/v1/aaa/sessions/?active=false").json()
    assert [(r["login"], r["bytes_in"], r["active"], r["stop_reason"]) for r in data["results"]] == [
        ("bob", 3, False, "stop")]
    finished = FinishedSession.objects.get()
    assert admin_api.get(f"/api/v1/aaa/sessions/{finished.pk}/").json()["acct_session_id"] == "old"
