"""Dynamic authorization client (RFC 5176): CoA-Request and Disconnect-Request to a NAS.

The packets are pyrad's (`CoAPacket`), never hand-written. A request carries a
Message-Authenticator (first attribute, BlastRADIUS) and identifies the session by
NAS-IP-Address, User-Name, Acct-Session-Id and Framed-IP-Address (whichever are known).
It is sent, and retransmitted unchanged (same Identifier and Request Authenticator,
RFC 5176 §2.3) when no valid answer came within `timeout` seconds, at most `attempts`
times. A reply counts only when its Identifier, Response Authenticator and (when present)
Message-Authenticator verify; anything else is ignored as the RFC says.

Every transmission is one `Attempt` of the `Result`: "timeout" for each unanswered one,
then "ack" or "nak" (with the Error-Cause, RFC 5176 §3.5, decoded to its number and name),
or "error" when the request could not be sent at all.

No ORM here: `services` records the results (the CoA log) and decides what to send.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from pyrad import packet as rp
from pyrad.dictionary import Dictionary

from tarifa.kernel.clock import now

from .protocol import dictionary

DISCONNECT = "disconnect"
COA = "coa"

ACK = "ack"
NAK = "nak"
TIMEOUT = "timeout"
ERROR = "error"

DEFAULT_TIMEOUT = 1.0   # seconds per transmission
DEFAULT_ATTEMPTS = 3    # transmissions in all (the first and two retransmissions)

# RFC 5176 §3.5 (the names the IANA registry gives them).
ERROR_CAUSES = {
    201: "Residual Session Context Removed",
    202: "Invalid EAP Packet (Ignored)",
    401: "Unsupported Attribute",
    402: "Missing Attribute",
    403: "NAS Identification Mismatch",
    404: "Invalid Request",
    405: "Unsupported Service",
    406: "Unsupported Extension",
    407: "Invalid Attribute Value",
    501: "Administratively Prohibited",
    502: "Request Not Routable (Proxy)",
    503: "Session Context Not Found",
    504: "Session Context Not Removable",
    505: "Other Proxy Processing Error",
    506: "Resources Unavailable",
    507: "Request Initiated",
    508: "Multiple Session Selection Unsupported",
}

_REQUEST_CODE = {DISCONNECT: rp.DisconnectRequest, COA: rp.CoARequest}
_ACK_CODES = {rp.DisconnectACK, rp.CoAACK}
_NAK_CODES = {rp.DisconnectNAK, rp.CoANAK}



@dataclass
class Attempt:
    number: int
    outcome: str                 # ack / nak / timeout / error
    at: dt.datetime              # when this transmission left
    elapsed_ms: float            # until the answer (or the timeout)
    error_cause: int | None = None
    detail: str = ""

    @property
    def error_cause_text(self) -> str:
        if self.error_cause is None:
            return ""
        return f"{self.error_cause} {ERROR_CAUSES.get(self.error_cause, 'Unknown')}"


@dataclass
class Result:
    kind: str
    host: str
    port: int
    attributes: dict             # what was sent (besides Message-Authenticator), readable values
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        return self.attempts[-1].outcome if self.attempts else ERROR

    @property
    def ok(self) -> bool:
        return self.outcome == ACK


def session_identity(*, nas_ip: str = "", user_name: str = "", acct_session_id: str = "",
                     framed_ip: str = "") -> dict:
    """The attributes that name a session to its NAS (RFC 5176 §3), the known ones only."""
    found = {"NAS-IP-Address": nas_ip, "User-Name": user_name, "Acct-Session-Id": acct_session_id,
             "Framed-IP-Address": framed_ip}
    return {name: str(value) for name, value in found.items() if value}


def error_cause(reply: rp.Packet) -> int | None:
    """The Error-Cause of a reply as its number (read from the raw attribute, whatever names the
    dictionary gives its values), or None."""
    raw = OrderedDict.get(reply, 101)
    return int.from_bytes(raw[0], "big") if raw and len(raw[0]) == 4 else None


def attribute_pairs(attributes) -> list[tuple[str, object]]:
    """(name, value) pairs from a dict (a value or a list of values per name) or from pairs."""
    items = attributes.items() if isinstance(attributes, dict) else attributes
    return [(name, one) for name, value in items
            for one in (value if isinstance(value, (list, tuple)) else [value])]


def readable(attributes) -> dict:
    """The attributes as a JSON-able dict: a name's several values as a list."""
    out: dict = {}
    for name, value in attribute_pairs(attributes):
        value = value if isinstance(value, (int, str)) else str(value)
        if name in out:
            out[name] = [*out[name], value] if isinstance(out[name], list) else [out[name], value]
        else:
            out[name] = value
    return out


