"""Reads about payment journals other apps and the views may use."""

from django.conf import settings

from tarifa.federation import selectors as federation

from .models import JournalEntry, JournalHead, Mismatch


def own_code() -> str:
    return settings.TARIFA_NODE_CODE


def enabled() -> bool:
    """Journals are kept on the nodes of a federation (TARIFA_NODE_ROLE centre or branch), not standalone."""
    return federation.enabled()


def is_centre() -> bool:
    return federation.role() == "centre"


def centre_code() -> str | None:
    """The centre this branch ships its journal to: the active node of role centre in the registry."""
    from tarifa.federation.models import Node

    if is_centre():
        return None
    node = Node.objects.filter(role=Node.Role.CENTRE, archived_at__isnull=True).order_by("code").first()
    return node.code if node else None


def head(branch: str | None = None) -> dict:
    row = JournalHead.objects.filter(branch=branch or own_code()).first()
    unsealed = JournalEntry.objects.filter(branch=branch or own_code(), seq__isnull=True).count()
    return {"last_seq": row.last_seq if row else 0, "head_hash": row.head_hash if row else "", "unsealed": unsealed}


def open_mismatches():
    return Mismatch.objects.filter(status__in=[Mismatch.Status.OPEN, Mismatch.Status.IN_PROGRESS])
