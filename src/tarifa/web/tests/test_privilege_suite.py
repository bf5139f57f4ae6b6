"""The privilege suite (issue 11, "keep it closed"): every endpoint and screen that changes
users, roles, tokens, templates or settings, as three users —
- one holding every permission of the app *except* the required one: refused (403), nothing written;
- one holding exactly the required one (plus the view permission the screen needs): allowed;
- that same user trying to exceed their own rights (a role they do not hold, a superuser, a
  template tag outside the sandbox): refused with a reason, nothing written.
The rules themselves are tested in identity/tests/test_privileges.py and
billing/tests/test_document_sandbox.py; this walks every door to them.
"""

import re
from dataclasses import dataclass, field

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.test import APIClient

import tarifa.urls  # noqa: F401
from tarifa.testing.demo import demo_loaded

PASSWORD = "N3w-password-for-target"


@dataclass(frozen=True)
class Door:
    id: str
    method: str
    url: str  # formatted with the objects' pks: {target}, {root}, {role}, {token}, {doctemplate}, ...
    permission: str
    body: dict = field(default_factory=dict)
    also: tuple = ()  # permissions the allowed user needs besides (a screen's view permission)
    exceed: dict | None = None  # a body with which the allowed user tries to exceed their rights
    exceed_url: str | None = None
    changed: str = ""  # what the exceeding attempt must leave unchanged: a key of CHECKS

    @property
    def api(self) -> bool:
        return self.url.startswith("/api/")


