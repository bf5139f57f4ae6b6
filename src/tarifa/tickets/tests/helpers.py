"""A small activation flow and a customer with money, for the tickets tests."""

from tarifa.subscriptions.tests.helpers import customer_account, make_catalog, pay
from tarifa.tickets import services

ACTOR = "test"


def activation_flow(*, install_roles=(), sla_minutes=None, escalate_to_user=None):
    """new → install (login required) → active (final: activates the requested tariff);
    install ↩ new needs a resolution."""
    tt = services.create_ticket_type(actor=ACTOR, code="activation", name="Internet activation")
    new = services.create_step(actor=ACTOR, ticket_type=tt, code="new", name="New", order=10,
                               sla_minutes=sla_minutes, escalate_to_user=escalate_to_user)
    install = services.create_step(actor=ACTOR, ticket_type=tt, code="install", name="Installation", order=20,
                                   roles=list(install_roles))
    active = services.create_step(actor=ACTOR, ticket_type=tt, code="active", name="Active", order=30, final=True)
    services.add_field(actor=ACTOR, step=install, name="login", label="Login", required=True)
    services.add_field(actor=ACTOR, step=install, name="visit", label="Visit date", kind="date")
    services.add_handler(actor=ACTOR, step=active, kind="activate_subscription", phase="post")
    services.create_transition(actor=ACTOR, from_step=new, to_step=install)
    services.create_transition(actor=ACTOR, from_step=install, to_step=active)
    services.create_transition(actor=ACTOR, from_step=install, to_step=new, direction="backward",
                               requires_resolution=True)
    return tt, {"new": new, "install": install, "active": active}


def world(*, funds="100", **flow):
    tariffs = make_catalog()
    account = customer_account()
    if funds:
        pay(account, funds)
    tt, steps = activation_flow(**flow)
    return tariffs, account, tt, steps


def open_activation(tt, account, tariff, **kw):
    return services.open_ticket(actor=ACTOR, ticket_type=tt, customer=account.customer, billing_account=account,
                                requested_tariff=tariff, **kw)
