"""Reads about federation other apps (and the views) may use."""

from django.conf import settings
from django.db.models import Q

from tarifa.kernel.clock import now

from .models import InboundStream, Node, NodeKey, OutboundMessage, OutboundStream, SigningKey

ROLES = ("centre", "branch", "standalone")
# A destination whose oldest waiting message has been retried this often is reported (unreachable peer).
RETRIES_REPORTED = 5


def role() -> str:
    value = (settings.TARIFA_NODE_ROLE or "standalone").strip().lower()
    if value not in ROLES:
        raise ValueError(f"TARIFA_NODE_ROLE must be one of {', '.join(ROLES)}, not {value!r}")
    return value


def enabled() -> bool:
    return role() != "standalone"


def own_code() -> str:
    return settings.TARIFA_NODE_CODE


def public_keys(key_id: str, at) -> list:
    """The public keys registered as `key_id` for an active node, valid at `at` (a datetime)."""
    from .signatures import public_from_text

    keys = NodeKey.objects.filter(key_id=key_id, node__archived_at__isnull=True, valid_from__lte=at).filter(
        Q(valid_until__isnull=True) | Q(valid_until__gte=at))
    return [public_from_text(k.public_key) for k in keys]


def node_of_key(key_id: str) -> Node | None:
    key = NodeKey.objects.select_related("node").filter(key_id=key_id).first()
    return key.node if key else None


def own_public_keys() -> list[dict]:
    return [{"key_id": k.key_id, "public_key": k.public_key, "signs_from": k.signs_from.isoformat()}
            for k in SigningKey.objects.order_by("signs_from")]


def streams_of(node: Node) -> dict:
    """The streams to and from `node`, with what waits in each (the node's page and API)."""
    out = []
    for s in OutboundStream.objects.filter(receiver=node.code).order_by("kind"):
        waiting = OutboundMessage.objects.filter(receiver=node.code, kind=s.kind).exclude(
            status=OutboundMessage.Status.SENT)
        oldest = waiting.order_by("stream_seq").first()
        out.append({"direction": "out", "kind": s.kind, "last_seq": s.last_seq, "acked_seq": s.acked_seq,
                    "waiting": waiting.count(), "stopped_at": s.stopped_at, "stop_reason": s.stop_reason,
                    "last_error": oldest.last_error if oldest else "", "attempts": oldest.attempts if oldest else 0})
    unnumbered = OutboundMessage.objects.filter(receiver=node.code, stream_seq__isnull=True).count()
    inbound = [{"direction": "in", "kind": s.kind, "next_expected": s.next_expected, "refused_seq": s.refused_seq,
                "refused_at": s.refused_at, "last_error": s.last_error}
               for s in InboundStream.objects.filter(sender=node.code).order_by("kind")]
    return {"outbound": out, "inbound": inbound, "not_yet_numbered": unnumbered}


def problems() -> list[dict]:
    """What an operator must look at: stopped outbound streams (a refused message, or a receiver that
    expects more than this node ever sent: its database went back in time, or this one did), inbound
    streams waiting at a refused message, and destinations that have not answered for many retries."""
    found = []
    for s in OutboundStream.objects.filter(stopped_at__isnull=False).order_by("receiver", "kind"):
        found.append({"code": "stream_stopped", "stream": str(s), "since": s.stopped_at.isoformat(),
                      "message": s.stop_reason})
    for s in InboundStream.objects.filter(refused_seq__isnull=False).order_by("sender", "kind"):
        found.append({"code": "message_refused", "stream": str(s), "since": s.refused_at.isoformat(),
                      "message": f"message {s.refused_seq}: {s.last_error}"})
    stuck = (OutboundMessage.objects.filter(status=OutboundMessage.Status.PENDING, attempts__gte=RETRIES_REPORTED)
             .order_by("receiver", "kind", "stream_seq").distinct("receiver", "kind"))
    for m in stuck:
        found.append({"code": "peer_unreachable", "stream": f"{m.sender}→{m.receiver}/{m.kind}",
                      "since": m.created_at.isoformat(),
                      "message": f"{m.attempts} attempts; last: {m.last_error}"})
    from .extensions import extra_problems

    return found + extra_problems()


def due_destinations() -> list[str]:
    """Receivers with messages waiting whose next attempt is due (the relay sweeper)."""
    at = now()
    return list(OutboundMessage.objects.filter(status=OutboundMessage.Status.PENDING)
                .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=at))
                .order_by("receiver").values_list("receiver", flat=True).distinct())
