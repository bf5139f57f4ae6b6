"""Usage in human units on the operator's screens (issue 10): call time as 1m29s, data in MB, never
nanoseconds or bytes; the cost in the currency's units."""

import datetime as dt
import re

import pytest

from tarifa.kernel.clock import travel_to
from tarifa.rating import usage
from tarifa.rating.models import RatedUsage

from .helpers import DAY, csv_file, line, make_world

pytestmark = pytest.mark.django_db
T = dt.datetime(2024, 3, 5, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def world():
    with travel_to(DAY):
        w = make_world()
    with travel_to(dt.datetime(2024, 3, 20, 12, 0, tzinfo=dt.UTC)):
        yield w


def visible(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def test_rated_usage_reads_in_minutes_seconds_and_megabytes(world, admin_user, staff_client):
    usage.import_file(csv_file(line("v1", "+15550001", "4420", T, 89),
                               line("d1", "+15550001", "", T, "2500000", kind="data")),
                      format="csv", actor="test", file_name="t.csv")
    call = RatedUsage.objects.get(record_id="v1")
    assert call.usage == 89 * 10**9
    ui = staff_client(admin_user)

    listing = visible(ui.get("/rating/ratedusage/").content.decode())
    assert "1m29s" in listing and "2.5 MB" in listing
    assert "89000000000" not in listing and "2500000" not in listing

    detail = visible(ui.get(f"/rating/ratedusage/{call.pk}/").content.decode())
    assert "1m29s" in detail and "89000000000" not in detail
    assert f"0.94 {call.currency}" in detail and "0.9400000000" not in detail  # 0.05 + 89 s at 0.60/min
