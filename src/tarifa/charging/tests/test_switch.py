"""A switch of payment mode settles the account's open online sessions in the same request, and says so.

Voice to 44… costs 0.05 connect + 0.01 a second; alice is prepaid with 100 EUR.
"""

from decimal import Decimal

import pytest

from tarifa.audit.models import AuditEvent
from tarifa.kernel import clock
from tarifa.ledger import services as ledger
from tarifa.ledger.models import Hold, PaymentModeChange
from tarifa.ledger.selectors import check_ledger

from .. import services
from ..models import ChargingSession, Reservation
from .helpers import ACTOR, DAY, available, seconds, world

pytestmark = pytest.mark.django_db


def open_sessions(w, *used_s):
    """Open calls of alice, each having reported `used` seconds, each holding its next slice."""
    sessions = []
    with clock.travel_to(DAY):
        for i, used in enumerate(used_s):
            a = services.start(actor=ACTOR, identifier="15550001", usage_type="voice", external_id=f"open-{i}",
                               destination="4420123", requested=seconds(300))
            assert a.result_code == 2001
            services.update(a.session, actor=ACTOR, used=seconds(used), requested=seconds(300), request_number=1)
            sessions.append(ChargingSession.objects.get(pk=a.session))
    assert Hold.objects.filter(state="pending").count() == len(used_s)
    return sessions


def assert_settled(w, sessions, expected_charged):
    for session, charged in zip(sessions, expected_charged, strict=True):
        session.refresh_from_db()
        assert session.state == "closed" and session.charged == Decimal(charged)
        assert session.termination_cause == "payment mode switch (prepaid → postpaid)"
        assert not session.reservations.filter(state=Reservation.State.OPEN).exists()
    assert not Hold.objects.filter(state="pending").exists()
    w["prepaid"].ledger_account.refresh_from_db()
    assert w["prepaid"].ledger_account.debits_pending == 0
    report = check_ledger()
    assert report["ok"], report["problems"]


def test_switch_settles_two_open_sessions_over_the_api(make_user, api):
    w = world()
    sessions = open_sessions(w, 60, 120)  # 0.65 and 1.25 reported
    client = api(make_user("ledger.switch_payment_mode", "ledger.view_billingaccount", password=None))
    with clock.travel_to(DAY):
        r = client.post(f"/api/v1/accounts/{w['prepaid'].pk}/switch-mode/",
                        {"payment_mode": "postpaid", "reason": "contract"}, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["payment_mode"] == "postpaid" and body["settled_sessions"] == 2
    assert body["notes"] == ["2 open online charging sessions were settled at what they reported; their "
                             "reservations were released."]
    assert_settled(w, sessions, ["0.65", "1.25"])
    assert available(w["prepaid"]) == Decimal("100") - Decimal("1.90")
    change = PaymentModeChange.objects.filter(billing_account=w["prepaid"]).latest("created_at")
    assert change.to_mode == "postpaid" and change.effects["settled_sessions"] == 2
    audit = AuditEvent.objects.filter(object_id=str(w["prepaid"].pk), action="switch_payment_mode").get()
    assert audit.message.startswith("contract") and ". 2 open online charging sessions were settled" in audit.message
    assert AuditEvent.objects.filter(object_type="charging.chargingsession", action="settle").count() == 2
    # The network's late requests charge nothing more.
    with clock.travel_to(DAY):
        late = services.terminate(sessions[0], actor=ACTOR, used=seconds(30), request_number=2)
    assert late.result_code == 5002
    assert available(w["prepaid"]) == Decimal("100") - Decimal("1.90")


def test_switch_without_open_sessions_says_zero(make_user, api):
    w = world()
    client = api(make_user("ledger.switch_payment_mode", "ledger.view_billingaccount", password=None))
    r = client.post(f"/api/v1/accounts/{w['prepaid'].pk}/switch-mode/", {"payment_mode": "postpaid"}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["settled_sessions"] == 0
    assert r.json()["notes"] == ["No open online charging session: nothing to settle."]
    assert available(w["prepaid"]) == Decimal("100")
    assert check_ledger()["ok"]


def test_switch_screen_tells_the_operator(make_user, staff_client):
    w = world()
    sessions = open_sessions(w, 30, 90)
    ui = staff_client(make_user("ledger.switch_payment_mode", "ledger.view_billingaccount"))
    with clock.travel_to(DAY):
        r = ui.post(f"/ledger/billingaccount/{w['prepaid'].pk}/do/switch-mode/", {"payment_mode": "postpaid"},
                    follow=True)
    assert r.status_code == 200
    page = r.content.decode()
    assert "2 open online charging sessions were settled" in page
    assert_settled(w, sessions, ["0.35", "0.95"])


def test_service_switch_settles_and_only_the_accounts_sessions():
    w = world()
    mine = open_sessions(w, 60)
    with clock.travel_to(DAY):
        a = services.start(actor=ACTOR, identifier="15550002", usage_type="voice", external_id="bob-open",
                           destination="4420123", requested=seconds(300))  # bob (postpaid), another account
        account = ledger.switch_payment_mode(w["prepaid"], actor=ACTOR, payment_mode="postpaid")
    assert account.mode_change.effects["settled_sessions"] == 1
    assert_settled_one = mine[0]
    assert_settled_one.refresh_from_db()
    assert assert_settled_one.state == "closed" and assert_settled_one.charged == Decimal("0.65")
    assert ChargingSession.objects.get(pk=a.session).state == "open"
    assert check_ledger()["ok"]