def build_request(kind: str, *, secret: bytes, attributes, dict_: Dictionary | None = None) -> rp.CoAPacket:
    """A CoA- or Disconnect-Request with Message-Authenticator first; `attributes`: see
    `attribute_pairs`."""
    if kind not in _REQUEST_CODE:
        raise ValueError(f"unknown request kind {kind!r}")
    request = rp.CoAPacket(code=_REQUEST_CODE[kind], secret=secret, dict=dict_ or dictionary())
    request.add_message_authenticator()
    for name, value in attribute_pairs(attributes):
        request.AddAttribute(name, value)
    return request


class _ReplyProtocol(asyncio.DatagramProtocol):
    def __init__(self, request: rp.CoAPacket):
        self.request = request
        self.waiter: asyncio.Future | None = None
        self.ignored: list[str] = []

    def datagram_received(self, data, addr):
        if self.waiter is None or self.waiter.done():
            return
        try:
            reply = rp.CoAPacket(packet=data, secret=self.request.secret, dict=self.request.dict)
        except Exception as exc:  # noqa: BLE001 — a malformed datagram is ignored (RFC 5176 §3.2)
            self.ignored.append(f"malformed reply from {addr[0]}: {exc}")
            return
        if not self.request.VerifyReply(reply, data):
            self.ignored.append(f"reply from {addr[0]} failed verification (id, authenticator or "
                                "Message-Authenticator)")
            return
        self.waiter.set_result(reply)

    def error_received(self, exc):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)


async def send(kind: str, *, host: str, port: int, secret: bytes | str, attributes,
               timeout: float = DEFAULT_TIMEOUT, attempts: int = DEFAULT_ATTEMPTS,
               dict_: Dictionary | None = None) -> Result:
    """Send one CoA- or Disconnect-Request to `host:port` and wait for its answer (see the module)."""
    secret = secret.encode() if isinstance(secret, str) else secret
    result = Result(kind=kind, host=host, port=int(port), attributes=readable(attributes))
    attempts = max(1, int(attempts))
    try:
        request = build_request(kind, secret=secret, attributes=attributes, dict_=dict_)
        raw = request.RequestPacket()
    except Exception as exc:  # noqa: BLE001 — an attribute the dictionary cannot encode
        result.attempts.append(Attempt(1, ERROR, now(), 0.0, detail=f"cannot encode the request: {exc}"))
        return result
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_datagram_endpoint(lambda: _ReplyProtocol(request),
                                                                  remote_addr=(host, int(port)))
    except OSError as exc:
        result.attempts.append(Attempt(1, ERROR, now(), 0.0, detail=f"cannot send: {exc}"))
        return result
    try:
        for number in range(1, attempts + 1):
            protocol.waiter = loop.create_future()
            at, started = now(), time.perf_counter()
            try:
                transport.sendto(raw)
                reply = await asyncio.wait_for(protocol.waiter, timeout)
            except (TimeoutError, asyncio.TimeoutError):
                detail = "; ".join(protocol.ignored) or f"no answer within {timeout:g} s"
                protocol.ignored.clear()
                result.attempts.append(Attempt(number, TIMEOUT, at, _ms(started), detail=detail))
                continue
            except OSError as exc:  # ICMP port unreachable and the like
                result.attempts.append(Attempt(number, ERROR, at, _ms(started), detail=str(exc)))
                continue
            outcome = ACK if reply.code in _ACK_CODES else NAK if reply.code in _NAK_CODES else ERROR
            cause = error_cause(reply)
            detail = "" if outcome != ERROR else f"unexpected reply code {reply.code}"
            result.attempts.append(Attempt(number, outcome, at, _ms(started), error_cause=cause, detail=detail))
            break
    finally:
        transport.close()
    return result


def _run(make_coro):
    """Run a coroutine to the end from synchronous code, on a loop of its own — in a thread of its
    own when this thread already runs a loop (Playwright's sync API, an ASGI server)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()


def send_sync(kind: str, **kwargs) -> Result:
    """`send` from synchronous code (a job, a view, a command), on a loop of its own."""
    return _run(lambda: send(kind, **kwargs))


async def send_many(requests: list[dict]) -> list[Result]:
    """Several requests at once (each a dict of `send`'s keyword arguments, with `kind`)."""
    return list(await asyncio.gather(*(send(**r) for r in requests)))


def send_many_sync(requests: list[dict]) -> list[Result]:
    return _run(lambda: send_many(requests)) if requests else []


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
