"""The write path of federation: the node registry and keys (audited), sending (the outbox),
receiving (the inbox rule), and the relay's bookkeeping. See docs/federation.md."""

import datetime as dt
import logging
import secrets
import uuid

from django.db import IntegrityError, transaction

from tarifa.audit import services as recorded
from tarifa.kernel.clock import now
from tarifa.kernel.errors import Conflict, DomainError, NotFound, ValidationFailed

from . import handlers, selectors, signatures
from .models import InboundMessage, InboundStream, Node, NodeKey, OutboundMessage, OutboundStream, SigningKey

log = logging.getLogger(__name__)


class FederationDisabled(DomainError):
    code = "federation_disabled"
    status = 409


def _require_enabled():
    if not selectors.enabled():
        raise FederationDisabled("This installation is standalone (TARIFA_NODE_ROLE): federation does not run.")


# --- the node registry ---

def create_node(*, actor, code, name, role=Node.Role.BRANCH, base_url) -> Node:
    return recorded.create(Node, actor=actor, code=code.strip().upper(), name=name, role=role, base_url=base_url)


def update_node(node: Node, *, actor, **fields) -> Node:
    fields.pop("code", None)  # a node's code never changes: streams and keys are named by it
    return recorded.update(node, actor=actor, **fields)


def archive_node(node: Node, *, actor, reason="") -> Node:
    """An archived node's keys are no longer believed: nothing it sends is accepted."""
    return recorded.archive(node, actor=actor, reason=reason)


@transaction.atomic
def add_node_key(node: Node, *, actor, key_id, public_key, valid_from=None, valid_until=None) -> NodeKey:
    """Register a public key of `node`. Rotation: add the new key while the old one is still valid (the
    overlap), then end the old one (`end_node_key`)."""
    try:
        signatures.public_from_text(public_key)
    except ValueError as exc:
        raise ValidationFailed(str(exc), fields={"public_key": [str(exc)]}) from None
    if NodeKey.objects.filter(key_id=key_id).exists():
        raise Conflict(f"A key {key_id!r} is already registered.", code="duplicate_key_id",
                       fields={"key_id": ["Already registered."]})
    valid_from = valid_from or now().replace(microsecond=0)  # signatures carry whole seconds
    if valid_until is not None and valid_until <= valid_from:
        raise ValidationFailed("A key's validity ends after it starts.", fields={"valid_until": ["After valid from."]})
    key = recorded.create(NodeKey, actor=actor, node=node, key_id=key_id, public_key=public_key.strip(),
                          valid_from=valid_from, valid_until=valid_until)
    recorded.record(node, actor=actor, action="add_key", changes={"key": [None, key_id]},
                    message=f"valid {valid_from.isoformat()} … {valid_until.isoformat() if valid_until else 'open'}")
    return key


@transaction.atomic
def register_peer(*, actor, code, name, role, base_url, key_id=None, public_key=None) -> Node:
    """Create or update a node of the registry and register its key if it is new: what `tarifa federation
    register` does for each peer of a file. Idempotent (a re-run changes nothing)."""
    node = Node.objects.select_for_update().filter(code=code.strip().upper()).first()
    if node is None:
        node = create_node(actor=actor, code=code, name=name, role=role, base_url=base_url)
    elif (node.name, node.role, node.base_url) != (name, role, base_url):
        node = update_node(node, actor=actor, name=name, role=role, base_url=base_url)
    if key_id and not node.keys.filter(key_id=key_id).exists():
        add_node_key(node, actor=actor, key_id=key_id, public_key=public_key or "")
    return node


@transaction.atomic
def end_node_key(node: Node, *, actor, key_id, valid_until=None) -> NodeKey:
    key = NodeKey.objects.filter(node=node, key_id=key_id).first()
    if key is None:
        raise NotFound(f"{node.code} has no key {key_id!r}.")
    key = recorded.update(key, actor=actor, valid_until=valid_until or now())
    recorded.record(node, actor=actor, action="end_key", changes={"key": [key_id, None]},
                    message=f"valid until {key.valid_until.isoformat()}")
    return key


# --- this node's signing key ---

def _new_key_id() -> str:
    return f"{selectors.own_code()}.{now():%Y%m%d}.{secrets.token_hex(3)}"


