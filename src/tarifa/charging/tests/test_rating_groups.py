"""Rating groups: Diameter Rating-Group / Service-Identifier → usage type, managed by the operator
(services, API, screen) and read by the Diameter server."""

from decimal import Decimal
from types import SimpleNamespace

import pytest
from diameter.message import constants as C
from diameter.message.avp.grouped import GrantedServiceUnit

from tarifa.audit.models import AuditEvent
from tarifa.kernel import clock
from tarifa.testing.demo import restore_migration_rows

from .. import diameter, selectors, services
from ..client import VOICE_CONTEXT, GyClient, granted_seconds
from ..models import ChargingSession, RatingGroup
from .helpers import ACTOR, DAY, available
from .test_diameter import PGW, server  # noqa: F401 - the running Diameter server


@pytest.fixture(autouse=True)
def fresh_cache():
    selectors.forget_rating_groups()
    yield
    selectors.forget_rating_groups()


@pytest.mark.django_db(transaction=True)
def test_a_configured_rating_group_is_rated_as_its_usage_type_and_an_unknown_one_by_its_context(server):  # noqa: F811
    restore_migration_rows()  # the built-in usage types (an earlier transactional test flushed them)
    w, port, _node = server
    services.create_rating_group(actor=ACTOR, number=30, usage_type="sms", note="SMS over IMS")
    with clock.travel_to(DAY), GyClient("127.0.0.1", port, origin_host=PGW, realm="test.localdomain") as gy:
        # A voice context, but Rating-Group 30 is SMS: one unit at 0.05.
        sms = gy.request("pgw;rg;1", C.E_CC_REQUEST_TYPE_EVENT_REQUEST, subscriber="15550001", context=VOICE_CONTEXT,
                         destination="15550002", requested=GrantedServiceUnit(cc_service_specific_units=1),
                         rating_group=30, requested_action=C.E_REQUESTED_ACTION_DIRECT_DEBITING)
        assert sms.result_code == 2001, sms
        assert sms.multiple_services_credit_control[0].granted_service_unit.cc_service_specific_units == 1
        # Rating-Group 99 is not configured: the documented default, the Service-Context-Id (voice).
        call = gy.initial("pgw;rg;2", "15550001", seconds=60, destination="4420123", rating_group=99)
        assert call.result_code == 2001 and granted_seconds(call) == 60
    assert ChargingSession.objects.get(external_id="pgw;rg;1;rg=30").usage_type == "sms"
    assert ChargingSession.objects.get(external_id="pgw;rg;1;rg=30").charged == Decimal("0.05")
    assert ChargingSession.objects.get(external_id="pgw;rg;2;rg=99").usage_type == "voice"
    assert available(w["prepaid"]) == Decimal("100") - Decimal("0.05") - Decimal("0.65")  # the call's hold


@pytest.mark.django_db
def test_service_identifiers_and_archived_groups():
    restore_migration_rows()  # the built-in usage types (an earlier transactional test flushed them)
    from .helpers import world

    world()
    group = services.create_rating_group(actor=ACTOR, kind="service_identifier", number=400, usage_type="data")
    services.create_rating_group(actor=ACTOR, number=10, usage_type="voice")
    selectors.forget_rating_groups()
    assert selectors.rating_groups() == {"s400": "data", "10": "voice"}
    ccr = SimpleNamespace(service_identifier=None, service_context_id="32274@3gpp.org", requested_service_unit=None,
                          used_service_unit=[])
    assert diameter.usage_type_for(ccr, SimpleNamespace(rating_group=7, service_identifier=[400])) == "data"
    assert diameter.usage_type_for(ccr, SimpleNamespace(rating_group=10, service_identifier=[400])) == "voice"
    services.archive_rating_group(group, actor=ACTOR, reason="retired")
    selectors.forget_rating_groups()
    # Not configured any more: the Service-Context-Id decides (32274: SMS).
    assert diameter.usage_type_for(ccr, SimpleNamespace(rating_group=7, service_identifier=[400])) == "sms"
    # Its number may be mapped anew; a live duplicate may not.
    services.create_rating_group(actor=ACTOR, kind="service_identifier", number=400, usage_type="sms")
    with pytest.raises(Exception) as exc:
        services.create_rating_group(actor=ACTOR, kind="service_identifier", number=400, usage_type="data")
    assert getattr(exc.value, "code", "") == "rating_group_exists"
    assert AuditEvent.objects.filter(object_id=str(group.pk)).count() == 2  # created, archived


