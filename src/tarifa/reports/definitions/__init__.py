"""The reports, one declaration each, by area."""

from . import cash, finance, inventory, operations, subscribers, tickets, usage  # noqa: F401
