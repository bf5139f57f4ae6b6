"""Help requests: the tickets app's tickets of the customer, as the portal user may see them."""


def available() -> bool:
    from django.apps import apps

    return apps.is_installed("tarifa.tickets")


def tickets_for(scope):
    from tarifa.tickets.selectors import tickets_for_customer

    return tickets_for_customer(scope.user.customer, visible_to_customer=True)


def open_request(user, *, subject: str, text: str, subscription=None):
    raise NotImplementedError


def number(ticket) -> str:
    return getattr(ticket, "number", str(ticket))


def comments(ticket) -> list[dict]:
    return []


def comment(user, ticket, *, text: str):
    raise NotImplementedError


def as_dict(ticket) -> dict:
    return {"id": str(ticket.pk), "number": number(ticket)}
