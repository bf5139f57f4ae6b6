"""Usage types beyond voice, SMS and data: video on demand (items, shipped) and one the operator
declares without code (catch-up TV hours, a time measure not split by time of day), priced by
the tariff plan, with free units of a bundle, through the file import, the CLI and the API."""

import datetime as dt
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from tarifa.kernel.clock import travel_to
from tarifa.rating import services, usage
from tarifa.rating.models import RatedUsage

from .helpers import ACTOR, DAY, csv_file, line, make_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    with travel_to(DAY):
        w = make_world()
        tenant = w["tenant"]
        services.create_usage_type(actor=ACTOR, code="catchup", name="Catch-up TV", measure="time")
        r_vod = services.create_rate(actor=ACTOR, tenant=tenant, code="R_VOD", slots=[
            {"price": "2.99", "rate_unit": 1, "rate_increment": 1}])
        r_tv = services.create_rate(actor=ACTOR, tenant=tenant, code="R_TV", slots=[
            {"price": "0.60", "rate_unit": "1h", "rate_increment": "1m"}])
        since = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        for code, rate, category in (("VOD", r_vod, "vod"), ("TV", r_tv, "tv_hours")):
            services.create_destination_rate(actor=ACTOR, tenant=tenant, code=f"DR_{code}", destination=None,
                                             rate=rate, rounding_method="*up", rounding_decimals=4)
            plan = services.create_rating_plan(actor=ACTOR, tenant=tenant, code=f"RP_{code}",
                                               bindings=[{"destination_rate_code": f"DR_{code}"}])
            services.create_rating_profile(actor=ACTOR, tenant=tenant, category=category, subject="MOB",
                                           activation_time=since, rating_plan=plan)
        # VOD's category is its own code; catch-up is mapped to the plan's "tv_hours" category.
        services.update_tariff_rating(w["rating"], actor=ACTOR, categories={"voice": "call", "catchup": "tv_hours"})
        services.create_bundle(actor=ACTOR, tariff=w["tariffs"]["MOB"], code="FILM1", name="One film a month",
                               usage_type="vod", allowance="1", period="month")
    with travel_to(dt.datetime(2024, 3, 20, 12, 0, tzinfo=dt.UTC)):
        yield w


def test_vod_items_and_an_operator_defined_type_are_rated(world, make_user, api):
    """Two films on the 5th: the first is the bundle's free one, the second costs 2.99. 90 minutes
    of catch-up TV at 0.60 an hour in whole minutes: 0.90. Both are charged to the prepaid account."""
    at = dt.datetime(2024, 3, 5, 20, 0, tzinfo=dt.UTC)
    batch = usage.import_file(csv_file(line("v1", "+15550001", "", at, 2, kind="vod"),
                                       line("t1", "+15550001", "", at, "90m", kind="catchup")), actor="test")
    assert (batch.read, batch.rated, batch.rejected) == (2, 2, 0), batch.summary()
    vod, tv = RatedUsage.objects.get(record_id="v1"), RatedUsage.objects.get(record_id="t1")
    assert (vod.usage, vod.free_units, vod.cost) == (2, 1, Decimal("2.99"))
    assert (tv.usage, tv.cost) == (5400 * 10**9, Decimal("0.9"))
    assert batch.charged == Decimal("3.89") and vod.transfer_id == tv.transfer_id is not None
    out = StringIO()
    call_command("rating", "cost", "--tenant", "tarifa", "--category", "tv_hours", "--subject", "MOB",
                 "--answer-time", "2024-03-05T23:30:00Z", "--usage", "1h30m", "--type", "catchup", stdout=out)
    body = json.loads(out.getvalue())
    assert Decimal(body["cost"]) == Decimal("0.9") and len(body["spans"]) == 1  # not split at midnight
    response = api(make_user("rating.calculate")).post("/api/v1/rating/cost", {
        "tenant": "tarifa", "category": "vod", "subject": "MOB", "answer_time": "2024-03-05T20:00:00Z",
        "usage": "3", "type": "vod"}, format="json")
    assert response.status_code == 200 and Decimal(response.json()["cost"]) == Decimal("8.97")
