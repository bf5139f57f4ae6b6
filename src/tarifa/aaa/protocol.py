"""RADIUS on pyrad's codec, without the ORM: the dictionary, what a request says (accounting
records with 64-bit counters), how a password is checked (PAP, CHAP), the reply attributes of a
profile per NAS type, and the cache that answers retransmissions.

Nothing here encodes or decodes packets by hand: pyrad does (its `Packet` classes and the
FreeRADIUS-format dictionaries vendored in `dictionaries/`).
"""

import functools
import hashlib
import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from pyrad import packet as rp
from pyrad.dictionary import Dictionary

DICTIONARY = Path(__file__).with_name("dictionaries") / "dictionary"

ACCESS_REQUEST = rp.AccessRequest
ACCESS_ACCEPT = rp.AccessAccept
ACCESS_REJECT = rp.AccessReject
ACCOUNTING_REQUEST = rp.AccountingRequest
ACCOUNTING_RESPONSE = rp.AccountingResponse
STATUS_SERVER = rp.StatusServer

# Acct-Status-Type values (RFC 2866 §5.1)
START, STOP, INTERIM, ACCOUNTING_ON, ACCOUNTING_OFF = 1, 2, 3, 7, 8
STATUS_NAMES = {START: "start", STOP: "stop", INTERIM: "interim", ACCOUNTING_ON: "accounting_on",
                ACCOUNTING_OFF: "accounting_off"}

# Attribute codes read straight from the decoded packet (pyrad keeps raw values by code).
USER_NAME, USER_PASSWORD, CHAP_PASSWORD, NAS_IP_ADDRESS = 1, 2, 3, 4
FRAMED_IP_ADDRESS = 8
CALLING_STATION_ID = 31
ACCT_STATUS_TYPE, ACCT_INPUT_OCTETS, ACCT_OUTPUT_OCTETS, ACCT_SESSION_ID = 40, 42, 43, 44
ACCT_SESSION_TIME, ACCT_INPUT_PACKETS, ACCT_OUTPUT_PACKETS, ACCT_TERMINATE_CAUSE = 46, 47, 48, 49
ACCT_INPUT_GIGAWORDS, ACCT_OUTPUT_GIGAWORDS = 52, 53
EVENT_TIMESTAMP = 55
SESSION_TIMEOUT = 27
CHAP_CHALLENGE = 60
ACCT_INTERIM_INTERVAL = 85
NAS_PORT_ID = 87
MESSAGE_AUTHENTICATOR = 80

TERMINATE_CAUSES = {1: "User-Request", 2: "Lost-Carrier", 3: "Lost-Service", 4: "Idle-Timeout",
                    5: "Session-Timeout", 6: "Admin-Reset", 7: "Admin-Reboot", 8: "Port-Error",
                    9: "NAS-Error", 10: "NAS-Request", 11: "NAS-Reboot", 12: "Port-Unneeded",
                    13: "Port-Preempted", 14: "Port-Suspended", 15: "Service-Unavailable", 16: "Callback",
                    17: "User-Error", 18: "Host-Request"}


@functools.lru_cache(maxsize=1)
def dictionary() -> Dictionary:
    import logging

    logging.getLogger("pyrad").setLevel(logging.ERROR)  # it notes the one "vsa" type it skips
    return Dictionary(str(DICTIONARY))


def _raw(pkt, code) -> bytes | None:
    values = OrderedDict.get(pkt, code)
    return values[0] if values else None


def _text(pkt, code) -> str:
    raw = _raw(pkt, code)
    return raw.decode("utf-8", "replace") if raw else ""


def _int(pkt, code) -> int:
    raw = _raw(pkt, code)
    return int.from_bytes(raw, "big") if raw and len(raw) == 4 else 0


def _ip(pkt, code) -> str | None:
    raw = _raw(pkt, code)
    return ".".join(str(b) for b in raw) if raw and len(raw) == 4 else None


def counter64(octets: int, gigawords: int) -> int:
    """A 64-bit byte counter from RADIUS's 32-bit Octets and its Gigawords (RFC 2869 §5.1-5.2)."""
    return (gigawords << 32) + octets


@dataclass(slots=True)
class AcctRecord:
    """One Accounting-Request, as the services apply it."""

    nas_id: object
    status: int
    session_id: str = ""
    login: str = ""
    framed_ip: str | None = None
    calling_station_id: str = ""
    nas_port_id: str = ""
    session_time: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0
    terminate_cause: str = ""
    interim_interval: int = 0
    event_time: float = 0.0  # seconds since the epoch: Event-Timestamp, else when received
    delay: int = 0


