"""Device handlers for ticket steps: the warehouse's part of a ticket (inventory's services).

- `reserve_device`: the serial entered in a step field (default `serial`, a field of kind serial)
  must be in the assignee's stock; it is reserved for the ticket (`ticket:<number>`).
- `install_device`: that serial goes from the assignee's stock to the customer's premises, linked
  to the ticket's subscription and the ticket (consuming the reservation).
- `undo_devices`: on a cancel step or a step back, every install and return this ticket made is
  reversed (newest first) and its reservations released.
- `swap_device`: the old device (field `old_serial`) comes back from the premises to the
  assignee's stock as used (or `condition`), the new one (field `serial`) is installed.
"""

from tarifa.inventory import services as inventory
from tarifa.inventory.models import Location, Move

from .handlers import HandlerFailed, _values, handler


def _reference(ticket) -> str:
    return f"ticket:{ticket.number}"


def _serial(call, param: str, default: str) -> str:
    name = call.params.get(param) or default
    value = str(_values(call).get(name) or "").strip()
    if not value:
        raise HandlerFailed(f"No serial in the field {name!r}.", code="serial_required")
    return value


def _assignee_stock(call):
    assignee = call.ticket.assignee
    if assignee is None:
        raise HandlerFailed("Assign the ticket to a technician first: the device comes from their stock.",
                            code="no_assignee")
    return inventory.technician_location(assignee, actor=call.actor)


def _subscription_ref(ticket) -> str:
    return ticket.subscription.number if ticket.subscription_id else ""


@handler("reserve_device", phase="post", label="Reserve the device from the assignee's stock", fields=["field"])
def reserve_device(call):
    serial = _serial(call, "field", "serial")
    held = inventory.reserve(actor=call.actor, reference=_reference(call.ticket), serial=serial,
                             location=_assignee_stock(call), note=call.ticket.title[:500])
    return {"reserved": held.device.serial}


@handler("install_device", phase="post", label="Install the device at the customer's premises", fields=["field"])
def install_device(call):
    ticket = call.ticket
    serial = _serial(call, "field", "serial")
    move = inventory.install(actor=call.actor, serial=serial, source=_assignee_stock(call), customer=ticket.customer,
                             subscription_ref=_subscription_ref(ticket), ticket_ref=ticket.number,
                             reservation_ref=_reference(ticket), reason=f"ticket {ticket.number}")
    return {"installed": serial, "at": move.to_location.code}


@handler("undo_devices", phase="post", label="Take back the devices this ticket moved (cancel, step back)")
def undo_devices(call):
    ticket = call.ticket
    undone = []
    moves = (Move.objects.filter(ticket_ref=ticket.number, kind__in=[Move.Kind.INSTALL, Move.Kind.RETURN],
                                 reversal__isnull=True).select_related("device").order_by("-id"))
    for move in moves:
        inventory.reverse_move(move, actor=call.actor, reason=f"ticket {ticket.number}: {call.step.name}")
        undone.append(move.device.serial if move.device_id else f"{move.quantity.normalize():f}")
    released = inventory.release_for(_reference(ticket), actor=call.actor)
    return {"reversed": undone, "released": released}


@handler("swap_device", phase="post", label="Swap a device: the old one back, the new one in",
         fields=["old_field", "field", "condition"])
def swap_device(call):
    ticket = call.ticket
    old = inventory.device_by_serial(_serial(call, "old_field", "old_serial"))
    new_serial = _serial(call, "field", "serial")
    stock = _assignee_stock(call)
    if old.location.kind != Location.Kind.CUSTOMER or old.location.customer_id != ticket.customer_id:
        raise HandlerFailed(f"{old.serial} is not at {ticket.customer}'s premises (it is at {old.location}).",
                            code="device_not_here")
    inventory.move(actor=call.actor, from_location=old.location, to_location=stock, device=old,
                   condition=call.params.get("condition") or "used", reason=f"swapped, ticket {ticket.number}",
                   ticket_ref=ticket.number)
    inventory.install(actor=call.actor, serial=new_serial, source=stock, customer=ticket.customer,
                      address=old.location.address, subscription_ref=_subscription_ref(ticket),
                      ticket_ref=ticket.number, reservation_ref=_reference(ticket),
                      reason=f"swap for {old.serial}, ticket {ticket.number}")
    return {"returned": old.serial, "installed": new_serial}
