from django.apps import AppConfig


class TicketsConfig(AppConfig):
    name = "tarifa.tickets"
    label = "tickets"
    verbose_name = "Tickets"

    def ready(self):
        # The built-in handler kinds register themselves (handlers.py); so do the periodic jobs.
        from . import handlers  # noqa: F401
