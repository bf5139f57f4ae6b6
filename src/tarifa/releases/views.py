"""GET /federation/v1/releases?after=N — the centre serves its releases to the nodes (a signed request)."""

import time

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from tarifa.federation import selectors as federation
from tarifa.federation import services as federation_services
from tarifa.federation import signatures

from . import selectors, services


def _error(status, code, message):
    return JsonResponse({"error": {"code": code, "message": message, "fields": {}}}, status=status)


@require_GET
def releases(request):
    if federation.role() != "centre":
        return _error(404, "not_the_centre", "Reference releases are served by the centre.")
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        verified = signatures.verify_request(method="GET", path=request.path, headers=headers, body=request.body,
                                             public_keys=federation_services.signed_keys_at, now=time.time(),
                                             max_skew=settings.TARIFA_FEDERATION_MAX_SKEW)
    except signatures.SignatureError as exc:
        return _error(401, exc.code, exc.message)
    if federation.node_of_key(verified.key_id) is None:
        return _error(403, "unknown_node", "The key is not a registered node's.")
    try:
        after = max(0, int(request.GET.get("after", "0")))
        limit = min(max(1, int(request.GET.get("limit", services.PAGE))), services.PAGE)
    except ValueError:
        return _error(400, "bad_query", "after and limit are whole numbers.")
    found = selectors.releases_after(after, limit)
    return JsonResponse({"centre": federation.own_code(), "latest": selectors.in_force_number(),
                         "releases": [services.bundle(r) for r in found]})