@transaction.atomic
def rotate_own_key(*, actor, signs_from: dt.datetime | None = None) -> SigningKey:
    """A new key pair for this node. It signs from `signs_from` (default: now); give peers its public key
    (they register it with a validity starting at or before then) before it starts signing."""
    private = signatures.generate_private_key()
    key = recorded.create(SigningKey, actor=actor, key_id=_new_key_id(),
                          private_key=signatures.private_to_text(private),
                          public_key=signatures.public_to_text(private.public_key()),
                          signs_from=signs_from or now())
    return key


def own_signing_key() -> SigningKey:
    """The key this node signs with now; generated (and audited) on first use."""
    key = SigningKey.objects.filter(signs_from__lte=now()).order_by("-signs_from").first()
    if key is not None:
        return key
    with transaction.atomic():
        # One generator at a time (two web processes on first use): an advisory lock for the transaction.
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('tarifa.federation.own_key'))")
        key = SigningKey.objects.filter(signs_from__lte=now()).order_by("-signs_from").first()
        return key or rotate_own_key(actor="system")


# --- sending: the outbox ---

def _defer_relay(receiver: str, *, at: dt.datetime | None = None) -> bool:
    """Enqueue the relay of `receiver` (at most one waiting, one running: procrastinate's queueing lock and
    lock). False when one is already waiting."""
    from procrastinate.exceptions import AlreadyEnqueued

    from .tasks import relay, relay_lock

    options = {"lock": relay_lock(receiver), "queueing_lock": relay_lock(receiver)}
    if at is not None:
        options["schedule_at"] = at
    try:
        with transaction.atomic():  # a savepoint: the unique violation of a waiting job must not abort the caller
            relay.configure(**options).defer(receiver=receiver)
        return True
    except AlreadyEnqueued:
        return False


@transaction.atomic
def send(*, receiver: str, kind: str, type: str, payload: dict, schema_version: int = 1) -> OutboundMessage:
    """Put a message in the outbox, in the caller's transaction (call it inside the business transaction:
    the message exists iff the change does). The relay numbers and sends it after commit."""
    _require_enabled()
    if receiver == selectors.own_code():
        raise ValidationFailed("A node does not send messages to itself.", fields={"receiver": ["This node."]})
    if not Node.objects.filter(code=receiver, archived_at__isnull=True).exists():
        raise NotFound(f"No active node {receiver!r} in the registry.", code="unknown_node")
    if not kind or "/" in kind or not type:
        raise ValidationFailed("A message needs a kind (no '/') and a type.")
    message = OutboundMessage.objects.create(receiver=receiver, kind=kind, type=type, payload=payload,
                                             schema_version=schema_version)
    _defer_relay(receiver)
    return message


@transaction.atomic
@transaction.atomic
def send_pings(node: Node, *, count: int = 1, kind: str = "test") -> list[str]:
    """`count` test messages (type ping, payload {"n": 1…count}) to `node`; their message ids."""
    if node.archived_at is not None:
        raise Conflict(f"Node {node.code} is archived: nothing is sent to it.", code="node_archived")
    return [str(send(receiver=node.code, kind=kind, type="ping", payload={"n": n}).id) for n in range(1, count + 1)]


@transaction.atomic
def resume_stream(node: Node, *, actor, kind: str | None = None) -> int:
    """Restart the stopped outbound streams to `node` (all, or `kind`): failed messages go back to pending and
    are sent again from the receiver's next_expected. Do it after fixing the cause (the receiver upgraded,
    a restored database reconciled). Returns how many streams were resumed."""
    streams = OutboundStream.objects.select_for_update().filter(receiver=node.code, stopped_at__isnull=False)
    if kind:
        streams = streams.filter(kind=kind)
    count = 0
    for stream in streams:
        OutboundMessage.objects.filter(receiver=node.code, kind=stream.kind, status=OutboundMessage.Status.FAILED
                                       ).update(status=OutboundMessage.Status.PENDING, next_attempt_at=None)
        reason = stream.stop_reason
        stream.stopped_at, stream.stop_reason = None, ""
        stream.save(update_fields=["stopped_at", "stop_reason"])
        recorded.record(node, actor=actor, action="resume_stream", changes={"stream": [str(stream), None]},
                        message=f"was stopped: {reason}"[:500])
        count += 1
    if count:
        _defer_relay(node.code)
    else:
        recorded.record(node, actor=actor, action="resume_stream", message="no stopped stream" + (f" {kind}" if kind else ""))
    return count


