"""FreeRADIUS alongside Tarifa: the endpoints its `rlm_rest` module calls (imported by api.py).

Operators who keep FreeRADIUS in front of their NAS point `rlm_rest` at the same rule the RADIUS
server answers from (`decision.decide`), read here from the database one request at a time:

- `POST /api/v1/aaa/rest/authorize/`: the request's attributes as rlm_rest sends them
  (`body = 'json'`: `{"User-Name": {"type": "string", "value": ["alice"]}, ...}`). 200 with
  `{"control:Cleartext-Password": ..., "reply:Framed-Pool": ..., ...}` (FreeRADIUS's pap, chap or
  mschap module then checks the password); 401 (rlm_rest: reject) with the reason in
  `request:Module-Failure-Message` (FreeRADIUS's log line; post-auth sends it back).
- `POST /api/v1/aaa/rest/post-auth/`: the outcome into the authentication log (header
  `X-Tarifa-Outcome: reject` from `Post-Auth-Type REJECT`). 204.
- `POST /api/v1/aaa/rest/accounting/`: the Accounting-Request applied by `services.apply_accounting`,
  the accounting path of the RADIUS server (sessions, 64-bit counters, each record once: a repeated
  record changes nothing). 204 once stored, so FreeRADIUS acknowledges only what is stored.

The NAS is the Tarifa NAS with the request's NAS-IP-Address (the sample site sets it from the
packet's source when the NAS leaves it out). The caller is a user with `aaa.rest` and an API token
(`Authorization: Bearer <token>`, sent by the site as `control:REST-HTTP-Header`): never open.
"""

import ipaddress
import time

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.web.api import register_endpoint

from . import protocol, selectors, services
from .decision import decide

STATUS_TYPES = {"start": protocol.START, "stop": protocol.STOP, "interim-update": protocol.INTERIM,
                "alive": protocol.INTERIM, "accounting-on": protocol.ACCOUNTING_ON,
                "accounting-off": protocol.ACCOUNTING_OFF}


class RlmRestRequestSerializer(serializers.Serializer):
    """The request list as rlm_rest's JSON encoder sends it: attribute name → {"type", "value": [...]}."""

    def to_representation(self, instance):
        return instance


def _attrs(request) -> dict:
    data = request.data
    if not isinstance(data, dict):
        raise ParseError("Expected rlm_rest's JSON object of attributes.")
    return data


def _values(attrs: dict, name: str) -> list:
    entry = attrs.get(name)
    if isinstance(entry, dict):
        entry = entry.get("value")
    if entry is None:
        return []
    return entry if isinstance(entry, list) else [entry]


def _text(attrs, name) -> str:
    values = _values(attrs, name)
    value = values[0] if values else ""
    text = value if isinstance(value, str) else str(value) if isinstance(value, int | float) else ""
    return "" if "\x00" in text else text  # PostgreSQL takes no NUL in text


def _int(attrs, name) -> int:
    value = _text(attrs, name)
    if not value.isdigit() or len(value) > 10:
        return 0
    return min(int(value), 2 ** 32 - 1)


def _nas(attrs):
    ip = _text(attrs, "NAS-IP-Address") or _text(attrs, "NAS-IPv6-Address")
    if not ip:
        return None
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return None
    return selectors.active_nas(ip)


def _method(attrs) -> str:
    if _values(attrs, "MS-CHAP2-Response"):
        return "mschapv2"
    if _values(attrs, "CHAP-Password"):
        return "chap"
    if _values(attrs, "User-Password"):
        return "pap"
    return ""


def _pair(value, op=":="):
    """One attribute for rlm_rest: never xlat-expanded (a password may contain %)."""
    return {"op": op, "do_xlat": False, "is_json": False, "value": value}


# A reject is rlm_rest's body, not the API's error format; a bad token still answers in the latter.
REJECT_OR_ERROR = {"oneOf": [
    {"type": "object", "required": ["request:Module-Failure-Message"], "description": "rlm_rest's reject",
     "properties": {"request:Module-Failure-Message": {"type": "object"}}},
    {"$ref": "#/components/schemas/Error"}]}


def _reject(reason):
    return Response({"request:Module-Failure-Message": _pair(f"tarifa: {reason}", "+=")}, status=401)


class RestAuthorizeView(APIView):
    """rlm_rest authorize: the subscriber's clear-text password (for FreeRADIUS to check) and the
    Access-Accept's attributes for the NAS's type; 401 with the reason when the rule says no."""

    required_permission = "aaa.rest"

    @extend_schema(request=RlmRestRequestSerializer, responses={
        200: OpenApiResponse(description="control/reply attributes"),
        401: OpenApiResponse(response=REJECT_OR_ERROR, description="rlm_rest's reject (the reason in "
                             "request:Module-Failure-Message), or the API's own 401 for a bad token")})
    def post(self, request):
        attrs = _attrs(request)
        nas = _nas(attrs)
        if nas is None:
            return _reject("unknown NAS")
        login = _text(attrs, "User-Name")
        sub = selectors.subscriber(login)
        decision = decide(sub, station=_text(attrs, "Calling-Station-Id"),
                          open_sessions=selectors.open_session_count(login) if sub else 0)
        if not decision.accept:
            return _reject(decision.reason)
        body = {"control:Cleartext-Password": _pair(sub.password)}
        reply: dict = {}
        for name, value in protocol.reply_attributes(sub.profile, nas.type, static_ip=sub.static_ip, pool=sub.pool,
                                                     pay_first=decision.pay_first, capped=decision.capped):
            reply.setdefault(name, []).append(str(value))
        for name, values in reply.items():
            body[f"reply:{name}"] = _pair(values if len(values) > 1 else values[0], "+=" if len(values) > 1 else ":=")
        if decision.reason:
            body["request:Module-Success-Message"] = _pair(f"tarifa: {decision.reason}")
        return Response(body)


