import ipaddress
import uuid

from tarifa.audit import context


def client_ip(request) -> str:
    # Behind a proxy, configure it to set REMOTE_ADDR (e.g. gunicorn --forwarded-allow-ips).
    address = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        # A unix-socket peer or a malformed value: stored as unknown rather than making the
        # audit row (an inet column) fail, and with it the change being audited.
        return ""


class RequestContextMiddleware:
    """Binds request id, client address and channel for the audit trail."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex
        channel = "api" if request.path.startswith("/api/") else "ui"
        with context.bind(request_id=request_id[:64], ip=client_ip(request), channel=channel):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id[:64]
        return response
