"""Endpoints called by payment networks, not by staff: plain Django views under /api/v1/.

- `/api/v1/terminals/<gateway code>/` — the terminal networks' check / pay / status protocol
  (terminal_protocol, docs/payments.md): GET or POST parameters, HTTP Basic with the
  gateway's own credentials, optional IP allow-list, answers in XML (JSON on
  `Accept: application/json`) with numeric result codes.
- `/api/v1/gateways/<gateway code>/webhook/` — card providers' signed webhooks.

Staff tokens and sessions mean nothing here; CSRF does not apply (no cookies are used).
"""

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from tarifa.kernel.errors import DomainError
from tarifa.web.api import error_body, register_endpoint
from tarifa.web.middleware import client_ip

from . import errors, services
from . import terminal_protocol as proto
from .services import terminals


def _answer(request, answer: proto.Answer, status: int = 200) -> HttpResponse:
    if proto.wants_json(request.headers.get("Accept", "")):
        response = HttpResponse(proto.render_json(answer), content_type="application/json; charset=utf-8", status=status)
    else:
        response = HttpResponse(proto.render_xml(answer), content_type="application/xml; charset=utf-8", status=status)
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
def terminal(request, code: str):
    if request.method not in ("GET", "POST"):
        response = _answer(request, proto.Answer(result=proto.BAD_REQUEST, comment="Use GET or POST."), status=405)
        response["Allow"] = "GET, POST"
        return response
    params = request.GET.copy()
    if request.method == "POST":
        params.update(request.POST)
    txn = (params.get("txn_id") or "")[:100]
    try:
        gateway = services.authenticate_terminal(code, request.META.get("HTTP_AUTHORIZATION", ""), client_ip(request))
    except errors.GatewayAuthFailed as exc:
        response = _answer(request, proto.Answer(result=proto.OTHER_ERROR, txn_id=txn, comment=exc.message), 401)
        response["WWW-Authenticate"] = 'Basic realm="tarifa-terminals", charset="UTF-8"'
        return response
    except errors.GatewayAddressRefused as exc:
        return _answer(request, proto.Answer(result=proto.OTHER_ERROR, txn_id=txn, comment=exc.message), 403)
    except errors.GatewayInactive as exc:
        return _answer(request, proto.Answer(result=proto.PAYMENT_FORBIDDEN, txn_id=txn, comment=exc.message))
    return _answer(request, terminals.handle(gateway, params))


@csrf_exempt
def webhook(request, code: str):
    if request.method != "POST":
        response = JsonResponse(error_body("method_not_allowed", "Use POST."), status=405)
        response["Allow"] = "POST"
        return response
    try:
        checkout = services.handle_webhook(code, request.headers, request.body)
    except DomainError as exc:
        return JsonResponse(error_body(exc.code, exc.message, exc.fields), status=exc.status)
    return JsonResponse({"status": checkout.state, "checkout": str(checkout.pk),
                         "payment": checkout.payment.number if checkout.payment_id else None,
                         "replayed": bool(getattr(checkout, "replayed", False))})


register_endpoint("terminals/<str:code>/", terminal, "payments-terminal", None)
register_endpoint("gateways/<str:code>/webhook/", webhook, "payments-gateway-webhook", None)
