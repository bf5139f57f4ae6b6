"""Ticket install and cancel: a step's serial field names a device of the assignee's stock; the
install step reserves and installs it at the customer's premises; moving the ticket back or
cancelling it reverses the move; a swap brings the old device back and puts the new one in."""

import pytest

from tarifa.inventory import services as inventory
from tarifa.inventory.models import Device, Item, Reservation
from tarifa.inventory.selectors import check_inventory
from tarifa.tickets import services

from .helpers import ACTOR, customer_account, make_catalog, pay

pytestmark = pytest.mark.django_db


@pytest.fixture
def setting(django_user_model):
    make_catalog()
    account = customer_account()
    pay(account, "50")
    tech = django_user_model.objects.create_user(username="tina", first_name="Tina", last_name="Tech")
    warehouse = inventory.create_location(actor=ACTOR, code="WH", name="Warehouse", kind="warehouse")
    router = inventory.create_item(actor=ACTOR, code="RT", name="Router", kind=Item.Kind.ROUTER, currency="EUR",
                                   cost="30")
    inventory.receive(actor=ACTOR, warehouse=warehouse, item=router, serials=["T-1", "T-2", "OTHER"])
    van = inventory.technician_location(tech)
    for serial in ("T-1", "T-2"):
        inventory.issue(actor=ACTOR, serial=serial, warehouse=warehouse, technician_location=van)
    tt = services.create_ticket_type(actor=ACTOR, code="install", name="Router install")
    new = services.create_step(actor=ACTOR, ticket_type=tt, code="new", name="New", order=10)
    visit = services.create_step(actor=ACTOR, ticket_type=tt, code="visit", name="Visit", order=20)
    done = services.create_step(actor=ACTOR, ticket_type=tt, code="done", name="Installed", order=30)
    cancelled = services.create_step(actor=ACTOR, ticket_type=tt, code="cancelled", name="Cancelled", order=40,
                                     final=True)
    services.add_field(actor=ACTOR, step=new, name="serial", label="Router serial", kind="serial", required=True)
    services.add_handler(actor=ACTOR, step=visit, kind="reserve_device", phase="post")
    services.add_handler(actor=ACTOR, step=done, kind="install_device", phase="post")
    services.add_handler(actor=ACTOR, step=new, kind="undo_devices", phase="post")
    services.add_handler(actor=ACTOR, step=cancelled, kind="undo_devices", phase="post")
    services.create_transition(actor=ACTOR, from_step=new, to_step=visit)
    services.create_transition(actor=ACTOR, from_step=visit, to_step=done)
    services.create_transition(actor=ACTOR, from_step=done, to_step=new, direction="backward")
    services.create_transition(actor=ACTOR, from_step=done, to_step=cancelled)
    services.create_transition(actor=ACTOR, from_step=new, to_step=cancelled)
    ticket = services.open_ticket(actor=ACTOR, ticket_type=tt, customer=account.customer, billing_account=account,
                                  title="Router for the new flat")
    ticket.assignee = tech
    ticket.save(update_fields=["assignee"])
    return ticket, van


def test_ticket_install_and_cancel(setting):
    ticket, van = setting
    ticket = services.advance(ticket, actor=ACTOR, from_step="new", to_step="visit", data={"serial": "T-1"})
    assert Reservation.objects.get(state="active").reference == f"ticket:{ticket.number}"
    ticket = services.advance(ticket, actor=ACTOR, from_step="visit", to_step="done")
    device = Device.objects.get(serial="T-1")
    assert device.location.customer_id == ticket.customer_id
    assert device.moves.get(kind="install").ticket_ref == ticket.number
    # Back to the start: the install is reversed, the router is in the van again.
    ticket = services.advance(ticket, actor=ACTOR, from_step="done", to_step="new", resolution="wrong flat")
    assert Device.objects.get(serial="T-1").location == van
    # Installed again, then the ticket is cancelled: reversed once more.
    ticket = services.advance(ticket, actor=ACTOR, from_step="new", to_step="visit", data={"serial": "T-1"})
    ticket = services.advance(ticket, actor=ACTOR, from_step="visit", to_step="done")
    ticket = services.advance(ticket, actor=ACTOR, from_step="done", to_step="cancelled",
                              resolution="customer cancelled")
    assert Device.objects.get(serial="T-1").location == van
    assert not Reservation.objects.filter(state="active").exists()
    assert check_inventory()["ok"]


def test_a_serial_not_in_the_assignees_stock_is_refused(setting):
    ticket, _van = setting
    with pytest.raises(Exception) as exc:
        services.advance(ticket, actor=ACTOR, from_step="new", to_step="visit", data={"serial": "OTHER"})
    assert getattr(exc.value, "code", "") in ("device_not_here", "handler_failed")
    assert Device.objects.get(serial="OTHER").location.code == "WH"


def test_device_swap(setting):
    ticket, van = setting
    services.advance(ticket, actor=ACTOR, from_step="new", to_step="visit", data={"serial": "T-1"})
    ticket = services.advance(ticket, actor=ACTOR, from_step="visit", to_step="done")
    swap_type = services.create_ticket_type(actor=ACTOR, code="swap", name="Router swap")
    s_new = services.create_step(actor=ACTOR, ticket_type=swap_type, code="new", name="New", order=10)
    s_done = services.create_step(actor=ACTOR, ticket_type=swap_type, code="done", name="Swapped", order=20)
    services.add_field(actor=ACTOR, step=s_new, name="old_serial", label="Old serial", kind="serial")
    services.add_field(actor=ACTOR, step=s_new, name="serial", label="New serial", kind="serial")
    services.add_handler(actor=ACTOR, step=s_done, kind="swap_device", phase="post",
                         parameters={"condition": "broken"})
    services.create_transition(actor=ACTOR, from_step=s_new, to_step=s_done)
    swap = services.open_ticket(actor=ACTOR, ticket_type=swap_type, customer=ticket.customer, title="Broken router")
    swap.assignee = ticket.assignee
    swap.save(update_fields=["assignee"])
    services.advance(swap, actor=ACTOR, from_step="new", to_step="done", data={"old_serial": "T-1", "serial": "T-2"})
    old, new = Device.objects.get(serial="T-1"), Device.objects.get(serial="T-2")
    assert old.location == van and old.condition == "broken"
    assert new.location.customer_id == ticket.customer_id
    assert check_inventory()["ok"]
