"""The engine over HTTP: initial, update, terminate, events; idempotent by key; history with usage and cost."""

from decimal import Decimal

import pytest

from tarifa.kernel import clock

from .helpers import DAY, available, world

pytestmark = pytest.mark.django_db
PERMS = ("charging.add_chargingsession", "charging.view_chargingsession")


def test_session_over_http(make_user, api):
    w = world()
    client = api(make_user(*PERMS, password=None))
    with clock.travel_to(DAY):
        r = client.post("/api/v1/charging/sessions/", {"subscriber": "+15550001", "usage_type": "voice",
                                                       "session_id": "p1", "destination": "4420123",
                                                       "requested": "300s"}, format="json",
                        headers={"Idempotency-Key": "i-1"})
        assert r.status_code == 201, r.content
        body = r.json()
        assert body["result_code"] == 2001 and body["granted_text"] == "5m0s" and body["reserved"] == "3.050000"
        sid = body["session"]
        again = client.post("/api/v1/charging/sessions/", {"subscriber": "+15550001", "usage_type": "voice",
                                                           "session_id": "p1", "destination": "4420123",
                                                           "requested": "300s"}, format="json",
                            headers={"Idempotency-Key": "i-1"})
        assert again.json() == body and again.headers["Idempotent-Replayed"] == "true"
        u = client.post(f"/api/v1/charging/sessions/{sid}/update/", {"used": "300", "requested": "300"},
                        format="json", headers={"Idempotency-Key": "u-1"})
        assert u.status_code == 200 and u.json()["charged"] == "3.050000"
        t = client.post(f"/api/v1/charging/sessions/{sid}/terminate/", {"used": "250"}, format="json",
                        headers={"Idempotency-Key": "t-1"})
        assert t.json()["total"] == "5.550000"
        e = client.post("/api/v1/charging/events/", {"subscriber": "15550001", "usage_type": "sms",
                                                     "event_id": "sms-9", "destination": "15550002"}, format="json",
                        headers={"Idempotency-Key": "e-1"})
        assert e.status_code == 201 and e.json()["total"] == "0.050000"
        unknown = client.post("/api/v1/charging/sessions/", {"subscriber": "+19990000", "usage_type": "voice",
                                                            "session_id": "p2"}, format="json")
        assert unknown.json()["result_code"] == 5030
    listing = client.get("/api/v1/charging/sessions/", {"subscription": w["alice"].number,
                                                        "account": w["prepaid"].number}).json()
    rows = {row["external_id"]: row for row in listing["results"]}
    assert rows["p1"]["usage"] == "9m10s" and rows["p1"]["cost"] == "5.550000" and rows["p1"]["state"] == "closed"
    assert rows["sms-9"]["cost"] == "0.050000"
    assert available(w["prepaid"]) == Decimal("100") - Decimal("5.60")
    assert client.get("/api/v1/charging/sessions/", {"account": "nope"}).status_code in (200, 400)


def test_peers_api(make_user, api):
    client = api(make_user("charging.add_diameterpeer", "charging.view_diameterpeer", password=None))
    r = client.post("/api/v1/charging/peers/", {"origin_host": "PGW1.example.net", "realm": "example.net",
                                                "ip_address": "192.0.2.1"}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["origin_host"] == "pgw1.example.net" and r.json()["state"] == "unknown"
