"""The scripts API: create and edit (versions), test (dry run), the run log; notify through the templates."""

import datetime as dt

import pytest
from django.apps import apps

from tarifa.scripts import services
from tarifa.scripts.models import Script, ScriptRun
from tarifa.subscriptions import services as subscriptions
from tarifa.subscriptions.tests.helpers import customer_account, make_catalog, pay, run_events

pytestmark = pytest.mark.django_db


def test_create_edit_version_and_test_through_the_api(api, make_user):
    user = make_user("scripts.add_script", "scripts.change_script", "scripts.view_script", "scripts.test_script",
                     "scripts.view_scriptversion", "scripts.view_scriptrun", password=None)
    client = api(user)
    created = client.post("/api/v1/scripts/", {"code": "double", "name": "Double", "source": "return context.n * 2"},
                          format="json")
    assert created.status_code == 201, created.content
    assert created.data["current_version"] == 1 and created.data["kind"] == "handler"
    pk = created.data["id"]
    changed = client.patch(f"/api/v1/scripts/{pk}/", {"source": "return context.n * 3", "note": "triple"},
                           format="json")
    assert changed.status_code == 200 and changed.data["current_version"] == 2
    versions = client.get(f"/api/v1/scripts/{pk}/versions/")
    assert [v["number"] for v in versions.data] == [2, 1] and versions.data[0]["note"] == "triple"
    tested = client.post(f"/api/v1/scripts/{pk}/test/", {"context": {"n": 5}}, format="json")
    assert tested.status_code == 200, tested.content
    assert tested.data["value"] == 15 and tested.data["dry_run"] and tested.data["outcome"] == "ok"
    old = client.post(f"/api/v1/scripts/{pk}/test/", {"context": {"n": 5}, "version": 1}, format="json")
    assert old.data["value"] == 10 and old.data["version"] == 1
    runs = client.get("/api/v1/script-runs/", {"script": pk})
    assert runs.status_code == 200 and runs.data["count"] == 2
    broken = client.patch(f"/api/v1/scripts/{pk}/", {"source": "return ("}, format="json")
    assert broken.status_code == 400 and broken.data["error"]["code"] == "syntax_error"
    assert "source" in broken.data["error"]["fields"]


def test_testing_needs_its_permission(api, make_user):
    script = services.create_script(actor="test", code="x", name="X", source="return 1")
    viewer = make_user("scripts.view_script", password=None)
    refused = api(viewer).post(f"/api/v1/scripts/{script.pk}/test/", {}, format="json")
    assert refused.status_code == 403
    assert not ScriptRun.objects.exists()


def test_restore_through_the_api(api, make_user):
    user = make_user("scripts.change_script", "scripts.view_scriptversion", password=None)
    script = services.create_script(actor="test", code="r", name="R", source="return 1")
    services.update_script(script, actor="test", source="return 2")
    v1 = script.versions.get(number=1)
    restored = api(user).post(f"/api/v1/script-versions/{v1.pk}/restore/", format="json")
    assert restored.status_code == 200 and restored.data["number"] == 3
    assert Script.objects.get(pk=script.pk).source == "return 1"


def test_notify_reaches_the_customer_through_the_templates():
    tariffs = make_catalog(start=dt.date(2024, 1, 1))
    account = customer_account()
    pay(account, "50")
    subscriptions.create_subscription(actor="test", billing_account=account, tariff=tariffs["NET-31"],
                                      login="notify-me", activate=True)
    script = services.create_script(
        actor="test", code="hello", name="Hello",
        source='notify(context.customer, "Welcome", "Your line " .. context.login .. " is ready.") return true')
    result = services.run_script(script=script, actor="system",
                                 context={"customer": account.customer.number, "login": "notify-me"})
    assert result.ok, result.error
    run_events()
    Notification = apps.get_model("integrations", "Notification")
    note = Notification.objects.get(customer=account.customer, event="script_message")
    # No template or address in this test: recorded as skipped, with its reason.
    assert note.status in ("skipped", "pending", "outbox")


def test_notify_in_a_dry_run_sends_nothing(admin_user):
    account = customer_account()
    script = services.create_script(actor="test", code="hello", name="Hello",
                                    source='notify(context.customer, "Hi", "Text") return true')
    run = services.test_script(script, actor=admin_user, context={"customer": account.customer.number})
    assert run.outcome == "ok" and run.calls[0]["ok"]
    run_events()
    assert not apps.get_model("integrations", "Notification").objects.filter(event="script_message").exists()
