"""The credit-control engine: grants, debits, final units, duplicates, expiry, online = offline."""

import datetime as dt
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from tarifa.kernel import clock
from tarifa.ledger.models import Hold
from tarifa.rating import services as rating

from .. import services
from ..models import ChargingSession, Reservation
from .helpers import ACTOR, DAY, available, funded_subscriber, ledger_clean, seconds, world

pytestmark = pytest.mark.django_db


def offline_cost(w, usage_s, at=DAY, destination="4420123"):
    out = StringIO()
    call_command("rating", "cost", "--tenant", "tarifa", "--category", "call", "--subject", "MOB",
                 "--destination", destination, "--answer-time", at.isoformat(), "--usage", f"{usage_s}s",
                 stdout=out)
    return Decimal(json.loads(out.getvalue())["cost"])


def test_initial_update_terminate_costs_what_rating_costs():
    w = world()
    with clock.travel_to(DAY):
        a = services.start(actor=ACTOR, identifier="15550001", usage_type="voice", external_id="call-1",
                           destination="tel:+4420123", requested=seconds(300))
        assert a.result_code == 2001 and a.granted == seconds(300) and a.final_unit == ""
        session = ChargingSession.objects.get(pk=a.session)
        assert Decimal(a.reserved) == Decimal("3.05")  # 0.05 connect + 300 s × 0.01
        u = services.update(session, actor=ACTOR, used=seconds(300), requested=seconds(300), request_number=1)
        assert u.result_code == 2001 and u.granted == seconds(300)
        assert Decimal(u.charged) == Decimal("3.05")
        t = services.terminate(session, actor=ACTOR, used=seconds(250), request_number=2)
        assert t.result_code == 2001
    session.refresh_from_db()
    assert session.state == "closed" and session.used_units == seconds(550)
    assert session.charged == offline_cost(w, 550) == Decimal("5.55")
    assert available(w["prepaid"]) == Decimal("100") - Decimal("5.55")
    assert not Reservation.objects.filter(state="open").exists()
    assert not Hold.objects.filter(state="pending").exists()
    ledger_clean()


def test_sms_event_is_one_unit():
    w = world()
    with clock.travel_to(DAY):
        a = services.event(actor=ACTOR, identifier="+15550001", usage_type="sms", external_id="sms-1",
                           destination="15550002", units=1)
    assert a.result_code == 2001 and a.granted == 1 and Decimal(a.total) == Decimal("0.05")
    assert available(w["prepaid"]) == Decimal("99.95")
    ledger_clean()


def test_unknown_subscriber_is_5030():
    world()
    with clock.travel_to(DAY):
        a = services.start(actor=ACTOR, identifier="19999999", usage_type="voice", external_id="x",
                           requested=seconds(60))
    assert a.result_code == 5030


def test_insufficient_balance_final_units_then_4012():
    w = world()
    acc, _sub = funded_subscriber(w, "+15550009", funds="1.25")  # 0.05 + 120 s
    with clock.travel_to(DAY):
        a = services.start(actor=ACTOR, identifier="+15550009", usage_type="voice", external_id="c",
                           destination="4420123", requested=seconds(300))
        assert a.result_code == 2001 and a.granted == seconds(120) and a.final_unit == "terminate"
        u = services.update(a.session, actor=ACTOR, used=seconds(120), requested=seconds(300))
        assert u.result_code == 4012 and u.granted == 0 and u.final_unit == "terminate"
        services.terminate(a.session, actor=ACTOR, used=0)
    assert available(acc) == Decimal("0")
    with clock.travel_to(DAY):
        again = services.start(actor=ACTOR, identifier="+15550009", usage_type="voice", external_id="c2",
                               destination="4420123", requested=seconds(300))
    assert again.result_code == 4012
    ledger_clean()


def test_duplicate_request_number_answers_the_same_and_charges_once():
    w = world()
    with clock.travel_to(DAY):
        a = services.start(actor=ACTOR, identifier="+15550001", usage_type="voice", external_id="d",
                           destination="4420123", requested=seconds(60))
        first = services.update(a.session, actor=ACTOR, used=seconds(60), requested=seconds(60), request_number=1)
        again = services.update(a.session, actor=ACTOR, used=seconds(60), requested=seconds(60), request_number=1)
        initial_again = services.start(actor=ACTOR, identifier="+15550001", usage_type="voice", external_id="d",
                                       destination="4420123", requested=seconds(60))
    assert again.replayed and again.as_dict() == first.as_dict()
    assert initial_again.replayed and initial_again.session == a.session
    session = ChargingSession.objects.get(pk=a.session)
    assert session.used_units == seconds(60) and session.charged == Decimal("0.65")
    assert available(w["prepaid"]) == Decimal("100") - Decimal("0.65") - Decimal("0.60")  # + the open slice


