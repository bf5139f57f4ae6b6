"""Help requests: the tickets app's tickets of the customer, as the portal user may see them."""


def available() -> bool:
    from django.apps import apps

    return apps.is_installed("tarifa.tickets")


def tickets_for(scope):
    from tarifa.tickets.selectors import tickets_for_customer

    return tickets_for_customer(scope.user.customer, visible_to_customer=True)
