from django.apps import AppConfig


class TicketsConfig(AppConfig):
    name = "tarifa.tickets"
    label = "tickets"
    verbose_name = "Tickets"

    def ready(self):
        # The built-in handler kinds register themselves (handlers.py; devices.py: the warehouse's kinds);
        # so do the script functions.
        from . import devices, handlers, script_functions  # noqa: F401