def _reason(attrs) -> str:
    messages = [str(v) for v in _values(attrs, "Module-Failure-Message") if v]
    return "; ".join(messages) or "rejected by FreeRADIUS (wrong password?)"


class RestPostAuthView(APIView):
    """rlm_rest post-auth: the outcome into the authentication log (`X-Tarifa-Outcome: reject` from
    Post-Auth-Type REJECT, with FreeRADIUS's Module-Failure-Message as the reason)."""

    required_permission = "aaa.rest"

    @extend_schema(request=RlmRestRequestSerializer, responses={204: None})
    def post(self, request):
        attrs = _attrs(request)
        nas = _nas(attrs)
        login = _text(attrs, "User-Name")
        sub = selectors.subscriber(login)
        rejected = request.headers.get("X-Tarifa-Outcome", "").strip().lower() == "reject"
        if rejected:
            outcome, reason = "reject", _reason(attrs)
        else:
            outcome, reason = "accept", ", ".join(str(v) for v in _values(attrs, "Module-Success-Message") if v)
        ip = _text(attrs, "NAS-IP-Address") if nas else None
        services.log_attempts([(time.time(), outcome, reason[:200], login[:100], nas.id if nas else None, ip,
                                sub.subscription_id if sub else None, _text(attrs, "Calling-Station-Id")[:64],
                                _method(attrs))])
        return Response(status=204)


def accounting_record(attrs, *, nas_id, received: float) -> protocol.AcctRecord:
    """What rlm_rest's JSON of an Accounting-Request says, as the server's `protocol.accounting_record`."""
    status = _text(attrs, "Acct-Status-Type")
    status = STATUS_TYPES.get(status.lower(), int(status) if status.isdigit() else 0)
    cause = _text(attrs, "Acct-Terminate-Cause")
    if cause.isdigit():
        cause = protocol.TERMINATE_CAUSES.get(int(cause), cause)
    event = _int(attrs, "Event-Timestamp")  # seconds when sent as a number (else when received)
    delay = _int(attrs, "Acct-Delay-Time")
    framed = _text(attrs, "Framed-IP-Address") or None
    return protocol.AcctRecord(
        nas_id=nas_id, status=status, session_id=_text(attrs, "Acct-Session-Id")[:64],
        login=_text(attrs, "User-Name")[:100], framed_ip=framed if framed and framed.count(".") == 3 else None,
        calling_station_id=_text(attrs, "Calling-Station-Id")[:64], nas_port_id=_text(attrs, "NAS-Port-Id")[:64],
        session_time=_int(attrs, "Acct-Session-Time"),
        bytes_in=protocol.counter64(_int(attrs, "Acct-Input-Octets"), _int(attrs, "Acct-Input-Gigawords")),
        bytes_out=protocol.counter64(_int(attrs, "Acct-Output-Octets"), _int(attrs, "Acct-Output-Gigawords")),
        packets_in=_int(attrs, "Acct-Input-Packets"), packets_out=_int(attrs, "Acct-Output-Packets"),
        terminate_cause=cause[:32], interim_interval=_int(attrs, "Acct-Interim-Interval"),
        event_time=float(event) if event else received - delay, delay=delay)


class RestAccountingView(APIView):
    """rlm_rest accounting: Start / Interim-Update / Stop / Accounting-On / Accounting-Off applied
    as the RADIUS server applies them (each record once). 204 when stored; 404 for an unknown NAS
    (FreeRADIUS then does not acknowledge)."""

    required_permission = "aaa.rest"

    @extend_schema(request=RlmRestRequestSerializer, responses={204: None, 404: OpenApiResponse(
        description="no active NAS with this NAS-IP-Address")})
    def post(self, request):
        attrs = _attrs(request)
        nas = _nas(attrs)
        if nas is None:
            raise NotFound("No active NAS has this NAS-IP-Address.")
        record = accounting_record(attrs, nas_id=nas.id, received=time.time())
        sub = selectors.subscriber(record.login) if record.login else None
        services.apply_accounting([record], logins={sub.login: sub.subscription_id} if sub else {})
        return Response(status=204)


SAMPLE = {"User-Name": {"type": "string", "value": ["alice"]},
          "NAS-IP-Address": {"type": "ipaddr", "value": ["192.0.2.1"]}}
register_endpoint("aaa/rest/authorize/", RestAuthorizeView.as_view(), "aaa-rest-authorize", "aaa.rest", sample=SAMPLE)
register_endpoint("aaa/rest/post-auth/", RestPostAuthView.as_view(), "aaa-rest-post-auth", "aaa.rest", sample=SAMPLE)
register_endpoint("aaa/rest/accounting/", RestAccountingView.as_view(), "aaa-rest-accounting", "aaa.rest",
                  sample=SAMPLE)
