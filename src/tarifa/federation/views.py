"""The federation endpoints other nodes call (not the staff API: no session, no token; a signed request)."""

import json
import time

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from tarifa.kernel.errors import DomainError

from . import queries, selectors, services, signatures


def _error(status, code, message, **extra):
    return JsonResponse({"error": {"code": code, "message": message, "fields": {}}, **extra}, status=status)


def _headers(request) -> dict:
    return {k.lower(): v for k, v in request.headers.items()}


def _signed_by(request):
    """The node that signed `request` (a valid key of an active node), or the error response (401)."""
    try:
        verified = signatures.verify_request(method=request.method, path=request.path, headers=_headers(request),
                                             body=request.body, public_keys=services.signed_keys_at, now=time.time(),
                                             max_skew=settings.TARIFA_FEDERATION_MAX_SKEW)
    except signatures.SignatureError as exc:
        return None, _error(401, exc.code, exc.message)
    return selectors.node_of_key(verified.key_id), None


@csrf_exempt
@require_POST
def receive_message(request, sender: str, kind: str):
    """POST /federation/v1/streams/<sender>/<kind>/messages: one message of the stream, signed by the sender."""
    if not selectors.enabled():
        return _error(404, "federation_disabled", "This installation is standalone: it takes no federation messages.")
    body = request.body
    node, refused = _signed_by(request)
    if refused is not None:
        return refused
    if node is None or node.code != sender:
        return _error(403, "not_the_sender", f"The request is not signed by {sender}'s key: a node sends only its "
                                             f"own streams.")
    try:
        data = json.loads(body)
        message = services.parse_envelope(data, sender=sender, kind=kind)
    except ValueError:
        return _error(400, "bad_envelope", "The body is not JSON.")
    except DomainError as exc:
        return _error(exc.status, exc.code, exc.message)
    status, answer = services.receive(message)
    return JsonResponse(answer, status=status)


@csrf_exempt
@require_POST
def answer_query(request, name: str):
    """POST /federation/v1/query/<name>: a synchronous read (queries.py), signed by the asking node; the body is
    the query's JSON parameters."""
    if not selectors.enabled():
        return _error(404, "federation_disabled", "This installation is standalone: it answers no federation query.")
    node, refused = _signed_by(request)
    if refused is not None:
        return refused
    if node is None:
        return _error(403, "unknown_node", "The signing key belongs to no node of the registry.")
    try:
        params = json.loads(request.body or b"{}")
    except ValueError:
        return _error(400, "bad_query", "The body is not JSON.")
    status, answer = queries.answer(name, sender=node.code, params=params)
    return JsonResponse(answer, status=status)


@require_GET
def node_info(request):
    """GET /federation/v1/node: this node's code, role and public keys (what a peer registers)."""
    if not selectors.enabled():
        return _error(404, "federation_disabled", "This installation is standalone.")
    services.own_signing_key()
    return JsonResponse({"code": selectors.own_code(), "role": selectors.role(), "keys": selectors.own_public_keys()})
