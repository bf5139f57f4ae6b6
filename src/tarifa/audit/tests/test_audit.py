"""The audit trail: every change made through the services says who, when, from where, what.

The audit app sits at the bottom of the layers, so these tests make changes the way an
operator does (screens and API) and reach other apps' models only through the app registry.
"""

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model

from tarifa.audit import context
from tarifa.audit import services as recorded
from tarifa.audit.models import AuditEvent
from tarifa.audit.selectors import history
from tarifa.kernel.errors import ValidationFailed

pytestmark = pytest.mark.django_db

OPERATOR_IP = "203.0.113.7"


@pytest.fixture
def admin(make_user):
    return make_user(username="admin", superuser=True, password=None)


@pytest.fixture
def ui(admin, client):
    client.force_login(admin)
    return client


def events_of(obj):
    events = AuditEvent.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk))
    return list(events.order_by("at", "id"))


def test_a_change_in_the_ui_records_actor_ip_request_id_and_before_after(ui, admin):
    created = ui.post("/identity/user/add/", {"username": "vera", "first_name": "Vera"},
                      REMOTE_ADDR=OPERATOR_IP, HTTP_X_REQUEST_ID="req-create-1", HTTP_X_FORWARDED_FOR="198.51.100.1")
    vera = get_user_model().objects.get(username="vera")
    assert created["X-Request-ID"] == "req-create-1"

    ui.post(f"/identity/user/{vera.pk}/edit/", {"first_name": "Vera", "last_name": "Ivanova", "email": ""},
            REMOTE_ADDR=OPERATOR_IP, HTTP_X_REQUEST_ID="req-edit-2")

    create, update = events_of(vera)
    assert (create.action, create.actor, create.actor_label) == ("create", admin, "admin")
    assert create.ip == OPERATOR_IP  # REMOTE_ADDR, not a client-supplied X-Forwarded-For
    assert (create.request_id, create.channel) == ("req-create-1", "ui")
    assert create.changes["username"] == [None, "vera"]
    assert "password" not in create.changes
    assert (update.action, update.actor, update.request_id, update.ip) == ("update", admin, "req-edit-2", OPERATOR_IP)
    assert update.changes == {"last_name": ["", "Ivanova"]}


def test_a_change_through_the_api_is_recorded_with_channel_api(admin, api, make_user):
    ivan = make_user(username="ivan", password=None)

    response = api(admin).patch(f"/api/v1/users/{ivan.pk}/", {"email": "ivan@example.com"}, format="json",
                                REMOTE_ADDR=OPERATOR_IP)

    assert response.status_code == 200, response.content
    event = events_of(ivan)[-1]
    assert (event.action, event.actor, event.channel, event.ip) == ("update", admin, "api", OPERATOR_IP)
    assert event.changes == {"email": ["", "ivan@example.com"]}
    assert event.request_id == response["X-Request-ID"] and len(event.request_id) == 32


def test_roles_permissions_and_passwords_are_recorded_without_secrets(ui, admin, api):
    response = api(admin).post("/api/v1/roles/", {"name": "clerks", "permissions": ["identity.view_user"]},
                               format="json")
    role = apps.get_model("identity", "Role").objects.get(pk=response.json()["id"])
    assert [(e.action, e.changes) for e in events_of(role)] == [
        ("create", {"id": [None, str(role.pk)], "name": [None, "clerks"], "description": [None, ""]}),
        ("permissions", {"permissions": [[], ["identity.view_user"]]}),
    ]
    ivan = api(admin).post("/api/v1/users/", {"username": "ivan", "roles": ["clerks"]}, format="json").json()
    user = get_user_model().objects.get(pk=ivan["id"])

    ui.post(f"/identity/user/{user.pk}/do/set-password/", {"password": "Corr3ct-horse-battery"})

    user.refresh_from_db()
    actions = [e.action for e in events_of(user)]
    assert actions == ["create", "set_password"]
    assert events_of(user)[0].changes["roles"] == [None, ["clerks"]]
    trail = repr(list(AuditEvent.objects.values()))
    assert "Corr3ct-horse-battery" not in trail and user.password not in trail


def test_an_unchanged_save_records_nothing(ui, make_user):
    ivan = make_user(username="ivan", password=None)
    before = len(events_of(ivan))

    ui.post(f"/identity/user/{ivan.pk}/edit/", {"first_name": "", "last_name": "", "email": ""})

    assert len(events_of(ivan)) == before


def test_the_detail_page_shows_the_history_timeline(ui, admin, make_user):
    ivan = make_user(username="ivan", password=None)
    ui.post(f"/identity/user/{ivan.pk}/edit/", {"first_name": "Ivan", "email": ""}, REMOTE_ADDR=OPERATOR_IP)

    response = ui.get(f"/identity/user/{ivan.pk}/")

    html = response.content.decode()
    timeline = html[html.index('data-testid="history"'):]
    assert [e.action for e in response.context["history"]] == ["update", "create"]  # newest first
    assert "Changed" in timeline and "admin" in timeline and OPERATOR_IP in timeline
    assert "First name" in timeline and "Ivan" in timeline  # in words: the field's label, not its name