# --- relay bookkeeping (tarifa.federation.relay does the HTTP) ---

@transaction.atomic
def number_messages(receiver: str) -> None:
    """Give the committed, not yet numbered messages to `receiver` their stream_seq, in creation order, each
    stream under its row lock. Numbers are given once and kept across retries."""
    kinds = (OutboundMessage.objects.filter(receiver=receiver, stream_seq__isnull=True)
             .values_list("kind", flat=True).distinct())
    for kind in list(kinds):
        stream = _outbound_stream(receiver, kind)
        batch = list(OutboundMessage.objects.select_for_update(skip_locked=True)
                     .filter(receiver=receiver, kind=kind, stream_seq__isnull=True).order_by("created_at", "id"))
        for message in batch:
            stream.last_seq += 1
            message.stream_seq = stream.last_seq
        OutboundMessage.objects.bulk_update(batch, ["stream_seq"])
        stream.save(update_fields=["last_seq"])


def _outbound_stream(receiver, kind) -> OutboundStream:
    try:
        with transaction.atomic():
            OutboundStream.objects.get_or_create(sender=selectors.own_code(), receiver=receiver, kind=kind)
    except IntegrityError:
        pass
    return OutboundStream.objects.select_for_update().get(sender=selectors.own_code(), receiver=receiver, kind=kind)


def next_to_send(receiver: str) -> OutboundMessage | None:
    """The waiting message to send next to `receiver`: each running stream's lowest number is a candidate,
    the one due first goes first (a stream's messages always go in number order)."""
    stopped = list(OutboundStream.objects.filter(receiver=receiver, stopped_at__isnull=False)
                   .values_list("kind", flat=True))
    candidates = (OutboundMessage.objects.filter(receiver=receiver, status=OutboundMessage.Status.PENDING,
                                                 stream_seq__isnull=False).exclude(kind__in=stopped)
                  .order_by("kind", "stream_seq").distinct("kind"))
    earliest = dt.datetime.min.replace(tzinfo=dt.UTC)
    due = sorted(candidates, key=lambda m: (m.next_attempt_at or earliest, m.kind))
    return due[0] if due else None


def backoff(attempts: int) -> float:
    from django.conf import settings

    base, cap = settings.TARIFA_FEDERATION_RETRY_BASE, settings.TARIFA_FEDERATION_RETRY_MAX
    return min(cap, base * (2 ** max(0, attempts - 1)))


@transaction.atomic
def attempt_failed(message: OutboundMessage, error: str) -> OutboundMessage:
    """A transport failure (no answer, 5xx, a refused signature): retried later, same number."""
    message = OutboundMessage.objects.select_for_update().get(pk=message.pk)
    message.attempts += 1
    message.last_error = error[:2000]
    message.next_attempt_at = now() + dt.timedelta(seconds=backoff(message.attempts))
    message.save(update_fields=["attempts", "last_error", "next_attempt_at"])
    return message


@transaction.atomic
def stop_stream(receiver: str, kind: str, reason: str) -> None:
    """The alarm: a stream that cannot go on without an operator (selectors.problems shows it)."""
    stream = _outbound_stream(receiver, kind)
    if stream.stopped_at is None:
        stream.stopped_at, stream.stop_reason = now(), reason[:2000]
        stream.save(update_fields=["stopped_at", "stop_reason"])
        recorded.record(stream, actor="relay", action="stop", message=reason[:500])
        log.error("federation stream %s stopped: %s", stream, reason)


