"""One database plays several nodes (as in federation's tests): each node's rows carry its code, and the
settings say which node is speaking (`as_node`). `deliver` carries the outbox of one node to another
through the real inbox rule (federation.services.receive), as the relay would."""

import datetime as dt
from contextlib import contextmanager

from django.test import override_settings

from tarifa.federation import handlers as messages
from tarifa.federation import services as federation
from tarifa.federation.models import Node, OutboundMessage, SigningKey

EARLY = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


@contextmanager
def as_node(code, role="branch"):
    with override_settings(TARIFA_NODE_CODE=code, TARIFA_NODE_ROLE=role):
        yield


def register(code, role="branch"):
    """`code` in the registry, with the public key it signs with (the one key table plays every node's
    SigningKey: each node's key is made under its own code)."""
    node = Node.objects.filter(code=code).first() or federation.create_node(
        actor="test", code=code, name=f"Node {code}", role=role, base_url=f"https://{code.lower()}.example.net")
    return node


def key_of(code, role="branch"):
    """Make (once) the signing key of node `code` and register its public half, valid from EARLY."""
    with as_node(code, role):
        key = SigningKey.objects.filter(key_id__startswith=f"{code}.").order_by("signs_from").first()
        if key is None:
            key = federation.rotate_own_key(actor="test", signs_from=EARLY)
    node = register(code, role)
    if not node.keys.filter(key_id=key.key_id).exists():
        federation.add_node_key(node, actor="test", key_id=key.key_id, public_key=key.public_key, valid_from=EARLY)
    return key


def deliver(sender, receiver, *, sender_role="branch", receiver_role="centre", kind=None) -> list[dict]:
    """Number the sender's waiting messages to `receiver` and apply them there in order; returns the answers."""
    answers = []
    with as_node(sender, sender_role):
        federation.number_messages(receiver)
    waiting = OutboundMessage.objects.filter(sender=sender, receiver=receiver, status=OutboundMessage.Status.PENDING)
    if kind:
        waiting = waiting.filter(kind=kind)
    for m in waiting.order_by("kind", "stream_seq"):
        envelope = messages.Message(message_id=m.id, sender=sender, receiver=receiver, kind=m.kind,
                                    stream_seq=m.stream_seq, type=m.type, schema_version=m.schema_version,
                                    payload=m.payload, created_at=m.created_at)
        with as_node(receiver, receiver_role):
            status, body = federation.receive(envelope)
        assert status == 200, body
        OutboundMessage.objects.filter(pk=m.pk).update(status=OutboundMessage.Status.SENT, result=body["result"])
        answers.append(body)
    return answers
