"""A session's traffic is rated and charged once (source "radius", one record per session)."""

import datetime as dt
from decimal import Decimal

import pytest

from tarifa.aaa import usage
from tarifa.aaa.models import FinishedSession, Nas
from tarifa.kernel.clock import travel_to
from tarifa.rating import services as rating
from tarifa.rating.models import UsageRecord
from tarifa.rating.tests.helpers import make_plan
from tarifa.subscriptions import services as subs
from tarifa.subscriptions.tests.helpers import balance, customer_account, make_catalog, pay

pytestmark = pytest.mark.django_db

DAY = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)
MB = 10**6


def finished(nas, sub, *, sid, bytes_in, bytes_out, started=DAY, minutes=30):
    return FinishedSession.objects.create(
        nas=nas, acct_session_id=sid, subscription=sub, login=sub.login, started_at=started,
        updated_at=started + dt.timedelta(minutes=minutes), stopped_at=started + dt.timedelta(minutes=minutes),
        session_time=minutes * 60, bytes_in=bytes_in, bytes_out=bytes_out)


@pytest.fixture
def world():
    with travel_to(DAY):
        plan = make_plan()                     # data: 0.01 per MB (10^6 bytes), whole MBs, subject "MOB"
        tariffs = make_catalog()
        rating.create_tariff_rating(actor="test", tariff=tariffs["NET-62"], tenant=plan["tenant"], subject="MOB")
        account = customer_account()
        pay(account, "100")
        rated = subs.create_subscription(actor="test", billing_account=account, tariff=tariffs["NET-62"],
                                         login="alice", activate=True)
        flat = subs.create_subscription(actor="test", billing_account=account, tariff=tariffs["NET-31"],
                                        login="bob", activate=True)
        nas = Nas.objects.create(name="bras-1", ip_address="192.0.2.1", secret="s", type=Nas.Type.ACCEL_PPP)
        yield {"account": account, "rated": rated, "flat": flat, "nas": nas}


def test_a_sessions_traffic_is_rated_and_charged_once(world):
    nas, alice, account = world["nas"], world["rated"], world["account"]
    with travel_to(DAY + dt.timedelta(hours=1)):
        before = balance(account)
        # 3 MB up + 7 MB and a byte down: 10.000001 MB → 11 whole MB → 0.11; past 4 GiB counters are 64-bit.
        finished(nas, alice, sid="A-1", bytes_in=3 * MB, bytes_out=7 * MB + 1)
        finished(nas, world["flat"], sid="B-1", bytes_in=5 * MB, bytes_out=5 * MB)
        summary = usage.charge_finished_sessions(actor="test")
        assert summary["sessions"] == 2 and summary["sent"] == 1 and summary["flat"] == 1
        assert (summary["rated"], summary["rejected"], summary["duplicates"]) == (1, 0, 0)
        assert balance(account) == before - Decimal("0.11")
        record = UsageRecord.objects.get(source="radius")
        assert record.record_id == f"192.0.2.1/A-1/{int(DAY.timestamp())}" and record.subject == "alice"
        assert record.usage == 10 * MB + 1

        # The job again: nothing new.
        assert usage.charge_finished_sessions(actor="test")["sessions"] == 0
        # A duplicated Stop that made a second finished row of the same session: a duplicate, not a charge.
        finished(nas, alice, sid="A-1", bytes_in=3 * MB, bytes_out=7 * MB + 1)
        again = usage.charge_finished_sessions(actor="test")
        assert (again["sent"], again["rated"], again["duplicates"]) == (1, 0, 1)
        assert balance(account) == before - Decimal("0.11")
        assert UsageRecord.objects.filter(source="radius").count() == 1


def test_gigawords_sized_session_is_rated_in_full(world):
    nas, alice, account = world["nas"], world["rated"], world["account"]
    with travel_to(DAY + dt.timedelta(hours=1)):
        before = balance(account)
        finished(nas, alice, sid="BIG", bytes_in=0, bytes_out=5 * 2**32)  # 21.47 GB
        usage.charge_finished_sessions(actor="test")
        mbs = -(-5 * 2**32 // MB)
        assert balance(account) == before - Decimal(mbs) * Decimal("0.01")
