"""The federation endpoints other nodes call (not the staff API: no session, no token; a signed request)."""

import json
import time

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from tarifa.kernel.errors import DomainError

from . import selectors, services, signatures


def _error(status, code, message, **extra):
    return JsonResponse({"error": {"code": code, "message": message, "fields": {}}, **extra}, status=status)


def _headers(request) -> dict:
    return {k.lower(): v for k, v in request.headers.items()}


@csrf_exempt
@require_POST
def receive_message(request, sender: str, kind: str):
    """POST /federation/v1/streams/<sender>/<kind>/messages: one message of the stream, signed by the sender."""
    if not selectors.enabled():
        return _error(404, "federation_disabled", "This installation is standalone: it takes no federation messages.")
    body = request.body
    try:
        verified = signatures.verify_request(method=request.method, path=request.path, headers=_headers(request),
                                             body=body, public_keys=services.signed_keys_at, now=time.time(),
                                             max_skew=settings.TARIFA_FEDERATION_MAX_SKEW)
    except signatures.SignatureError as exc:
        return _error(401, exc.code, exc.message)
    node = selectors.node_of_key(verified.key_id)
    if node is None or node.code != sender:
        return _error(403, "not_the_sender", f"The key {verified.key_id} is not {sender}'s: a node sends only its "
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


@require_GET
def node_info(request):
    """GET /federation/v1/node: this node's code, role and public keys (what a peer registers)."""
    if not selectors.enabled():
        return _error(404, "federation_disabled", "This installation is standalone.")
    services.own_signing_key()
    return JsonResponse({"code": selectors.own_code(), "role": selectors.role(), "keys": selectors.own_public_keys()})
