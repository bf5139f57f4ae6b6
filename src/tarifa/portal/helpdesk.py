"""Help requests: the tickets app's tickets of the customer, as the portal user may see them
(a user limited to departments sees the requests about their lines and those about no line)."""

from django.db.models import Q

from tarifa.kernel.errors import DomainError

# The flow a customer's request opens (the first that exists and customers may see).
REQUEST_TYPES = ("support", "fault")
TARIFF_CHANGE_TYPE = "tariff-change"


def available() -> bool:
    from django.apps import apps

    return apps.is_installed("tarifa.tickets")


def tickets_for(scope):
    from tarifa.tickets.selectors import tickets_for_customer

    qs = tickets_for_customer(scope.user.customer, visible_to_customer=True)
    if scope.department_ids() is not None:
        qs = qs.filter(Q(subscription__isnull=True) | Q(subscription__in=scope.subscriptions().values("pk")))
    return qs


def tickets_for_customer_any(customer):
    from tarifa.tickets.selectors import tickets_for_customer

    return tickets_for_customer(customer, visible_to_customer=True)


def _ticket_type(codes):
    from tarifa.tickets.models import TicketType

    live = TicketType.objects.filter(archived_at__isnull=True)
    for code in codes:
        found = live.filter(code=code).first()
        if found is not None:
            return found
    return live.filter(customer_visible=True).order_by("code").first()


def open_request(user, *, subject: str, text: str, subscription=None, tariff=None):
    """A ticket for the customer, opened by the portal user (actor `portal:<login>`)."""
    from tarifa.tickets import services as tickets

    if user.read_only:
        raise DomainError("This is a read-only view of the customer's portal.", code="read_only", status=403)
    ttype = _ticket_type((TARIFF_CHANGE_TYPE,) if tariff is not None else REQUEST_TYPES)
    if ttype is None:
        raise DomainError("Requests cannot be opened here yet: please call or write to us.", code="no_request_type",
                          status=409)
    return tickets.open_ticket(actor=user.actor, ticket_type=ttype, customer=user.customer, title=subject[:200],
                               description=text, subscription=subscription, requested_tariff=tariff)


def number(ticket) -> str:
    return getattr(ticket, "number", str(ticket))


def comments(ticket) -> list[dict]:
    from tarifa.tickets.selectors import customer_comments

    out = [{"author": ticket.customer.display_name, "at": ticket.created_at, "text": ticket.description}] \
        if ticket.description else []
    for c in customer_comments(ticket):
        label = c.author_label or ""
        out.append({"author": ticket.customer.display_name if label.startswith("portal:") else "Support",
                    "at": c.created_at, "text": c.text})
    return out


def comment(user, ticket, *, text: str):
    from tarifa.tickets import services as tickets

    if user.read_only:
        raise DomainError("This is a read-only view of the customer's portal.", code="read_only", status=403)
    return tickets.add_comment(ticket=ticket, text=text, internal=False, actor=user.actor)


def as_dict(ticket) -> dict:
    return {"id": str(ticket.pk), "number": ticket.number, "title": ticket.title,
            "step": ticket.step.name if ticket.step_id else "", "created_at": ticket.created_at,
            "closed_at": ticket.closed_at}
