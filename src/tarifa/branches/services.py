from django.conf import settings
from django.db import transaction

from tarifa.audit import services as recorded

from .models import Branch


@transaction.atomic
def ensure_local_branch(*, actor="system") -> Branch:
    """Make the branch row of this node match settings (TARIFA_BRANCH_CODE / _NAME). Idempotent."""
    code, name = settings.TARIFA_BRANCH_CODE, settings.TARIFA_BRANCH_NAME
    branch = Branch.objects.select_for_update().filter(is_local=True).first()
    if branch is None:
        branch = Branch.objects.filter(code=code).first()
        if branch is None:
            return recorded.create(Branch, actor=actor, code=code, name=name, is_local=True)
        return recorded.update(branch, actor=actor, is_local=True)
    if branch.code != code:
        raise ValueError(f"This node is branch {branch.code}; settings say {code}. Branch codes never change.")
    if branch.name != name:
        branch = recorded.update(branch, actor=actor, name=name)
    return branch


def update_branch(branch: Branch, *, actor, **fields) -> Branch:
    return recorded.update(branch, actor=actor, **fields)
