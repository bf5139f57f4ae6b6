"""Automatic steps: entered, their post-handlers run and the ticket moves on by itself along the
step's forward transition, in the same request and transaction; a failure rolls the whole move
back; automatic steps that lead round to each other are refused when the flow is edited, and a
loop that slipped past (edited under the services) stops with a clear error."""

import pytest

from tarifa.kernel.errors import DomainError
from tarifa.ledger.models import Transfer
from tarifa.subscriptions.models import Subscription
from tarifa.tickets import services
from tarifa.tickets.models import FlowEntry, Step, Ticket, Transition

from .helpers import ACTOR, open_activation
from tarifa.subscriptions.tests.helpers import customer_account, make_catalog, pay

pytestmark = pytest.mark.django_db


def automatic_flow():
    """new → provision (automatic: activates the tariff) → active (final, a staff note);
    provision ↩ new (backward: never taken automatically)."""
    tt = services.create_ticket_type(actor=ACTOR, code="auto-activation", name="Automatic activation")
    new = services.create_step(actor=ACTOR, ticket_type=tt, code="new", name="New", order=10)
    provision = services.create_step(actor=ACTOR, ticket_type=tt, code="provision", name="Provisioning",
                                     order=20, automatic=True)
    active = services.create_step(actor=ACTOR, ticket_type=tt, code="active", name="Active", order=30, final=True)
    services.add_handler(actor=ACTOR, step=provision, kind="activate_subscription", phase="post")
    services.add_handler(actor=ACTOR, step=active, kind="notify", phase="post",
                         parameters={"to": "staff", "message": "Provisioned automatically."})
    services.create_transition(actor=ACTOR, from_step=new, to_step=provision)
    services.create_transition(actor=ACTOR, from_step=provision, to_step=new, direction="backward",
                               requires_resolution=True)
    services.create_transition(actor=ACTOR, from_step=provision, to_step=active)
    return tt, {"new": new, "provision": provision, "active": active}


def _world(funds="100"):
    tariffs = make_catalog()
    account = customer_account()
    if funds:
        pay(account, funds)
    tt, steps = automatic_flow()
    ticket = open_activation(tt, account, tariffs["NET-31"], parameters={"login": "auto1"})
    return account, tt, steps, ticket


def test_advancing_into_an_automatic_step_runs_it_and_moves_on_in_the_same_request(api, make_user):
    account, tt, steps, ticket = _world()
    client = api(make_user("tickets.view_ticket", "tickets.advance_ticket"))
    r = client.post(f"/api/v1/tickets/{ticket.pk}/advance/", {"from": "new", "to": "provision"}, format="json")
    assert r.status_code == 200, r.json()
    body = r.json()
    # One request: through "provision" (its handler activated the tariff) and on to "active".
    assert body["step"] == "active" and body["closed_at"]
    sub = Subscription.objects.get(billing_account=account)
    assert sub.status == "active" and body["subscription"] == sub.number
    moved = [e for e in body["history"] if e["kind"] == "moved"]
    assert [(e["from_step"], e["to_step"], e["resolution"]) for e in moved] == [
        ("new", "provision", ""), ("provision", "active", "automatic")]
    assert moved[0]["results"][0]["kind"] == "activate_subscription"
    assert moved[1]["results"] == [{"kind": "notify", "phase": "post", "notified": "staff"}]
    assert ticket.comments.filter(text="Provisioned automatically.").exists()


def test_a_handler_failure_in_an_automatic_step_rolls_the_whole_move_back_and_is_recorded(
        transactional_db, api, make_user):
    account, tt, steps, ticket = _world(funds=None)  # prepaid without money: the activation fails
    transfers = Transfer.objects.count()
    client = api(make_user("tickets.view_ticket", "tickets.advance_ticket"))
    r = client.post(f"/api/v1/tickets/{ticket.pk}/advance/", {"from": "new", "to": "provision"}, format="json")
    assert r.status_code == 422 and r.json()["error"]["code"] == "handler_failed", r.json()
    ticket.refresh_from_db()
    assert ticket.step.code == "new" and ticket.closed_at is None
    assert not Subscription.objects.exists() and Transfer.objects.count() == transfers
    assert not FlowEntry.objects.filter(ticket=ticket, kind="moved").exists()
    assert "Activate the requested tariff" in ticket.last_error
    failed = FlowEntry.objects.get(ticket=ticket, kind="failed")
    assert (failed.from_step.code, failed.to_step.code) == ("new", "provision") and failed.error


