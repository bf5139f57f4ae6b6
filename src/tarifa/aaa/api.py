"""REST API of network access."""

from . import coa_api  # noqa: F401 — disconnect, the CoA/DM log, reconciliation runs
