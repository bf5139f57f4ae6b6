"""Demo branches: this node's own branch row (from settings)."""

from .services import ensure_local_branch


def load(*, actor) -> dict:
    branch = ensure_local_branch(actor=actor)
    return {"local_branch": branch.code}