def accounting_record(pkt, *, nas_id, received: float) -> AcctRecord:
    """What an Accounting-Request says, with 64-bit counters."""
    event = _int(pkt, EVENT_TIMESTAMP)
    delay = _int(pkt, 41)  # Acct-Delay-Time
    cause = _int(pkt, ACCT_TERMINATE_CAUSE)
    return AcctRecord(
        nas_id=nas_id, status=_int(pkt, ACCT_STATUS_TYPE), session_id=_text(pkt, ACCT_SESSION_ID)[:64],
        login=_text(pkt, USER_NAME)[:100], framed_ip=_ip(pkt, FRAMED_IP_ADDRESS),
        calling_station_id=_text(pkt, CALLING_STATION_ID)[:64], nas_port_id=_text(pkt, NAS_PORT_ID)[:64],
        session_time=_int(pkt, ACCT_SESSION_TIME),
        bytes_in=counter64(_int(pkt, ACCT_INPUT_OCTETS), _int(pkt, ACCT_INPUT_GIGAWORDS)),
        bytes_out=counter64(_int(pkt, ACCT_OUTPUT_OCTETS), _int(pkt, ACCT_OUTPUT_GIGAWORDS)),
        packets_in=_int(pkt, ACCT_INPUT_PACKETS), packets_out=_int(pkt, ACCT_OUTPUT_PACKETS),
        terminate_cause=TERMINATE_CAUSES.get(cause, str(cause) if cause else ""),
        interim_interval=_int(pkt, ACCT_INTERIM_INTERVAL),
        event_time=float(event) if event else received - delay, delay=delay)


def user_name(pkt) -> str:
    return _text(pkt, USER_NAME)


def acct_session_id(pkt) -> str:
    """The Acct-Session-Id an Access-Request carries (MikroTik, Accel-PPP; Cisco when configured)."""
    return _text(pkt, ACCT_SESSION_ID)[:64]


def calling_station(pkt) -> str:
    return _text(pkt, CALLING_STATION_ID)


def has_message_authenticator(pkt) -> bool:
    return OrderedDict.__contains__(pkt, MESSAGE_AUTHENTICATOR)


def check_password(pkt, password: str) -> tuple[str, bool]:
    """(method, ok) for the Access-Request's PAP or CHAP credentials against `password`."""
    if OrderedDict.__contains__(pkt, USER_PASSWORD):
        try:
            given = pkt.PwDecrypt(_raw(pkt, USER_PASSWORD))
        except (UnicodeDecodeError, ValueError):
            return "pap", False
        return "pap", hmac.compare_digest(given.encode(), password.encode())
    chap = _raw(pkt, CHAP_PASSWORD)
    if chap is not None:
        if len(chap) != 17:
            return "chap", False
        challenge = _raw(pkt, CHAP_CHALLENGE) or pkt.authenticator
        expected = hashlib.md5(chap[:1] + password.encode() + challenge).digest()
        return "chap", hmac.compare_digest(chap[1:], expected)
    return "", False


def normalise_mac(text: str) -> str:
    hexdigits = "".join(c for c in text.lower() if c in "0123456789abcdef")
    if len(hexdigits) != 12:
        return ""
    return ":".join(hexdigits[i:i + 2] for i in range(0, 12, 2))


# -- reply attributes --------------------------------------------------------------------------

def rate_attributes(nas_type: str, down_kbps: int | None, up_kbps: int | None) -> list[tuple[str, object]]:
    """The speed limit in the attributes each kind of NAS reads.

    - MikroTik: `Mikrotik-Rate-Limit = "<rx>/<tx>"` from the router's side: rx is the subscriber's
      upload, tx the download, e.g. "10240k/102400k".
    - Cisco ISG: `Cisco-AVPair = "subscriber:sub-qos-policy-in=…"/"…-out=…"` naming policy maps the
      operator defines as `TARIFA_UP_<kbps>` and `TARIFA_DOWN_<kbps>`.
    - Juniper (ERX/MX): `ERX-Qos-Profile-Name = "TARIFA_<down>_<up>"` (a QoS profile defined on the BNG).
    - Accel-PPP: `Filter-Id = "<down>/<up>"` in kbit/s (its shaper's default `attr=Filter-Id`).
    - Generic (RFC): the WISPr bandwidth attributes, in bit/s.
    """
    if not down_kbps and not up_kbps:
        return []
    down, up = down_kbps or 0, up_kbps or 0
    if nas_type == "mikrotik":
        return [("Mikrotik-Rate-Limit", f"{up}k/{down}k")]
    if nas_type == "cisco":
        out = []
        if up:
            out.append(("Cisco-AVPair", f"subscriber:sub-qos-policy-in=TARIFA_UP_{up}"))
        if down:
            out.append(("Cisco-AVPair", f"subscriber:sub-qos-policy-out=TARIFA_DOWN_{down}"))
        return out
    if nas_type == "juniper":
        return [("ERX-Qos-Profile-Name", f"TARIFA_{down}_{up}")]
    if nas_type == "accel-ppp":
        return [("Filter-Id", f"{down}/{up}")]
    out = []
    if down:
        out.append(("WISPr-Bandwidth-Max-Down", down * 1000))
    if up:
        out.append(("WISPr-Bandwidth-Max-Up", up * 1000))
    return out


