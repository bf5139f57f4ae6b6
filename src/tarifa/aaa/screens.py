"""Operator screens of network access."""

from . import coa_screens  # noqa: F401 — CoA/DM log, reconciliation runs, NAS health, sessions panel
