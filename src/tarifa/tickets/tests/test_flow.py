"""Tickets: moves through the flow, exactly once, vetoes, failures, backward moves, queues, SLA."""

import datetime as dt
import threading

import pytest

from tarifa.kernel.clock import now, travel_to
from tarifa.ledger.models import Transfer
from tarifa.subscriptions.models import Subscription
from tarifa.tickets import selectors, services
from tarifa.tickets.models import FlowEntry, Ticket

from .helpers import ACTOR, open_activation, world

pytestmark = pytest.mark.django_db


def _error(r):
    return r.json()["error"]


def test_activation_ticket_moves_to_the_end_and_activates_the_requested_tariff(api, make_user):
    tariffs, account, tt, steps = world()
    user = make_user("tickets.view_ticket", "tickets.advance_ticket")
    ticket = open_activation(tt, account, tariffs["NET-31"])
    client = api(user)
    url = f"/api/v1/tickets/{ticket.pk}/"
    body = client.get(url).json()
    assert body["step"] == "new"
    assert body["transitions"] == [{"to": "install", "name": "Installation", "label": "Installation",
                                    "direction": "forward", "requires_resolution": False, "fields": []}]
    r = client.post(url + "advance/", {"from": "new", "to": "install"}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["step"] == "install"
    fields = {t["to"]: t["fields"] for t in r.json()["transitions"]}
    assert [f["name"] for f in fields["active"]] == ["login", "visit"] and fields["new"] == []
    r = client.post(url + "advance/", {"from": "install", "to": "active", "data": {"login": "jdoe"}}, format="json")
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["step"] == "active" and body["closed_at"] and body["transitions"] == []
    sub = Subscription.objects.get(billing_account=account)
    assert sub.status == "active" and sub.tariff.code == "NET-31" and sub.login == "jdoe"
    assert body["subscription"] == sub.number
    moved = [e for e in body["history"] if e["kind"] == "moved"]
    assert [(e["from_step"], e["to_step"]) for e in moved] == [("new", "install"), ("install", "active")]
    assert moved[-1]["results"][0]["subscription"] == sub.number
    assert moved[-1]["data"] == {"login": "jdoe"}


def test_stale_step_missing_data_and_moves_not_in_the_flow_are_refused(api, make_user):
    tariffs, account, tt, steps = world()
    client = api(make_user("tickets.view_ticket", "tickets.advance_ticket"))
    ticket = open_activation(tt, account, tariffs["NET-31"])
    url = f"/api/v1/tickets/{ticket.pk}/advance/"
    r = client.post(url, {"from": "install", "to": "active"}, format="json")
    assert r.status_code == 409 and _error(r)["code"] == "stale_step"
    r = client.post(url, {"from": "new", "to": "active"}, format="json")
    assert r.status_code == 400 and _error(r)["code"] == "not_in_flow"
    client.post(url, {"from": "new", "to": "install"}, format="json")
    r = client.post(url, {"from": "install", "to": "active", "data": {}}, format="json")
    assert r.status_code == 400 and _error(r)["code"] == "invalid_data" and "data.login" in _error(r)["fields"]
    r = client.post(url, {"from": "install", "to": "active", "data": {"login": "x", "visit": "tomorrow"}},
                    format="json")
    assert r.status_code == 400 and "data.visit" in _error(r)["fields"]
    r = client.post(url, {"from": "install", "to": "active", "data": {"login": "x", "colour": "red"}}, format="json")
    assert r.status_code == 400 and "data.colour" in _error(r)["fields"]
    assert Ticket.objects.get(pk=ticket.pk).step.code == "install"
    assert not Subscription.objects.exists()


def test_a_retry_with_the_same_idempotency_key_returns_the_first_answer(api, make_user):
    tariffs, account, tt, steps = world()
    client = api(make_user("tickets.view_ticket", "tickets.advance_ticket"))
    ticket = open_activation(tt, account, tariffs["NET-31"])
    url = f"/api/v1/tickets/{ticket.pk}/advance/"
    first = client.post(url, {"from": "new", "to": "install"}, format="json", HTTP_IDEMPOTENCY_KEY="mv-1")
    again = client.post(url, {"from": "new", "to": "install"}, format="json", HTTP_IDEMPOTENCY_KEY="mv-1")
    assert first.status_code == again.status_code == 200
    assert again["Idempotent-Replayed"] == "true" and again.json()["step"] == "install"
    other = client.post(url, {"from": "new", "to": "install"}, format="json", HTTP_IDEMPOTENCY_KEY="mv-2")
    assert other.status_code == 409 and _error(other)["code"] == "stale_step"
    assert FlowEntry.objects.filter(ticket=ticket, kind="moved").count() == 1


def test_a_veto_leaves_ticket_ledger_and_subscriptions_unchanged(api, make_user):
    tariffs, account, tt, steps = world()
    services.add_handler(actor=ACTOR, step=steps["active"], kind="require_values", phase="pre",
                         parameters={"names": ["approved_by"]})
    ticket = open_activation(tt, account, tariffs["NET-31"])
    services.advance(ticket, actor=ACTOR, from_step="new", to_step="install")
    before = (Transfer.objects.count(), Subscription.objects.count())
    client = api(make_user("tickets.view_ticket", "tickets.advance_ticket"))
    r = client.post(f"/api/v1/tickets/{ticket.pk}/advance/", {"from": "install", "to": "active",
                                                               "data": {"login": "jdoe"}}, format="json")
    assert r.status_code == 422 and _error(r)["code"] == "vetoed"
    assert "approved_by" in _error(r)["message"]
    ticket.refresh_from_db()
    assert ticket.step.code == "install" and ticket.data == {} and ticket.closed_at is None
    assert (Transfer.objects.count(), Subscription.objects.count()) == before


def test_a_failing_post_handler_rolls_the_move_back_and_is_recorded(transactional_db, api, make_user):
    tariffs, account, tt, steps = world(funds=None)  # prepaid, no money: activation is refused
    ticket = open_activation(tt, account, tariffs["NET-31"])
    services.advance(ticket, actor=ACTOR, from_step="new", to_step="install")
    transfers = Transfer.objects.count()
    client = api(make_user("tickets.view_ticket", "tickets.advance_ticket"))
    r = client.post(f"/api/v1/tickets/{ticket.pk}/advance/", {"from": "install", "to": "active",
                                                               "data": {"login": "jdoe"}}, format="json",
                    HTTP_IDEMPOTENCY_KEY="fail-1")
    assert r.status_code == 422 and _error(r)["code"] == "handler_failed", r.json()
    ticket.refresh_from_db()
    assert ticket.step.code == "install" and ticket.closed_at is None and ticket.data == {}
    assert not Subscription.objects.exists() and Transfer.objects.count() == transfers
    # Recorded after the rollback, in its own transaction:
    assert "Activate the requested tariff" in ticket.last_error
    failed = FlowEntry.objects.get(ticket=ticket, kind="failed")
    assert failed.from_step.code == "install" and failed.to_step.code == "active" and failed.error
    # The same key again runs again (errors are not stored) and fails the same way, recorded once more.
    r = client.post(f"/api/v1/tickets/{ticket.pk}/advance/", {"from": "install", "to": "active",
                                                               "data": {"login": "jdoe"}}, format="json",
                    HTTP_IDEMPOTENCY_KEY="fail-1")
    assert r.status_code == 422
    assert FlowEntry.objects.filter(ticket=ticket, kind="failed").count() == 2


def test_a_backward_move_needs_a_resolution_and_is_in_the_history(api, make_user):
    tariffs, account, tt, steps = world()
    ticket = open_activation(tt, account, tariffs["NET-31"])
    services.advance(ticket, actor=ACTOR, from_step="new", to_step="install")
    client = api(make_user("tickets.view_ticket", "tickets.advance_ticket"))
    url = f"/api/v1/tickets/{ticket.pk}/advance/"
    body = client.get(f"/api/v1/tickets/{ticket.pk}/").json()
    back = next(t for t in body["transitions"] if t["to"] == "new")
    assert back == {"to": "new", "name": "New", "label": "New", "direction": "backward",
                    "requires_resolution": True, "fields": []}
    r = client.post(url, {"from": "install", "to": "new"}, format="json")
    assert r.status_code == 400 and _error(r)["code"] == "resolution_required"
    r = client.post(url, {"from": "install", "to": "new", "resolution": "No cable to the building."}, format="json")
    assert r.status_code == 200 and r.json()["step"] == "new"
    last = [e for e in r.json()["history"] if e["kind"] == "moved"][-1]
    assert (last["from_step"], last["to_step"], last["resolution"]) == ("install", "new", "No cable to the building.")
    assert last["seconds_at_step"] is not None


def test_concurrent_moves_succeed_once_per_step_and_make_one_subscription(transactional_db, api, make_user):
    tariffs, account, tt, steps = world()
    user = make_user("tickets.view_ticket", "tickets.advance_ticket")
    ticket = open_activation(tt, account, tariffs["NET-31"])
    clients = [api(user) for _ in range(10)]
    url = f"/api/v1/tickets/{ticket.pk}/advance/"

    def race(body):
        results = []
        barrier = threading.Barrier(10)

        def send(client):
            from django.db import connection

            try:
                barrier.wait(timeout=30)
                r = client.post(url, body, format="json")
                results.append((r.status_code, r.json().get("error", {}).get("code")))
            finally:
                connection.close()

        threads = [threading.Thread(target=send, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sorted(results, key=lambda x: x[0])

    first = race({"from": "new", "to": "install"})
    assert first == [(200, None)] + [(409, "stale_step")] * 9
    second = race({"from": "install", "to": "active", "data": {"login": "race"}})
    assert second == [(200, None)] + [(409, "stale_step")] * 9
    assert Subscription.objects.filter(billing_account=account).count() == 1
    assert FlowEntry.objects.filter(ticket=ticket, kind="moved").count() == 2


def test_a_step_queue_limits_who_lists_sees_and_moves_its_tickets(api, make_user, staff_client):
    from tarifa.identity import services as identity

    techs = identity.create_role(actor=ACTOR, name="Techs")
    tariffs, account, tt, steps = world(install_roles=[techs])
    perms = ("tickets.view_ticket", "tickets.advance_ticket", "tickets.change_ticket", "crm.view_customer")
    clerk = make_user(*perms, username="clerk")
    tech = make_user(*perms, username="tech")
    tech.roles.add(techs)
    at_new = open_activation(tt, account, tariffs["NET-31"], title="at new")
    at_install = open_activation(tt, account, tariffs["NET-62"], title="at install")
    services.advance(at_install, actor=ACTOR, from_step="new", to_step="install")

    clerk_api = api(clerk)
    numbers = {t["number"] for t in clerk_api.get("/api/v1/tickets/").json()["results"]}
    assert numbers == {at_new.number}
    assert clerk_api.get(f"/api/v1/tickets/{at_install.pk}/").status_code == 404
    r = clerk_api.post(f"/api/v1/tickets/{at_install.pk}/advance/", {"from": "install", "to": "active",
                                                                      "data": {"login": "x"}}, format="json")
    assert r.status_code == 404
    assert clerk_api.get("/api/v1/tickets/", {"step": "install"}).json()["results"] == []
    # A clerk at "new" may send it to "install" (the move is theirs), but not move it further.
    r = clerk_api.post(f"/api/v1/tickets/{at_new.pk}/advance/", {"from": "new", "to": "install"}, format="json")
    assert r.status_code == 200
    with pytest.raises(Exception) as exc:
        services.advance(at_new, actor=clerk, from_step="install", to_step="active", data={"login": "y"})
    assert getattr(exc.value, "code", "") == "step_forbidden"

    tech_api = api(tech)
    numbers = {t["number"] for t in tech_api.get("/api/v1/tickets/", {"step": "install"}).json()["results"]}
    assert numbers == {at_new.number, at_install.number}

    ui = staff_client(clerk)
    assert ui.get(f"/tickets/ticket/{at_install.pk}/").status_code == 404
    page = ui.get("/tickets/ticket/").content.decode()
    assert at_install.number not in page
    assert ui.post(f"/tickets/ticket/{at_install.pk}/advance/",
                   {"from": "install", "to": "active", "data_login": "x"}).status_code == 404
    ui.force_login(tech)
    assert ui.get(f"/tickets/ticket/{at_install.pk}/").status_code == 200
    r = ui.post(f"/tickets/ticket/{at_install.pk}/advance/", {"from": "install", "to": "active", "data_login": "tk"})
    assert r.status_code == 302
    at_install.refresh_from_db()
    assert at_install.step.code == "active" and at_install.subscription.login == "tk"


def test_overdue_tickets_are_escalated_by_the_sla_job_with_a_moved_clock(make_user):
    boss = make_user("tickets.view_ticket", username="boss")
    start = now()
    with travel_to(start) as clock:
        tariffs, account, tt, steps = world(sla_minutes=120, escalate_to_user=boss)
        ticket = open_activation(tt, account, tariffs["NET-31"])
        assert ticket.due_at == start + dt.timedelta(minutes=120)
        assert services.escalate_overdue() == 0
        assert selectors.overdue_count(boss) == 0
        clock.add(dt.timedelta(minutes=121))
        assert selectors.overdue_count(boss) == 1
        assert services.escalate_overdue() == 1
        assert services.escalate_overdue() == 0  # once per stay at the step
        ticket.refresh_from_db()
        assert ticket.assignee == boss and ticket.escalated_at == clock.current
        entry = FlowEntry.objects.get(ticket=ticket, kind="escalated")
        assert "boss" in entry.resolution and "Overdue" in entry.resolution
        assert ticket.comments.filter(internal=True, text__contains="Overdue").exists()
        # Moving on clears the SLA clock: the next step has none.
        services.advance(ticket, actor=ACTOR, from_step="new", to_step="install")
        assert selectors.overdue_count(boss) == 0


def test_registration_opens_the_customer_the_account_and_activation_tickets():
    tariffs, account, tt, steps = world()
    person, tickets = services.register_customer(
        actor=ACTOR, customer={"kind": "individual", "first_name": "Ada", "last_name": "Lovelace"},
        tariffs=[tariffs["NET-31"], tariffs["TV"]], parameters={"login": "ada"})
    assert person.billing_accounts.count() == 1
    assert [t.requested_tariff.code for t in tickets] == ["NET-31", "TV"]
    assert all(t.step.code == "new" and t.billing_account == person.billing_accounts.get() for t in tickets)
    assert [t.number for t in selectors.tickets_for_customer(person)] == sorted(t.number for t in tickets)[::-1]