def test_silent_session_expires_and_settles():
    w = world()
    with clock.travel_to(DAY):
        a = services.start(actor=ACTOR, identifier="+15550001", usage_type="voice", external_id="s",
                           destination="4420123", requested=seconds(300))
        services.update(a.session, actor=ACTOR, used=seconds(100), requested=seconds(300))
    assert services.expire_sessions(as_of=DAY + dt.timedelta(minutes=5)) == 0
    later = DAY + dt.timedelta(seconds=services.validity()) + services.GRACE + dt.timedelta(seconds=1)
    with clock.travel_to(later):
        assert services.expire_sessions() == 1
        assert services.expire_sessions() == 0
    session = ChargingSession.objects.get(pk=a.session)
    assert session.state == "expired" and session.charged == Decimal("1.05")
    assert available(w["prepaid"]) == Decimal("98.95")
    assert Hold.objects.filter(state="expired").count() == 1
    ledger_clean()


def add_peak_plan(w):
    """Germany (49): peak weekdays 08:00–20:00 at 0.33 a minute in 30 s steps, else 0.07 by the second."""
    from tarifa.rating.engine import SECOND
    from tarifa.rating.models import RatingPlan

    t = w["tenant"]
    de = rating.create_destination(actor=ACTOR, tenant=t, code="DE", name="Germany", prefixes=["49"])
    peak = rating.create_timing(actor=ACTOR, tenant=t, code="PEAK", week_days=[1, 2, 3, 4, 5],
                                start_time=dt.time(8), end_time=dt.time(20))
    r_peak = rating.create_rate(actor=ACTOR, tenant=t, code="R_PEAK", slots=[
        {"connect_fee": "0.02", "price": "0.33", "rate_unit": 60 * SECOND, "rate_increment": 30 * SECOND}])
    r_off = rating.create_rate(actor=ACTOR, tenant=t, code="R_OFF", slots=[
        {"price": "0.07", "rate_unit": 60 * SECOND, "rate_increment": SECOND}])
    for code, rate in (("DR_DE_PEAK", r_peak), ("DR_DE_OFF", r_off)):
        rating.create_destination_rate(actor=ACTOR, tenant=t, code=code, destination=de, rate=rate,
                                       rounding_method="*up", rounding_decimals=4)
    plan = RatingPlan.objects.get(tenant=t, code="RP_VOICE")
    rating.create_binding(actor=ACTOR, rating_plan=plan, destination_rate_code="DR_DE_PEAK", timing=peak, weight=20)
    rating.create_binding(actor=ACTOR, rating_plan=plan, destination_rate_code="DR_DE_OFF", weight=10)


@pytest.mark.parametrize("start,usage", [
    (dt.datetime(2024, 3, 4, 23, 58, 30, tzinfo=dt.UTC), 200),  # across midnight (Monday → Tuesday)
    (dt.datetime(2024, 3, 3, 23, 59, 0, tzinfo=dt.UTC), 700),  # Sunday night into Monday
    (dt.datetime(2024, 3, 4, 7, 59, 0, tzinfo=dt.UTC), 3601),  # off-peak into peak
    (dt.datetime(2024, 3, 4, 19, 58, 17, tzinfo=dt.UTC), 333),  # peak into off-peak
])
@pytest.mark.parametrize("slice_s", [77, 300])
def test_online_cost_equals_offline_across_boundaries(start, usage, slice_s):
    w = world()
    with clock.travel_to(dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)):
        add_peak_plan(w)
    with clock.travel_to(start):
        a = services.start(actor=ACTOR, identifier="+15550001", usage_type="voice", external_id=f"b{usage}",
                           destination="4930123", requested=seconds(slice_s), started_at=start)
        assert a.result_code == 2001
        used = 0
        while used + slice_s < usage:
            services.update(a.session, actor=ACTOR, used=seconds(slice_s), requested=seconds(slice_s))
            used += slice_s
        services.terminate(a.session, actor=ACTOR, used=seconds(usage - used))
    session = ChargingSession.objects.get(pk=a.session)
    assert session.charged == offline_cost(w, usage, at=start, destination="4930123") > 0
    assert available(w["prepaid"]) == Decimal(100) - session.charged
    ledger_clean()