USERS = "/api/v1/users/"
DOORS = [
    # users
    Door("api-user-create", "post", USERS, "identity.add_user", {"username": "newbie"},
         exceed={"username": "newbie", "roles": ["Powerful"]}, changed="newbie"),
    Door("api-user-update", "patch", USERS + "{target}/", "identity.change_user", {"first_name": "T"},
         exceed={"roles": ["Powerful"]}, changed="target_roles"),
    Door("api-user-update-superuser", "patch", USERS + "{root}/", "identity.change_user", None,
         exceed={"email": "x@example.com"}, changed="root"),
    Door("api-user-password", "patch", USERS + "{target}/", "identity.set_password", {"password": PASSWORD},
         also=("identity.change_user",), exceed={"password": PASSWORD}, exceed_url=USERS + "{root}/", changed="root"),
    Door("api-user-deactivate", "delete", USERS + "{target}/", "identity.delete_user",
         exceed={}, exceed_url=USERS + "{root}/", changed="root"),
    Door("ui-user-add", "post", "/identity/user/add/", "identity.add_user", {"username": "newbie"},
         also=("identity.view_user",), exceed={"username": "newbie", "roles": ["{powerful}"]}, changed="newbie"),
    Door("ui-user-edit", "post", "/identity/user/{target}/edit/", "identity.change_user",
         {"username": "target", "first_name": "T"}, also=("identity.view_user",),
         exceed={"username": "target", "roles": ["{powerful}"]}, changed="target_roles"),
    Door("ui-user-set-password", "post", "/identity/user/{target}/do/set-password/", "identity.set_password",
         {"password": PASSWORD}, also=("identity.view_user",), exceed={"password": PASSWORD},
         exceed_url="/identity/user/{root}/do/set-password/", changed="root"),
    Door("ui-user-deactivate", "post", "/identity/user/{target}/do/deactivate/", "identity.change_user", {},
         also=("identity.view_user",), exceed={}, exceed_url="/identity/user/{root}/do/deactivate/", changed="root"),
    Door("ui-user-issue-token", "post", "/identity/user/{target}/do/issue-token/", "identity.add_apitoken",
         {"name": "t"}, also=("identity.view_user",), exceed={"name": "t"},
         exceed_url="/identity/user/{root}/do/issue-token/", changed="root_tokens"),
    Door("ui-user-import", "post", "/identity/user/import/", "identity.add_user", None, also=("identity.view_user",)),
    # roles
    Door("api-role-create", "post", "/api/v1/roles/", "identity.add_role", {"name": "fresh"},
         exceed={"name": "fresh", "permissions": ["payments.add_payment"]}, changed="fresh"),
    Door("api-role-update", "patch", "/api/v1/roles/{role}/", "identity.change_role", {"description": "d"},
         exceed={"permissions": ["payments.add_payment"]}, changed="role_perms"),
    Door("ui-role-add", "post", "/identity/role/add/", "identity.add_role", {"name": "fresh"},
         also=("identity.view_role",), exceed={"name": "fresh", "permissions": ["{add_payment}"]}, changed="fresh"),
    Door("ui-role-edit", "post", "/identity/role/{role}/edit/", "identity.change_role", {"name": "Blank"},
         also=("identity.view_role",), exceed={"name": "Blank", "permissions": ["{add_payment}"]},
         changed="role_perms"),
    # tokens
    Door("api-token-revoke", "post", "/api/v1/api-tokens/{token}/revoke/", "identity.revoke", {}),
    Door("ui-token-revoke", "post", "/identity/apitoken/{token}/do/revoke/", "identity.revoke", {},
         also=("identity.view_apitoken",)),
    # templates
    Door("api-document-template-create", "post", "/api/v1/document-templates/", "billing.add_documenttemplate",
         {"kind": "receipt", "language": "de", "body": "<p>{{ payment.amount }}</p>"},
         exceed={"kind": "receipt", "language": "de", "body": '{% include "billing/documents/_style.html" %}'},
         changed="receipt_de"),
    Door("api-document-template-update", "patch", "/api/v1/document-templates/{doctemplate}/",
         "billing.change_documenttemplate", {"note": "n"}, exceed={"body": "{% load static %}"},
         changed="doctemplate_body"),
    Door("api-document-template-archive", "delete", "/api/v1/document-templates/{doctemplate}/",
         "billing.delete_documenttemplate"),
    Door("ui-document-template-add", "post", "/billing/documenttemplate/add/", "billing.add_documenttemplate",
         {"kind": "receipt", "language": "de", "body": "<p>{{ payment.amount }}</p>", "note": ""},
         also=("billing.view_documenttemplate",),
         exceed={"kind": "receipt", "language": "de", "body": "{% debug %}", "note": ""}, changed="receipt_de"),
    Door("ui-document-template-edit", "post", "/billing/documenttemplate/{doctemplate}/edit/",
         "billing.change_documenttemplate", None, also=("billing.view_documenttemplate",),
         exceed={"language": "en", "body": '{% extends "web/base.html" %}', "note": ""}, changed="doctemplate_body"),
    Door("api-notification-template-create", "post", "/api/v1/notification-templates/",
         "integrations.add_notificationtemplate", {"event": "resumed", "channel": "sms", "language": "de", "body": "Hi"},
         exceed={"event": "resumed", "channel": "sms", "language": "de", "body": "{% load static %}"},
         changed="resumed_de"),
    Door("api-notification-template-update", "patch", "/api/v1/notification-templates/{notetemplate}/",
         "integrations.change_notificationtemplate", {"active": True}, exceed={"body": '{% include "x" %}'},
         changed="notetemplate_body"),
    # settings: branches, payment gateways
    Door("api-branch-create", "post", "/api/v1/branches/", "branches.add_branch", None),
    Door("api-branch-update", "patch", "/api/v1/branches/{branch}/", "branches.change_branch", None),
    Door("api-gateway-update", "patch", "/api/v1/payment-gateways/{gateway}/", "payments.change_paymentgateway", None),
    Door("ui-branch-edit", "post", "/branches/branch/{branch}/edit/", "branches.change_branch", None),
    Door("ui-gateway-edit", "post", "/payments/paymentgateway/{gateway}/edit/", "payments.change_paymentgateway", None),
]


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    with demo_loaded(django_db_blocker):
        yield


def _perm(name):
    app, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app, codename=codename)


@pytest.fixture
def world(demo, db):
    """The objects the doors open on, made directly (scaffolding, not the subject)."""
    user_model, role_model = get_user_model(), apps.get_model("identity", "Role")
    powerful = role_model.objects.create(name="Powerful")
    powerful.permissions.add(_perm("payments.add_payment"), _perm("identity.add_role"))
    blank = role_model.objects.create(name="Blank")
    target = user_model.objects.create(username="target", password=make_password(None))
    root = user_model.objects.create(username="root", is_superuser=True, email="", password=make_password(None))
    token_model = apps.get_model("identity", "ApiToken")
    token = token_model.objects.create(user=target, prefix="tfa_x", key_hash="0" * 64)
    doc_model = apps.get_model("billing", "DocumentTemplate")
    doctemplate = doc_model.objects.filter(archived_at__isnull=True).first() or doc_model.objects.create(
        kind="invoice", language="en", body="<p>{{ invoice.number }}</p>")
    note_model = apps.get_model("integrations", "NotificationTemplate")
    return {"target": target, "root": root, "role": blank, "powerful": powerful, "token": token,
            "doctemplate": doctemplate, "notetemplate": note_model.objects.first(),
            "branch": apps.get_model("branches", "Branch").objects.first(),
            "gateway": apps.get_model("payments", "PaymentGateway").objects.first(),
            "add_payment": _perm("payments.add_payment")}


