"""The API and the screens of rating: calculator, usage in, the rejected queue, plan editing,
CGRateS import/export, prefix tables."""

import datetime as dt
import os
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.urls import reverse

from tarifa.kernel.clock import travel_to
from tarifa.rating.models import (Destination, DestinationPrefix, Rate, RatedUsage, RatingTenant, RejectedUsage,
                                  UsageBatch)

from .helpers import DAY, make_plan, make_world

pytestmark = pytest.mark.django_db
INTEROP = next((p for p in (Path(__file__).resolve().parents[5] / "shared" / "interop" / "cgrates",
                            Path("/work/shared/interop/cgrates")) if p.is_dir()), None)


@pytest.fixture
def world():
    with travel_to(DAY):
        w = make_world()
    with travel_to(dt.datetime(2024, 3, 20, 12, 0, tzinfo=dt.UTC)):
        yield w


def test_cost_api(world, make_user, api):
    client = api(make_user("rating.calculate"))
    body = {"tenant": "tarifa", "category": "call", "subject": "MOB", "destination": "4420",
            "answer_time": "2024-03-05T10:00:00Z", "usage": "30s"}
    response = client.post("/api/v1/rating/cost", body, format="json")
    assert response.status_code == 200, response.json()
    assert Decimal(response.json()["cost"]) == Decimal("0.35")
    assert response.json()["spans"][0]["destination"] == "UK"
    response = client.post("/api/v1/rating/cost", {**body, "destination": "99"}, format="json")
    assert response.status_code == 422 and response.json()["error"]["code"] == "UNAUTHORIZED_DESTINATION"
    response = client.post("/api/v1/rating/cost", {**body, "usage": "a while"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_usage"
    assert api(make_user("rating.view_ratingtenant")).post("/api/v1/rating/cost", body,
                                                          format="json").status_code == 403


def test_usage_api_batch_is_idempotent(world, make_user, api):
    client = api(make_user("rating.add_usagebatch"))
    records = [
        {"record_id": "p1", "subject": "+15550001", "destination": "1555", "type": "voice",
         "start_time": "2024-03-05T10:00:00Z", "usage": "45s"},
        {"record_id": "p2", "subject": "+15550001", "type": "data", "start_time": "2024-03-05T10:00:00Z",
         "usage": "2MB"},
        {"record_id": "p3", "subject": "+15550001", "start_time": "2024-03-05T10:00:00Z", "usage": 1.5},
        {"record_id": "p4", "subject": "+15550001", "start_time": "2024-03-05T10:00:00Z", "usage": "5",
         "colour": "red"},
    ]
    response = client.post("/api/v1/usage/", {"source": "partner-x", "records": records}, format="json",
                           HTTP_IDEMPOTENCY_KEY="batch-1")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["read"], body["rated"], body["rejected"], body["duplicates"]) == (4, 2, 2, 0)
    assert body["reasons"] == {"malformed": 2}
    replay = client.post("/api/v1/usage/", {"source": "partner-x", "records": records}, format="json",
                         HTTP_IDEMPOTENCY_KEY="batch-1")
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true" and replay.json() == body
    again = client.post("/api/v1/usage/", {"source": "partner-x", "records": records}, format="json").json()
    assert (again["read"], again["duplicates"]) == (4, 4)
    assert RatedUsage.objects.get(record_id="p2").cost == Decimal("0.02")
    assert RatedUsage.objects.get(record_id="p1").source == "partner-x"


def test_rejected_queue_api(world, make_user, api):
    from tarifa.rating import usage

    usage.import_records([{"record_id": "q1", "subject": "+15550001", "destination": "1555",
                           "start_time": "yesterday", "usage": "45"}], actor="test")
    record = RejectedUsage.objects.get()
    viewer = api(make_user("rating.view_rejectedusage"))
    listing = viewer.get("/api/v1/rejected-usage/?reason=malformed").json()
    assert listing["count"] == 1 and listing["results"][0]["message"].startswith("cannot read the start time")
    assert viewer.post(f"/api/v1/rejected-usage/{record.pk}/correct/", {}, format="json").status_code == 403
    fixer = api(make_user("rating.reprocess_usage", "rating.view_rejectedusage"))
    response = fixer.post(f"/api/v1/rejected-usage/{record.pk}/correct/", {"start_time": "2024-03-05T10:00:00Z", "usage": "45"},
                          format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "rated" and Decimal(response.json()["cost"]) == Decimal("0.1")


def test_plan_rows_through_the_api(make_user, api):
    client = api(make_user("rating.add_ratingtenant", "rating.add_destination", "rating.add_rate",
                           "rating.add_destinationrate", "rating.add_ratingplan", "rating.add_ratingprofile",
                           "rating.change_rate", "rating.view_rate", "rating.calculate"))
    assert client.post("/api/v1/rating-tenants/", {"code": "api.test", "name": "API"}, format="json").status_code == 201
    assert client.post("/api/v1/rating-destinations/", {"tenant": "api.test", "code": "D1", "prefixes": ["12", "13"]},
                       format="json").status_code == 201
    response = client.post("/api/v1/rating-rates/", {"tenant": "api.test", "code": "R1", "slots": [
        {"connect_fee": "0.1", "price": "0.6", "rate_unit": "60s", "rate_increment": "1s"}]}, format="json")
    assert response.status_code == 201, response.json()
    rate_id = response.json()["id"]
    assert response.json()["slots"][0]["rate_unit"] == 60 * 10**9
    response = client.post("/api/v1/rating-destination-rates/", {"tenant": "api.test", "code": "DR1",
                                                                 "destination": "D1", "rate": "R1",
                                                                 "rounding_method": "*up", "rounding_decimals": 2},
                           format="json")
    assert response.status_code == 201, response.json()
    bad = client.post("/api/v1/rating-plans/", {"tenant": "api.test", "code": "P1",
                                                "bindings": [{"destination_rate": "DR_MISSING"}]}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "plan_invalid"
    assert client.post("/api/v1/rating-plans/", {"tenant": "api.test", "code": "P1",
                                                 "bindings": [{"destination_rate": "DR1"}]},
                       format="json").status_code == 201
    assert client.post("/api/v1/rating-profiles/", {"tenant": "api.test", "category": "call", "subject": "*any",
                                                    "activation_time": "2020-01-01T00:00:00Z", "rating_plan": "P1"},
                       format="json").status_code == 201
    cost = client.post("/api/v1/rating/cost", {"tenant": "api.test", "category": "call", "subject": "x",
                                               "destination": "1299", "answer_time": "2024-01-01T00:00:00Z",
                                               "usage": "30s"}, format="json").json()
    assert Decimal(cost["cost"]) == Decimal("0.4")
    assert client.patch(f"/api/v1/rating-rates/{rate_id}/", {"slots": [
        {"price": "1.2", "rate_unit": "60s", "rate_increment": "1s"}]}, format="json").status_code == 200
    cost = client.post("/api/v1/rating/cost", {"tenant": "api.test", "category": "call", "subject": "x",
                                               "destination": "1299", "answer_time": "2024-01-01T00:00:00Z",
                                               "usage": "30s"}, format="json").json()
    assert Decimal(cost["cost"]) == Decimal("0.6")  # the plan cache saw the new version


@pytest.mark.skipif(INTEROP is None and not os.environ.get("CI"), reason="interop plans not found")
def test_import_and_export_cgrates_api(make_user, api):
    client = api(make_user("rating.import_plan", "rating.export_plan", "rating.view_ratingtenant"))
    files = {p.name: p.read_text() for p in (INTEROP / "tutorial").glob("*.csv")}
    response = client.post("/api/v1/rating/import-cgrates", {"files": files, "tenant": "acme"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["tenants"]["acme"]["rating_profiles"] == 8
    tenant = RatingTenant.objects.get(code="acme")
    exported = client.get(f"/api/v1/rating-tenants/{tenant.pk}/export-cgrates/").json()["files"]
    assert set(exported) == set(files) | {"Timings.csv"}
    broken = dict(files, **{"Rates.csv": files["Rates.csv"].replace("0.2", "x", 1)})
    response = client.post("/api/v1/rating/import-cgrates", {"files": broken, "tenant": "acme"}, format="json")
    assert response.status_code == 400 and "Rates.csv, line" in response.json()["error"]["message"]


def test_calculator_screen_with_htmx(world, make_user, staff_client):
    client = staff_client(make_user("rating.calculate"))
    assert client.get(reverse("rating:calculator")).status_code == 200
    data = {"tenant": "tarifa", "category": "call", "subject": "MOB", "destination": "4420",
            "answer_time": "2024-03-05T10:00:00Z", "usage": "30s", "type": "voice", "rounding_decimals": 5}
    response = client.post(reverse("rating:calculator"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'data-testid="cost"' in text and "0.35" in text and "<html" not in text
    response = client.post(reverse("rating:calculator"), {**data, "destination": "99"}, HTTP_HX_REQUEST="true")
    assert "UNAUTHORIZED_DESTINATION" in response.content.decode()


def test_usage_import_screen(world, make_user, staff_client):
    client = staff_client(make_user("rating.add_usagebatch", "rating.view_usagebatch"))
    upload = io.BytesIO(b"record_id,source,subject,destination,type,start_time,usage\n"
                        b"u1,sw,+15550001,1555,voice,2024-03-05T10:00:00Z,45\n"
                        b"u2,sw,+15550001,1555,voice,never,45\n")
    upload.name = "calls.csv"
    response = client.post(reverse("rating:usage_import"), {"file": upload, "format": "csv"})
    batch = UsageBatch.objects.get()
    assert response.status_code == 302 and response.url == reverse("rating:usagebatch_detail", args=[batch.pk])
    page = client.get(response.url).content.decode()
    assert "adds up" in page and "malformed" in page


def test_prefix_upload_screen(make_user, staff_client):
    tenant = make_plan()["tenant"]
    client = staff_client(make_user("rating.add_destinationprefix"))
    table = io.BytesIO(b"destination,prefix,name\nNAT,1,National\nFR,33,France\nFR,331,France\n")
    table.name = "prefixes.csv"
    response = client.post(reverse("rating:prefix_upload"), {"tenant": tenant.pk, "file": table})
    assert response.status_code == 200, response.content.decode()[:2000]
    assert set(DestinationPrefix.objects.filter(destination__code="FR").values_list("prefix", flat=True)) == {
        "33", "331"}
    assert Destination.objects.get(tenant=tenant, code="FR").name == "France"
    bad = io.BytesIO(b"FR\n")
    bad.name = "bad.csv"
    response = client.post(reverse("rating:prefix_upload"), {"tenant": tenant.pk, "file": bad})
    assert response.status_code == 400 and "line 1" in response.content.decode()


def test_rate_form_slots_text(make_user, staff_client):
    tenant = make_plan()["tenant"]
    client = staff_client(make_user("rating.add_rate", "rating.change_rate", "rating.view_rate"))
    response = client.post(reverse("rating:rate_add"), {"tenant": tenant.pk, "code": "R_NEW", "name": "New",
                                                        "slots": "0.4, 0.2, 60s, 60s, 0s\n0, 0.1, 60s, 1s, 60s"})
    assert response.status_code == 302
    rate = Rate.objects.get(code="R_NEW")
    assert [(s.price, s.rate_increment) for s in rate.slots.order_by("id")] == [
        (Decimal("0.2"), 60 * 10**9), (Decimal("0.1"), 10**9)]
    page = client.get(reverse("rating:rate_edit", args=[rate.pk])).content.decode()
    assert "0.4, 0.2, 60s, 60s, 0s" in page
    bad = client.post(reverse("rating:rate_add"), {"tenant": tenant.pk, "code": "R_BAD", "slots": "0.4, 0.2"})
    assert bad.status_code == 200 and "give 4 or 5 values" in bad.content.decode()


@pytest.mark.skipif(INTEROP is None and not os.environ.get("CI"), reason="interop plans not found")
def test_cgrates_screen_upload_and_export(make_user, staff_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = staff_client(make_user("rating.import_plan", "rating.export_plan"))
    uploads = [SimpleUploadedFile(p.name, p.read_bytes()) for p in (INTEROP / "tutorial").glob("*.csv")]
    response = client.post(reverse("rating:cgrates"), {"files": uploads, "tenant": "screen.test"})
    assert response.status_code == 200, response.content.decode()[:3000]
    export = client.get(reverse("rating:cgrates") + "?export=screen.test")
    assert export.status_code == 200 and export["Content-Type"] == "application/zip"


def test_api_schema_mentions_rating():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert "/api/v1/rating/cost" in schema["paths"] and "/api/v1/usage/" in schema["paths"]
    json.dumps(schema, default=str)