@pytest.mark.django_db
def test_rating_groups_api_crud_with_permissions(make_user, api):
    restore_migration_rows()  # the built-in usage types (an earlier transactional test flushed them)
    reader = api(make_user("charging.view_ratinggroup", password=None))
    body = {"kind": "rating_group", "number": 10, "usage_type": "data", "note": "PS data"}
    assert reader.get("/api/v1/charging/rating-groups/").status_code == 200
    assert reader.post("/api/v1/charging/rating-groups/", body, format="json").status_code == 403

    admin = api(make_user("charging.view_ratinggroup", "charging.add_ratinggroup", "charging.change_ratinggroup",
                          "charging.delete_ratinggroup", password=None))
    r = admin.post("/api/v1/charging/rating-groups/", body, format="json")
    assert r.status_code == 201, r.content
    created = r.json()
    assert (created["number"], created["usage_type"], created["kind"]) == (10, "data", "rating_group")
    assert admin.post("/api/v1/charging/rating-groups/", body, format="json").status_code == 409
    bad = admin.post("/api/v1/charging/rating-groups/", {**body, "number": 11, "usage_type": "nope"}, format="json")
    assert bad.status_code == 400 and "usage_type" in str(bad.json())
    big = admin.post("/api/v1/charging/rating-groups/", {**body, "number": 2**32}, format="json")
    assert big.status_code == 400
    assert reader.patch(f"/api/v1/charging/rating-groups/{created['id']}/", {"usage_type": "voice"},
                        format="json").status_code == 403
    r = admin.patch(f"/api/v1/charging/rating-groups/{created['id']}/", {"usage_type": "voice"}, format="json")
    assert r.status_code == 200 and r.json()["usage_type"] == "voice"
    selectors.forget_rating_groups()
    assert selectors.rating_groups() == {"10": "voice"}
    assert reader.delete(f"/api/v1/charging/rating-groups/{created['id']}/").status_code == 403
    r = admin.delete(f"/api/v1/charging/rating-groups/{created['id']}/", {"reason": "gone"}, format="json")
    assert r.status_code == 200 and r.json()["archived_at"]
    selectors.forget_rating_groups()
    assert selectors.rating_groups() == {}
    assert admin.post("/api/v1/charging/rating-groups/", body, format="json").status_code == 201


@pytest.mark.django_db
def test_rating_groups_screen(make_user, client):
    restore_migration_rows()  # the built-in usage types (an earlier transactional test flushed them)
    client.force_login(make_user("charging.view_diameterpeer", password=None))
    assert client.get("/charging/ratinggroup/").status_code == 403
    client.force_login(make_user(username="admin", superuser=True, password=None))
    r = client.post("/charging/ratinggroup/add/", {"kind": "rating_group", "number": "20", "usage_type": "voice",
                                                   "note": "IMS voice"})
    assert r.status_code == 302, r.content.decode()[:2000]
    group = RatingGroup.objects.get(number=20)
    assert group.usage_type_id == "voice"
    page = client.get("/charging/ratinggroup/").content.decode()
    assert "IMS voice" in page or "20" in page
    r = client.post(f"/charging/ratinggroup/{group.pk}/edit/", {"kind": "rating_group", "number": "20",
                                                                "usage_type": "data", "note": "PS"})
    assert r.status_code == 302
    group.refresh_from_db()
    assert group.usage_type_id == "data"
    again = client.post("/charging/ratinggroup/add/", {"kind": "rating_group", "number": "20", "usage_type": "sms"})
    assert again.status_code == 200 and RatingGroup.objects.filter(number=20).count() == 1
    r = client.post(f"/charging/ratinggroup/{group.pk}/archive/", {"reason": "gone"})
    assert r.status_code in (200, 302)
    group.refresh_from_db()
    assert group.archived_at is not None
