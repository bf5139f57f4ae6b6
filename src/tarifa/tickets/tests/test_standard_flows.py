"""Activation, tariff change and termination through tickets end to end (the API's advance), and the
pages those tickets changed — the subscription's and the invoice's — link back to them."""

import pytest

from tarifa.billing import services as billing
from tarifa.subscriptions.models import Subscription
from tarifa.subscriptions.tests.helpers import run_events
from tarifa.tickets import flows, services

from .helpers import ACTOR, open_activation, world

pytestmark = pytest.mark.django_db


def _advance(client, ticket, moves):
    for frm, to, data in moves:
        r = client.post(f"/api/v1/tickets/{ticket.pk}/advance/", {"from": frm, "to": to, "data": data}, format="json")
        assert r.status_code == 200, r.json()
    return r.json()


def test_activation_tariff_change_and_termination_run_through_tickets(api, make_user, staff_client, admin_user):
    tariffs, account, activation, _steps = world(funds="200")
    change = flows.install(flows.TARIFF_CHANGE, actor=ACTOR)
    termination = flows.install(flows.TERMINATION, actor=ACTOR)
    client = api(make_user("tickets.view_ticket", "tickets.advance_ticket", password=None))

    opened = open_activation(activation, account, tariffs["NET-31"])
    _advance(client, opened, [("new", "install", {}), ("install", "active", {"login": "flows1"})])
    sub = Subscription.objects.get(billing_account=account)
    assert sub.status == "active" and sub.tariff.code == "NET-31"

    upgrade = services.open_ticket(actor=ACTOR, ticket_type=change, customer=account.customer,
                                   billing_account=account, subscription=sub, requested_tariff=tariffs["NET-62"])
    body = _advance(client, upgrade, [("new", "approval", {}), ("approval", "done", {})])
    sub.refresh_from_db()
    assert sub.tariff.code == "NET-62" and body["closed_at"]

    leave = services.open_ticket(actor=ACTOR, ticket_type=termination, customer=account.customer,
                                 billing_account=account, subscription=sub)
    _advance(client, leave, [("new", "retention", {}), ("retention", "terminated", {"outcome": "leaves"})])
    sub.refresh_from_db()
    assert sub.status == "terminated"
    run_events()

    # The subscription's page names the three tickets that changed it, linked.
    staff = staff_client(admin_user)
    page = staff.get(f"/subscriptions/subscription/{sub.pk}/").content.decode()
    for ticket in (opened, upgrade, leave):
        ticket.refresh_from_db()
        assert f'data-ticket="{ticket.number}"' in page and f"/tickets/ticket/{ticket.pk}/" in page

    # The invoice that bills the subscription links to them too.
    cycle = billing.create_cycle(actor=ACTOR, code="TK", name="Tickets test", day_of_month=1)
    billing.assign_cycle(actor=ACTOR, billing_account=account, cycle=cycle)
    invoice = billing.bill_now(actor=ACTOR, billing_account=account, reason="tickets test")
    assert invoice.lines.filter(subscription=sub).exists()
    page = staff.get(f"/billing/invoice/{invoice.pk}/").content.decode()
    assert 'data-panel="tickets-invoice"' in page
    assert all(f'data-ticket="{t.number}"' in page for t in (opened, upgrade, leave))
