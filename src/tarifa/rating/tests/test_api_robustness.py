"""DELETE of a plan's parts and usage formats without a spec: a clear answer, nothing half-written."""

import pytest

from tarifa.audit.models import AuditEvent

from .. import services
from ..models import DestinationPrefix, RateSlot, RatingPlanBinding, UsageFormat
from .helpers import make_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_api(make_user, api):
    client = api(make_user(username="admin", superuser=True, password=None))
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize("route,model", [("rating-prefixes", DestinationPrefix), ("rating-rate-slots", RateSlot),
                                         ("rating-plan-bindings", RatingPlanBinding)])
def test_deleting_a_part_of_a_plan_answers_204_and_is_audited(admin_api, route, model):
    """It answered 500 after the delete was committed (the part's serializer was given its parent)."""
    plan = make_plan()
    if model is RateSlot:  # a rate keeps at least one slot: delete a second one
        part = services.create_rate_slot(actor="test", rate=plan["rates"]["R_MIN"], price="0.20",
                                         rate_unit="60s", rate_increment="60s", group_interval_start="60s")
    else:
        part = model.objects.order_by("pk").first()
    before = model.objects.count()

    response = admin_api.delete(f"/api/v1/{route}/{part.pk}/", {"reason": "cleanup"}, format="json")

    assert response.status_code == 204, response.content[:300]
    assert model.objects.count() == before - 1 and not model.objects.filter(pk=part.pk).exists()
    assert AuditEvent.objects.filter(object_id=str(part.pk), action="delete").exists()


def test_a_usage_format_without_spec_is_400_by_field(admin_api):
    response = admin_api.post("/api/v1/usage-formats/", {"code": "myfmt", "name": "Mine"}, format="json")

    assert response.status_code == 400, response.content[:300]
    assert list(response.json()["error"]["fields"]) == ["spec"]
    assert not UsageFormat.objects.filter(code="myfmt").exists()


def test_a_nul_in_a_usage_file_rejects_that_line_and_keeps_it(db):
    """A NUL byte reached PostgreSQL (500); now the line is rejected as malformed, shown with \\0."""
    import io

    from .. import usage
    from ..models import RejectedUsage

    batch = usage.import_file(io.BytesIO(
        b"record_id,source,subject,destination,type,start_time,usage\n"
        b"n1,sw1,+1555\x000001,1555123,voice,2024-03-05T10:00:00Z,45\n"), format="csv", actor="test",
        file_name="nul.csv")

    assert (batch.read, batch.rejected) == (1, 1)
    rejected = RejectedUsage.objects.get(batch=batch)
    assert "NUL" in rejected.message and "\\0" in rejected.raw


@pytest.mark.parametrize("spec", ["[" * 100_000 + "]" * 100_000, '{"delimiter": "a\\u0000"}'])
def test_a_usage_format_spec_on_the_screen_is_bounded_json(make_user, client, spec):
    """Deeply nested JSON in a form's JSON text was a RecursionError (500)."""
    client.force_login(make_user(username="admin", superuser=True, password=None))
    client.raise_request_exception = False

    response = client.post("/rating/usageformat/add/", {"code": "deep", "name": "Deep", "spec": spec})

    assert response.status_code == 200, response.status_code
    assert response.context["form"].errors["spec"]
    assert not UsageFormat.objects.filter(code="deep").exists()
