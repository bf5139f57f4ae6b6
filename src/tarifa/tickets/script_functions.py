"""Functions scripts may call about tickets (tarifa.scripts.registry): `ticket(number)` reads a
ticket, `ticket_comment(number, text, internal)` comments on it. They run as the script's actor,
in the transaction of the move that ran the script."""

from tarifa.kernel.errors import NotFound
from tarifa.scripts.registry import expose


def _find(number):
    from .models import Ticket

    ticket = Ticket.objects.select_related("step", "ticket_type", "customer").filter(number=str(number)).first()
    if ticket is None:
        raise NotFound(f"No ticket {number}.", code="ticket_not_found")
    return ticket


def ticket(number, *, actor):
    t = _find(number)
    return {"number": t.number, "type": t.ticket_type.code, "step": t.step.code, "title": t.title,
            "customer": t.customer.number, "priority": t.priority, "parameters": t.parameters, "data": t.data,
            "closed": t.closed_at is not None}


def ticket_comment(number, text, internal=True, *, actor):
    from . import services

    comment = services.add_comment(ticket=_find(number), text=str(text), internal=bool(internal), actor=actor)
    return {"ticket": str(number), "comment": str(comment.pk)}


expose("ticket", ticket, permission="tickets.view_ticket", read_only=True)
expose("ticket_comment", ticket_comment, permission="tickets.add_comment")