@dataclass(frozen=True)
class ReplyProfile:
    """A profile as the server uses it (no ORM)."""

    id: object
    rate_down_kbps: int | None = None
    rate_up_kbps: int | None = None
    ip_pool: str = ""
    simultaneous_use: int = 1
    session_timeout: int | None = None
    idle_timeout: int | None = None
    interim_interval: int = 300
    attributes: dict = field(default_factory=dict)
    when_suspended: str = "reject"
    pay_first_pool: str = ""
    pay_first_rate_down_kbps: int | None = None
    pay_first_rate_up_kbps: int | None = None
    monthly_cap_mb: int | None = None
    when_capped: str = "throttle"
    capped_rate_down_kbps: int | None = None
    capped_rate_up_kbps: int | None = None


def reply_attributes(profile: ReplyProfile, nas_type: str, *, static_ip: str = "", pool: str = "",
                     pay_first: bool = False, capped: bool = False) -> list[tuple[str, object]]:
    """The attributes of an Access-Accept for `profile` on a NAS of `nas_type` (`capped`: the
    profile's capped speed instead of its speed, the monthly traffic cap being reached)."""
    out: list[tuple[str, object]] = [("Service-Type", "Framed-User")]
    if pay_first:
        if profile.pay_first_pool:
            out.append(("Framed-Pool", profile.pay_first_pool))
        out += rate_attributes(nas_type, profile.pay_first_rate_down_kbps, profile.pay_first_rate_up_kbps)
    else:
        if static_ip:
            out.append(("Framed-IP-Address", static_ip))
        elif pool or profile.ip_pool:
            out.append(("Framed-Pool", pool or profile.ip_pool))
        if capped:
            out += rate_attributes(nas_type, profile.capped_rate_down_kbps, profile.capped_rate_up_kbps)
        else:
            out += rate_attributes(nas_type, profile.rate_down_kbps, profile.rate_up_kbps)
        if profile.session_timeout:
            out.append(("Session-Timeout", profile.session_timeout))
    if profile.idle_timeout:
        out.append(("Idle-Timeout", profile.idle_timeout))
    if profile.interim_interval:
        out.append(("Acct-Interim-Interval", profile.interim_interval))
    extra = profile.attributes or {}
    for key in ("*", nas_type):
        for name, value in (extra.get(key) or {}).items():
            out.append((name, value))
    return out


def valid_attributes(attributes: dict) -> list[str]:
    """Problems of a profile's extra attributes ({"nas type" or "*": {name: value}}), in words."""
    problems = []
    known = dictionary()
    if not isinstance(attributes, dict):
        return ["Give an object of NAS types, each with attribute names and values."]
    for key, values in attributes.items():
        if not isinstance(values, dict):
            problems.append(f"{key}: give attribute names and values.")
            continue
        for name, value in values.items():
            if name not in known.attributes:
                problems.append(f"{key}: unknown attribute {name}.")
                continue
            try:
                probe = rp.AuthPacket(dict=known, secret=b"x")
                probe.AddAttribute(name, value)
                probe._PktEncodeAttributes()
            except Exception as err:  # pyrad raises a variety of errors for bad values
                problems.append(f"{key}: {name} = {value!r} cannot be encoded ({err}).")
    return problems


# -- retransmissions ---------------------------------------------------------------------------

class ReplyCache:
    """Replies by (source address, port, identifier, request authenticator), kept `ttl` seconds:
    a retransmitted request is answered with the same bytes and not processed again."""

    def __init__(self, ttl: float = 30.0, size: int = 100_000):
        self.ttl, self.size = ttl, size
        self._items: OrderedDict = OrderedDict()

    @staticmethod
    def key(addr, data: bytes):
        return (addr[0], addr[1], data[1], data[4:20])

    def get(self, key):
        item = self._items.get(key)
        if item is None:
            return None
        reply, at = item
        if time.monotonic() - at > self.ttl:
            return None
        return reply

    def put(self, key, reply: bytes | None):
        """`reply` None marks a request being processed (a retransmission meanwhile is dropped)."""
        items = self._items
        items[key] = (reply, time.monotonic())
        items.move_to_end(key)
        while len(items) > self.size:
            items.popitem(last=False)
        if len(items) % 1024 == 0:
            self.expire()

    def expire(self):
        limit = time.monotonic() - self.ttl
        items = self._items
        while items:
            key, (reply, at) = next(iter(items.items()))
            if at >= limit:
                break
            items.popitem(last=False)

    def __contains__(self, key):
        item = self._items.get(key)
        return item is not None and time.monotonic() - item[1] <= self.ttl