@transaction.atomic
def acknowledged(message: OutboundMessage, *, next_expected: int, result) -> bool:
    """The receiver applied `message` (or had: a duplicate). False when the stream had to stop (the receiver
    expects more than this node ever sent)."""
    stream = _outbound_stream(message.receiver, message.kind)
    if next_expected > stream.last_seq + 1:
        _stop_locked(stream, f"The receiver expects message {next_expected} but only {stream.last_seq} were ever "
                             f"sent: one of the two databases went back in time (restored from a backup?).")
        return False
    OutboundMessage.objects.filter(pk=message.pk).update(
        status=OutboundMessage.Status.SENT, sent_at=now(), result=result, last_error="",
        attempts=message.attempts + 1, next_attempt_at=None)
    stream.acked_seq = max(stream.acked_seq, next_expected - 1)
    stream.save(update_fields=["acked_seq"])
    hook = handlers.result_hook(message.type)
    if hook is not None:  # the sending app learns the outcome (applied, or refused) in this transaction
        hook(message, result)
    return True


def _stop_locked(stream, reason):
    if stream.stopped_at is None:
        stream.stopped_at, stream.stop_reason = now(), reason[:2000]
        stream.save(update_fields=["stopped_at", "stop_reason"])
        recorded.record(stream, actor="relay", action="stop", message=reason[:500])
        log.error("federation stream %s stopped: %s", stream, reason)


@transaction.atomic
def rewind(message: OutboundMessage, *, expected: int) -> bool:
    """The receiver answered 409: it expects `expected` (lower than what was sent: it lost messages, e.g.
    restored from a backup). Send again from there. False (and the stream stopped) when it expects more
    than was ever sent."""
    stream = _outbound_stream(message.receiver, message.kind)
    if expected > stream.last_seq + 1 or expected < 1:
        _stop_locked(stream, f"The receiver expects message {expected} but only {stream.last_seq} were ever sent: "
                             f"one of the two databases went back in time (restored from a backup?).")
        return False
    if expected >= message.stream_seq:
        # It expects this message or later while refusing this one: not a state the rule allows.
        _stop_locked(stream, f"The receiver refused message {message.stream_seq} saying it expects {expected}.")
        return False
    OutboundMessage.objects.filter(receiver=message.receiver, kind=message.kind, stream_seq__gte=expected).update(
        status=OutboundMessage.Status.PENDING, next_attempt_at=None)
    stream.acked_seq = min(stream.acked_seq, expected - 1)
    stream.save(update_fields=["acked_seq"])
    return True


@transaction.atomic
def refused(message: OutboundMessage, error: str) -> None:
    """The receiver refused the message for good (unknown type, newer schema, a bad envelope): the message
    is failed and its stream stops there (never skipped) until an operator resumes it."""
    OutboundMessage.objects.filter(pk=message.pk).update(status=OutboundMessage.Status.FAILED,
                                                         last_error=error[:2000], attempts=message.attempts + 1)
    stream = _outbound_stream(message.receiver, message.kind)
    _stop_locked(stream, f"Message {message.stream_seq} ({message.type}) refused by {message.receiver}: {error}")


# --- receiving: the inbox rule ---

ENVELOPE_FIELDS = {"message_id", "sender", "receiver", "kind", "stream_seq", "type", "schema_version", "payload",
                   "created_at"}


