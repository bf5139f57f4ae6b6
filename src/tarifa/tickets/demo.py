"""Demo tickets: the standard flows (activation, tariff change, termination, fault), a field
technicians' role working installation and repair, and tickets in several steps — one
activation carried to the end (its subscription active). Through services only."""

from django.core.files.base import ContentFile

from tarifa.catalog.models import Tariff
from tarifa.crm.models import Customer
from tarifa.identity import services as identity
from tarifa.identity.models import Role, User

from . import flows, services
from .models import Ticket

TECH_PERMS = ["tickets.view_ticket", "tickets.advance_ticket", "tickets.view_comment", "tickets.add_comment",
              "tickets.view_ticketattachment", "tickets.add_ticketattachment", "tickets.view_tickettype",
              "crm.view_customer"]


def _advance(ticket, actor, *moves):
    for to, data in moves:
        ticket = services.advance(ticket, actor=actor, from_step=ticket.step.code, to_step=to, data=data)
    return ticket


def load(*, actor) -> dict:
    if Ticket.objects.exists():
        return {"skipped": "tickets exist"}
    role = Role.objects.filter(name="Field technicians").first() or identity.create_role(
        actor=actor, name="Field technicians", description="Demo role: installs and repairs at the customer's.",
        permissions=identity.permissions_by_name(TECH_PERMS))
    if not User.objects.filter(username="tom.tech").exists():
        identity.create_user(actor=actor, username="tom.tech", first_name="Tom", last_name="Tech",
                             email="tom.tech@example.com", roles=[role])
    types = {flow["code"]: flows.install(flow, actor=actor, roles={"Field technicians": role})
             for flow in flows.STANDARD}
    customers = list(Customer.objects.filter(status="active", archived_at__isnull=True).order_by("number"))
    tariffs = {t.code: t for t in Tariff.objects.filter(code__in=["NET-100", "NET-500"])}
    if not customers or len(tariffs) < 2:
        return {"ticket_types": len(types), "tickets": 0}
    made = []
    acts = types["activation"]
    for i, customer in enumerate(customers[:3]):
        if not customer.billing_accounts.filter(status="active").exists():
            continue
        t = services.open_ticket(actor=actor, ticket_type=acts, customer=customer, requested_tariff=tariffs["NET-500"],
                                 parameters={}, description="Second line at the customer's office (demo).")
        if i == 0:
            t = _advance(t, actor, ("survey", {}), ("contract", {"survey_date": "2026-12-01"}),
                         ("port", {"contract_number": "K-DEMO-1"}), ("installation", {"port": "sw1/0/12"}),
                         ("active", {"cpe_serial": "CPE-DEMO-0001", "login": "demo-ticket-1"}))
        elif i == 1:
            t = _advance(t, actor, ("survey", {}), ("contract", {"survey_date": "2026-12-02"}))
        made.append(t)
    customer = customers[0]
    sub = customer.billing_accounts.first().subscriptions.filter(status="active").order_by("number").first() \
        if customer.billing_accounts.exists() else None
    if sub is not None:
        other = tariffs["NET-500"] if sub.tariff.code == "NET-100" else tariffs["NET-100"]
        if other.service_id == sub.service_id:
            made.append(services.open_ticket(actor=actor, ticket_type=types["tariff-change"], customer=customer,
                                             subscription=sub, requested_tariff=other,
                                             title=f"Tariff change for {sub.number}"))
        made.append(services.open_ticket(actor=actor, ticket_type=types["fault"], customer=customer, subscription=sub,
                                         title="No connection since this morning", priority="high"))
        made.append(services.open_ticket(actor=actor, ticket_type=types["termination"], customer=customer,
                                         subscription=sub, title=f"Customer asks to end {sub.number}",
                                         priority="low"))
    fault = next((t for t in made if t.ticket_type.code == "fault"), None)
    if fault is not None:
        services.add_comment(ticket=fault, actor=actor, text="Customer says the router's lights are off.",
                             internal=True)
        services.add_comment(ticket=fault, actor=actor, text="We are looking into it.", internal=False)
        services.attach_file(fault, actor=actor, file=ContentFile(b"Line test: no sync on port 12.\n",
                                                                  name="line-test.txt"),
                             description="Line test result")
        _advance(fault, actor, ("diagnosis", {}))
    return {"ticket_types": len(types), "tickets": len(made)}
