import ipaddress
import uuid

from tarifa.audit import context


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return ""


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, unless that is one of the proxies named in
    TARIFA_TRUSTED_PROXIES — then the last address of X-Forwarded-For that is not a trusted
    proxy (the one the first trusted proxy saw). Without that setting X-Forwarded-For is never
    read, so a client cannot choose its address (audit trail, rate limits)."""
    from django.conf import settings

    address = _address(request.META.get("REMOTE_ADDR", ""))
    trusted = set(getattr(settings, "TARIFA_TRUSTED_PROXIES", ()) or ())
    if address and address in trusted:
        hops = [_address(h) for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        for hop in reversed(hops):
            if not hop:
                break  # a malformed hop: the proxies cannot vouch for anything before it
            if hop not in trusted:
                return hop
    # A unix-socket peer or a malformed value: stored as unknown ("") rather than making the
    # audit row (an inet column) fail, and with it the change being audited.
    return address


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


class RequestGuardMiddleware:
    """Refuses, before any view runs, what no view can handle (clear 4xx instead of a 500):

    - a NUL character in the path or in a query parameter (PostgreSQL text cannot hold one):
      400 naming the parameter, on every list, search and lookup of the UI and the API;
    - an API body larger than DATA_UPLOAD_MAX_MEMORY_SIZE: 413 in the API's error format
      (file uploads to the API are multipart and checked by their own limits);
    - Django's RequestDataTooBig raised later (a form post over the limit): 413 too;
    - a file upload (multipart) larger than its view's limit: 413 before a byte of it is read
      (see `upload_limit`), so a 200 MB file is neither stored nor parsed. This middleware
      stands before CsrfViewMiddleware, whose check reads the body.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from django.conf import settings

        if "\x00" in request.path:
            return bad_request(request, "invalid_path", "The path contains a NUL character.", {})
        for name, values in request.GET.lists():
            if "\x00" in name or any("\x00" in v for v in values):
                field = name.replace("\x00", "\\0")
                return bad_request(request, "validation_failed", f"{field}: NUL characters are not allowed.",
                                   {field: ["NUL characters are not allowed."]})
        if request.path.startswith("/api/") and not request.content_type.startswith("multipart/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            if limit is not None and length > limit:
                return too_large(request, limit)
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method not in ("POST", "PUT", "PATCH") or not request.content_type.startswith("multipart/"):
            return None
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        setting, limit = upload_limit(view_func)
        if length > limit + MULTIPART_SLACK:
            hint = UPLOAD_HINTS.get(setting, "")
            return bad_request(request, "payload_too_large",
                               f"The upload is too large ({length} bytes; at most {limit}, {setting}).{hint}",
                               {}, status=413)
        return None

    def process_exception(self, request, exception):
        from django.conf import settings
        from django.core.exceptions import RequestDataTooBig

        if isinstance(exception, RequestDataTooBig):
            return too_large(request, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        return None


def bad_request(request, code, message, fields, status=400):
    from django.http import JsonResponse
    from django.shortcuts import render

    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": code, "message": message, "fields": fields}}, status=status)
    return render(request, "web/400.html", {"message": message}, status=status)


def too_large(request, limit):
    return bad_request(request, "payload_too_large", f"The request body is larger than {limit} bytes.", {}, status=413)


# Room for a form's other fields and the multipart framing beside the file itself.
MULTIPART_SLACK = 64 * 1024
UPLOAD_HINTS = {"TARIFA_MAX_USAGE_FILE_BYTES": " Import larger usage files with `tarifa usage import FILE`."}


def upload_limit(view_func) -> tuple[str, int]:
    """(setting name, bytes) of the largest upload a view takes: its `max_upload_setting`
    (a view class, a DRF viewset, or a registered screen's `max_upload_setting`), else
    TARIFA_MAX_UPLOAD_BYTES (attachments, CSV imports and every other upload)."""
    from django.conf import settings

    owner = getattr(view_func, "view_class", None) or getattr(view_func, "cls", None)
    initkwargs = getattr(view_func, "view_initkwargs", None) or getattr(view_func, "initkwargs", None) or {}
    setting = getattr(initkwargs.get("screens"), "max_upload_setting", None) or getattr(owner, "max_upload_setting",
                                                                                      None)
    setting = setting or "TARIFA_MAX_UPLOAD_BYTES"
    return setting, int(getattr(settings, setting))