def _user(perms) -> object:
    role_model = apps.get_model("identity", "Role")
    n = role_model.objects.count()
    role = role_model.objects.create(name=f"privilege suite {n}")
    role.permissions.add(*[_perm(p) for p in perms])
    user = get_user_model().objects.create(username=f"privilege-{n}", password=make_password(None))
    user.roles.add(role)
    return get_user_model().objects.get(pk=user.pk)


def _call(door, user, world, body, url=None, follow=False):
    url = (url or door.url).format(**{k: getattr(v, "pk", v) for k, v in world.items()})
    if door.api:
        client = APIClient()
        client.force_authenticate(user)
        return getattr(client, door.method)(url, body or {}, format="json")
    client = Client()
    client.force_login(user)
    data = {k: ([str(world[x[1:-1]].pk) if x.startswith("{") else x for x in v] if isinstance(v, list) else v)
            for k, v in (body or {}).items()}
    return getattr(client, door.method)(url, data, follow=follow)


def _state(world):
    user_model = get_user_model()
    root = user_model.objects.get(pk=world["root"].pk)
    doc = apps.get_model("billing", "DocumentTemplate")
    note = apps.get_model("integrations", "NotificationTemplate")
    return {
        "newbie": user_model.objects.filter(username="newbie").exists(),
        "target_roles": sorted(user_model.objects.get(pk=world["target"].pk).roles.values_list("name", flat=True)),
        "root": (root.password, root.email, root.is_active),
        "root_tokens": root.api_tokens.count(),
        "fresh": apps.get_model("identity", "Role").objects.filter(name="fresh").exists(),
        "role_perms": world["role"].permissions.count(),
        "receipt_de": doc.objects.filter(kind="receipt", language="de").exists(),
        "doctemplate_body": doc.objects.get(pk=world["doctemplate"].pk).body,
        "resumed_de": note.objects.filter(event="resumed", channel="sms", language="de").exists(),
        "notetemplate_body": note.objects.get(pk=world["notetemplate"].pk).body,
    }


@pytest.mark.parametrize("door", DOORS, ids=[d.id for d in DOORS])
def test_without_the_right_the_door_is_refused(door, world):
    app = door.permission.split(".")[0]
    others = [f"{app}.{p.codename}" for p in Permission.objects.filter(content_type__app_label=app)
              if f"{app}.{p.codename}" != door.permission]
    user = _user(others)
    before = _state(world)

    response = _call(door, user, world, door.body or door.exceed or {})

    assert response.status_code == 403, (response.status_code, response.content[:300])
    if door.api:
        assert response.json()["error"]["code"] in ("permission_denied", "rights_exceeded")
    assert _state(world) == before


@pytest.mark.parametrize("door", [d for d in DOORS if d.body is not None], ids=[d.id for d in DOORS if d.body is not None])
def test_with_the_right_the_door_opens(door, world):
    user = _user([door.permission, *door.also])

    response = _call(door, user, world, door.body)

    assert response.status_code in (200, 201, 302), (response.status_code, response.content[:500])
    if not door.api and response.status_code == 200:  # a form shown again is a refusal
        assert b"errorlist" not in response.content, response.content.decode()[:2000]


REASON = re.compile(r"Only a superuser may|You may not|You cannot|is not allowed in templates")
EXCEEDING = [d for d in DOORS if d.exceed is not None]


@pytest.mark.parametrize("door", EXCEEDING, ids=[d.id for d in EXCEEDING])
def test_with_the_right_nobody_exceeds_their_own(door, world):
    user = _user([door.permission, *door.also])
    before = _state(world)

    response = _call(door, user, world, door.exceed, url=door.exceed_url, follow=True)

    if door.api:
        assert response.status_code in (400, 403, 422), (response.status_code, response.content[:300])
        reason = response.json()["error"]["message"]
    else:
        assert response.status_code == 200, response.status_code  # the form again, or the record's page
        reason = response.content.decode()
    assert REASON.search(reason), re.findall(r'<ul class="errorlist.*?</ul>', reason, re.S) or reason[:3000]
    assert _state(world)[door.changed] == before[door.changed]