def test_a_failure_at_the_step_after_an_automatic_one_rolls_back_both_moves(transactional_db):
    account, tt, steps, ticket = _world()
    services.add_handler(actor=ACTOR, step=steps["active"], kind="open_child_ticket", phase="post",
                         parameters={"ticket_type": "no-such-type"})
    with pytest.raises(DomainError) as exc:
        services.advance(ticket, actor=ACTOR, from_step="new", to_step="provision")
    assert exc.value.code == "handler_failed"
    ticket.refresh_from_db()
    assert ticket.step.code == "new" and ticket.subscription_id is None
    assert not Subscription.objects.exists()  # the automatic step's activation rolled back too
    assert list(FlowEntry.objects.filter(ticket=ticket).values_list("kind", flat=True).order_by("at")) == [
        "opened", "failed"]


def test_automatic_steps_that_lead_round_to_each_other_are_refused_when_the_flow_is_edited():
    tt = services.create_ticket_type(actor=ACTOR, code="loopy", name="Loopy")
    new = services.create_step(actor=ACTOR, ticket_type=tt, code="new", name="New", order=10)
    a = services.create_step(actor=ACTOR, ticket_type=tt, code="a", name="A", order=20, automatic=True)
    b = services.create_step(actor=ACTOR, ticket_type=tt, code="b", name="B", order=30, automatic=True)
    services.create_transition(actor=ACTOR, from_step=new, to_step=a)
    services.create_transition(actor=ACTOR, from_step=a, to_step=b)
    with pytest.raises(DomainError) as exc:
        services.create_transition(actor=ACTOR, from_step=b, to_step=a)
    assert exc.value.code == "automatic_loop" and "a → b → a" in exc.value.message
    assert not Transition.objects.filter(from_step=b).exists()
    # A forward move back to a manual step is no loop: the ticket stops there.
    services.create_transition(actor=ACTOR, from_step=b, to_step=new)
    # Making the manual step automatic would close the circle: refused, nothing changed.
    with pytest.raises(DomainError) as exc:
        services.update_step(new, actor=ACTOR, automatic=True)
    assert exc.value.code == "automatic_loop"
    assert Step.objects.get(pk=new.pk).automatic is False


def test_a_loop_that_slipped_past_the_editor_stops_with_a_clear_error_and_changes_nothing():
    tt = services.create_ticket_type(actor=ACTOR, code="loopy", name="Loopy")
    new = services.create_step(actor=ACTOR, ticket_type=tt, code="new", name="New", order=10)
    a = services.create_step(actor=ACTOR, ticket_type=tt, code="a", name="A", order=20, automatic=True)
    b = services.create_step(actor=ACTOR, ticket_type=tt, code="b", name="B", order=30, automatic=True)
    services.create_transition(actor=ACTOR, from_step=new, to_step=a)
    services.create_transition(actor=ACTOR, from_step=a, to_step=b)
    Transition.objects.create(ticket_type=tt, from_step=b, to_step=a)  # under the services: not checked
    account = customer_account()
    ticket = services.open_ticket(actor=ACTOR, ticket_type=tt, customer=account.customer)
    with pytest.raises(DomainError) as exc:
        services.advance(ticket, actor=ACTOR, from_step="new", to_step="a")
    assert exc.value.code == "automatic_loop" and "a → b → a" in exc.value.message
    assert Ticket.objects.get(pk=ticket.pk).step.code == "new"
    assert not FlowEntry.objects.filter(ticket=ticket, kind="moved").exists()
