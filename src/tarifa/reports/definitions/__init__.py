"""The reports, one declaration each, by area."""

from . import cash, finance, operations, subscribers, usage  # noqa: F401
