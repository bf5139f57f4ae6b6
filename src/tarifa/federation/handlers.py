"""Message handlers by type: an app registers what applies a message it receives,
`register("payments.foreign_payment", apply_foreign_payment, version=1)` (or as a decorator).

A handler is called with the `Message` inside the receiver's transaction, the one that writes the
inbox row: it writes through its app's services and returns a JSON-ready result (stored, and sent
back to the sender; a duplicate gets the same result). A `DomainError` it raises is a business
refusal: stored as the result `{"refused": {code, message, fields}}`, the message counts as applied
(answered once, for good). Any other exception rolls the whole message back: the sender retries.

The sender's side learns the result through a **result hook**: `on_result("payments.foreign_payment",
apply_result)` registers `apply_result(message, result)` (the `OutboundMessage` and the receiver's
result, a refusal included), called in the transaction that marks the message acknowledged. It may run
more than once for one message (a relay that resends after losing the answer gets the stored result
again): it must be idempotent.

`version` is the highest schema_version the handler reads; a message of an unknown type or a newer
schema_version is refused (422), the stream waits at it (never skipped) until this node is upgraded.
"""

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    message_id: uuid.UUID
    sender: str
    receiver: str
    kind: str
    stream_seq: int
    type: str
    schema_version: int
    payload: dict
    created_at: dt.datetime | None


@dataclass(frozen=True)
class Handler:
    type: str
    func: Callable[[Message], dict | None]
    version: int = 1


_handlers: dict[str, Handler] = {}


def register(type: str, func: Callable | None = None, *, version: int = 1):
    def add(f):
        _handlers[type] = Handler(type, f, version)
        return f

    return add(func) if func is not None else add


def unregister(type: str) -> None:
    _handlers.pop(type, None)
    _result_hooks.pop(type, None)


_result_hooks: dict[str, Callable] = {}


def on_result(type: str, func: Callable | None = None):
    """Register what the sender does with the receiver's result of a message of `type` (see above)."""
    def add(f):
        _result_hooks[type] = f
        return f

    return add(func) if func is not None else add


def result_hook(type: str) -> Callable | None:
    return _result_hooks.get(type)


def get(type: str) -> Handler | None:
    return _handlers.get(type)


@register("ping")
def ping(message: Message) -> dict:
    """The built-in test type: answers what it got, changes nothing but the inbox row."""
    return {"pong": message.payload, "stream_seq": message.stream_seq}
