"""Tickets tell people: a step's notification addressed to the customer becomes the customer's
message (integrations), and an SLA escalation e-mails the staff it names. Here, outside the apps,
because tickets and integrations are siblings that meet only through events."""

import datetime as dt

import pytest

from tarifa.crm import services as crm
from tarifa.integrations import services as integrations
from tarifa.integrations.models import Notification
from tarifa.kernel.clock import now, travel_to
from tarifa.subscriptions.tests.helpers import run_events
from tarifa.tickets import services
from tarifa.tickets.tests.helpers import ACTOR, open_activation, world

pytestmark = pytest.mark.django_db


def test_an_escalation_emails_the_escalation_user(make_user, mailoutbox):
    boss = make_user("tickets.view_ticket", username="boss", password=None)
    boss.email = "boss@operator.example"
    boss.save(update_fields=["email"])
    with travel_to(now()) as clock:
        tariffs, account, tt, _steps = world(sla_minutes=60, escalate_to_user=boss)
        ticket = open_activation(tt, account, tariffs["NET-31"])
        clock.add(dt.timedelta(minutes=61))
        assert services.escalate_overdue() == 1
    run_events()
    # Sent through the mail backend (the test runner's in-memory one; the local outbox when none is set).
    [mail] = mailoutbox
    assert mail.to == ["boss@operator.example"] and mail.subject == f"Ticket {ticket.number} is overdue"
    assert "Overdue" in mail.body
    run_events()  # handled once
    assert len(mailoutbox) == 1


def test_a_step_notification_to_the_customer_reaches_them():
    tariffs, account, tt, steps = world()
    integrations.create_template(actor=ACTOR, event="ticket_message", channel="email",
                                 subject="Request {{ ticket }}", body="About {{ ticket }}: {{ text }}")
    crm.add_contact(account.customer, actor=ACTOR, kind="email", value="ivan@example.com")
    services.add_handler(actor=ACTOR, step=steps["install"], kind="notify", phase="post",
                         parameters={"to": "customer", "message": "A technician comes on Monday."})
    ticket = open_activation(tt, account, tariffs["NET-31"])
    services.advance(ticket, actor=ACTOR, from_step="new", to_step="install")
    run_events()
    note = Notification.objects.get(event="ticket_message", customer=account.customer)
    assert note.recipient == "ivan@example.com" and note.subject == f"Request {ticket.number}"
    assert note.body == f"About {ticket.number}: A technician comes on Monday."