def parse_envelope(data, *, sender: str, kind: str) -> handlers.Message:
    """The envelope of a received message, checked against the URL it came to; ValidationFailed otherwise."""
    if not isinstance(data, dict):
        raise ValidationFailed("The body is a JSON object (a message envelope).", code="bad_envelope")
    missing = sorted(ENVELOPE_FIELDS - {"created_at"} - set(data))
    if missing:
        raise ValidationFailed(f"The envelope lacks {', '.join(missing)}.", code="bad_envelope")
    try:
        message_id = uuid.UUID(str(data["message_id"]))
    except ValueError:
        raise ValidationFailed("message_id is not a UUID.", code="bad_envelope") from None
    seq, version = data["stream_seq"], data["schema_version"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise ValidationFailed("stream_seq is a positive integer.", code="bad_envelope")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValidationFailed("schema_version is a positive integer.", code="bad_envelope")
    if not isinstance(data["payload"], dict) or not isinstance(data["type"], str):
        raise ValidationFailed("payload is an object and type a string.", code="bad_envelope")
    if data["sender"] != sender or data["kind"] != kind:
        raise ValidationFailed("The envelope's sender and kind are not those of the stream it was posted to.",
                               code="bad_envelope")
    if data["receiver"] != selectors.own_code():
        raise ValidationFailed(f"The message is for {data['receiver']!r}; this node is {selectors.own_code()!r}.",
                               code="wrong_receiver")
    created = None
    if data.get("created_at"):
        try:
            created = dt.datetime.fromisoformat(str(data["created_at"]))
        except ValueError:
            raise ValidationFailed("created_at is not an ISO 8601 time.", code="bad_envelope") from None
    return handlers.Message(message_id=message_id, sender=sender, receiver=data["receiver"], kind=kind,
                            stream_seq=seq, type=data["type"], schema_version=version, payload=data["payload"],
                            created_at=created)


def _inbound_stream(sender, kind) -> InboundStream:
    try:
        with transaction.atomic():
            InboundStream.objects.get_or_create(sender=sender, receiver=selectors.own_code(), kind=kind)
    except IntegrityError:
        pass
    return InboundStream.objects.select_for_update().get(sender=sender, receiver=selectors.own_code(), kind=kind)


@transaction.atomic
def receive(message: handlers.Message) -> tuple[int, dict]:
    """Apply `message` if it is the one its stream expects, in this transaction with its inbox row.
    Answers (HTTP status, body): 200 applied or duplicate (the stored result) with next_expected; 409 with
    `expected` for a message after a gap; 422 for a message this node cannot read (refused, stored)."""
    stream = _inbound_stream(message.sender, message.kind)
    expected = stream.next_expected
    if message.stream_seq < expected:
        inbox = InboundMessage.objects.filter(sender=message.sender, receiver=stream.receiver, kind=message.kind,
                                              stream_seq=message.stream_seq).first()
        if inbox is None:  # not kept here (this node's expectation is ahead of its inbox): the sender decides
            return 409, {"error": {"code": "out_of_order", "fields": {},
                                   "message": f"Message {message.stream_seq} came while {expected} is expected."},
                         "expected": expected}
        if inbox.message_id != message.message_id:
            return 409, {"error": {"code": "seq_conflict", "fields": {},
                                   "message": f"Message {message.stream_seq} of this stream was another one "
                                              f"({inbox.message_id}): the sender numbered messages again (its "
                                              f"database went back in time?)."},
                         "expected": expected}
        return 200, {"status": "duplicate", "next_expected": expected, "result": inbox.result}
    if message.stream_seq > expected:
        return 409, {"error": {"code": "out_of_order", "fields": {},
                               "message": f"Message {message.stream_seq} came while {expected} is expected."},
                     "expected": expected}
    handler = handlers.get(message.type)
    problem = None
    if handler is None:
        problem = ("unknown_type", f"This node has no handler for messages of type {message.type!r}.")
    elif message.schema_version > handler.version:
        problem = ("schema_too_new", f"{message.type} version {message.schema_version} is newer than this node "
                                     f"reads ({handler.version}): upgrade this node.")
    if problem:
        stream.refused_seq, stream.refused_at, stream.last_error = message.stream_seq, now(), problem[1]
        stream.save(update_fields=["refused_seq", "refused_at", "last_error"])
        return 422, {"error": {"code": problem[0], "message": problem[1], "fields": {}}, "expected": expected}
    try:
        with transaction.atomic():
            result = handler.func(message)
    except DomainError as exc:
        result = {"refused": exc.as_dict()}
    InboundMessage.objects.create(sender=message.sender, receiver=stream.receiver, kind=message.kind,
                                  stream_seq=message.stream_seq, message_id=message.message_id, type=message.type,
                                  schema_version=message.schema_version, payload=message.payload, result=result,
                                  created_at=message.created_at)
    stream.next_expected = expected + 1
    stream.refused_seq, stream.refused_at, stream.last_error = None, None, ""
    stream.save(update_fields=["next_expected", "refused_seq", "refused_at", "last_error"])
    return 200, {"status": "applied", "next_expected": stream.next_expected, "result": result}


def signed_keys_at(key_id: str, created: int) -> list:
    return selectors.public_keys(key_id, dt.datetime.fromtimestamp(created, tz=dt.UTC))


def pending_count(receiver: str | None = None) -> int:
    qs = OutboundMessage.objects.exclude(status=OutboundMessage.Status.SENT)
    return qs.filter(receiver=receiver).count() if receiver else qs.count()

