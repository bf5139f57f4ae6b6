"""Centrally owned reference data (issue 19, reference releases): the one rule that refuses local edits.

On a federation **branch**, the catalog, rating plans, taxes, dictionaries and number ranges are copies of
the centre's, kept by the releases the centre publishes (`tarifa.releases`). The models concerned are named
once, in `tarifa.releases.declaration`, which registers them here when the app loads. Every audited write
(`audit.services.record`, used by create, update, archive, restore and deletes of parts) and rating's plan
bump call `check_local_edit`, so every service of those models refuses alike; the generic screens ask
`centrally_owned` to hide their edit actions. On the centre and on a standalone installation nothing is
refused. Applying a release writes these tables itself (one transaction, not through the audited path).
"""

from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings

from .errors import DomainError

_CENTRALLY_OWNED: set[str] = set()
_demo_loading: ContextVar[bool] = ContextVar("tarifa_demo_loading", default=False)


class OwnedByCentre(DomainError):
    code = "owned_by_centre"
    status = 409


def register(*labels: str) -> None:
    """Declare models ("app_label.ModelName") as owned by the centre (tarifa.releases does, once)."""
    _CENTRALLY_OWNED.update(label.lower() for label in labels)


def is_branch() -> bool:
    return (settings.TARIFA_NODE_ROLE or "").strip().lower() == "branch"


def centrally_owned(model_or_obj) -> bool:
    """Whether this node must refuse local edits of this model: it is a branch and the centre owns the model."""
    return is_branch() and model_or_obj._meta.label_lower in _CENTRALLY_OWNED


@contextmanager
def demo_loading():
    """While the demo data loads (web/demo_loader.py): every node of a demo federation gets the same catalog
    codes, which the centre's first release then matches by natural key and takes over."""
    token = _demo_loading.set(True)
    try:
        yield
    finally:
        _demo_loading.reset(token)


def check_local_edit(model_or_obj) -> None:
    if centrally_owned(model_or_obj) and not _demo_loading.get():
        name = model_or_obj._meta.verbose_name_plural
        raise OwnedByCentre(f"The {name} are owned by the centre: change them there, and this branch receives "
                            f"the change with the next reference release.")