def test_the_api_gives_one_records_history(admin, api, make_user, ui):
    ivan = make_user(username="ivan", password=None)
    make_user(username="olga", password=None)
    ui.post(f"/identity/user/{ivan.pk}/edit/", {"first_name": "Ivan", "email": ""}, REMOTE_ADDR=OPERATOR_IP)

    response = api(admin).get("/api/v1/audit-events/", {"object_type": "identity.user", "object_id": str(ivan.pk)})

    assert response.status_code == 200
    results = response.json()["results"]
    assert [e["action"] for e in results] == ["update", "create"]
    assert {e["object_id"] for e in results} == {str(ivan.pk)}
    assert results[0]["actor_label"] == "admin" and results[0]["ip"] == OPERATOR_IP and results[0]["channel"] == "ui"
    assert results[0]["changes"] == {"first_name": ["", "Ivan"]}


def test_the_audit_trail_is_read_only_in_the_api(admin, api):
    event = AuditEvent.objects.first()
    client = api(admin)

    assert client.post("/api/v1/audit-events/", {}, format="json").status_code == 405
    assert client.patch(f"/api/v1/audit-events/{event.pk}/", {"action": "x"}, format="json").status_code == 405
    assert client.delete(f"/api/v1/audit-events/{event.pk}/").status_code == 405
    assert AuditEvent.objects.filter(pk=event.pk, action=event.action).exists()


def test_the_audit_trail_screen_lists_and_filters(ui, make_user):
    make_user("identity.view_user", username="ivan", password=None)  # a role and a user

    response = ui.get("/audit/auditevent/", {"object_type": "identity.role"})

    assert response.status_code == 200
    assert {obj.object_type for obj, _cells in response.context["rows"]} == {"identity.role"}
    found = ui.get("/audit/auditevent/", {"q": "ivan"})
    assert {obj.object_repr for obj, _cells in found.context["rows"]} >= {"ivan"}


def test_changes_outside_a_request_carry_the_bound_context():
    branch_model = apps.get_model("branches", "Branch")
    with context.bind(request_id="job-42", ip="", channel="job"):
        branch = recorded.create(branch_model, actor="nightly job", code="B2", name="Second")
    branch = recorded.update(branch, actor="cli", name="Second branch")
    recorded.update(branch, actor="cli", name="Second branch")  # unchanged: not recorded

    create, update = events_of(branch)
    assert (create.actor, create.actor_label, create.channel, create.request_id, create.ip) == (
        None, "nightly job", "job", "job-42", None)
    assert create.changes["code"] == [None, "B2"]
    assert (update.actor_label, update.channel, update.changes) == ("cli", "", {"name": ["Second", "Second branch"]})
    assert [e.action for e in history(branch)] == ["update", "create"]


def test_an_invalid_change_raises_a_field_error_and_records_nothing():
    branch_model = apps.get_model("branches", "Branch")
    branch = recorded.create(branch_model, actor="test", code="B3", name="Third")

    with pytest.raises(ValidationFailed) as error:
        recorded.update(branch, actor="test", name="")

    assert "name" in error.value.fields
    branch.refresh_from_db()
    assert branch.name == "Third" and len(events_of(branch)) == 1


@pytest.mark.parametrize("remote_addr", ["", "unix:/run/tarifa.sock", "not-an-ip"])
def test_a_peer_without_an_ip_address_is_recorded_as_unknown(ui, make_user, remote_addr):
    ivan = make_user(username="ivan", password=None)

    response = ui.post(f"/identity/user/{ivan.pk}/edit/", {"first_name": "Ivan", "email": ""}, REMOTE_ADDR=remote_addr)

    assert response.status_code == 302
    assert events_of(ivan)[-1].ip is None


def test_ipv6_addresses_are_recorded(ui, make_user):
    ivan = make_user(username="ivan", password=None)

    ui.post(f"/identity/user/{ivan.pk}/edit/", {"first_name": "Ivan", "email": ""}, REMOTE_ADDR="2001:db8::7")

    assert events_of(ivan)[-1].ip == "2001:db8::7"


def test_audit_snapshot_records_a_fingerprint_of_a_secret_field(monkeypatch):
    from tarifa.audit.services import snapshot
    from tarifa.kernel import secrets

    field = AuditEvent._meta.get_field("object_repr")
    customer = AuditEvent(object_repr="Hunter Two")
    assert snapshot(customer)["object_repr"] == "Hunter Two"
    monkeypatch.setattr(field, "secret", True, raising=False)
    recorded = snapshot(customer)["object_repr"]
    assert recorded == secrets.fingerprint("Hunter Two") and "Hunter" not in recorded
