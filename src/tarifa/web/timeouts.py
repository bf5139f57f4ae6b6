"""A statement timeout for web requests (TARIFA_REQUEST_STATEMENT_TIMEOUT, seconds; 0: none).

A query that runs longer than that is cancelled by PostgreSQL, so a request whose client has
given up does not go on in the database; the request answers 503 saying so. Long work runs as a
background task (tarifa.web.background), where no such limit applies: the timeout is set on
the request's connection when the request starts and reset when it ends, so workers, commands
and migrations are not affected. `tarifa serve`, whose processes use their connections for web
requests only, sets it once when a connection opens instead (`set_at_connect`): two round trips
fewer per request.
"""

from django.conf import settings
from django.db import connection
from django.db.utils import OperationalError
from django.http import HttpResponse, JsonResponse
from django.utils.translation import gettext as _


def timeout_ms() -> int:
    return int(float(getattr(settings, "TARIFA_REQUEST_STATEMENT_TIMEOUT", 30)) * 1000)


def is_timeout(exc) -> bool:
    import psycopg

    cause = exc
    while cause is not None:
        if isinstance(cause, psycopg.errors.QueryCanceled):
            return True
        cause = cause.__cause__
    return False


# True in a process whose connections get the timeout when they open (tarifa serve): the
# middleware then leaves it alone.
AT_CONNECT = False


def set_at_connect() -> None:
    """Give every connection this process (and its forks) opens the request timeout as a
    connection parameter. Only for processes that serve web requests and nothing else."""
    global AT_CONNECT
    from django.db import connections

    ms = timeout_ms()
    if ms <= 0:
        return
    for alias in connections:
        options = connections[alias].settings_dict.setdefault("OPTIONS", {})
        options["options"] = f"{options.get('options', '')} -c statement_timeout={ms}".strip()
    AT_CONNECT = True


class StatementTimeoutMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ms = timeout_ms()
        if ms <= 0 or AT_CONNECT:
            return self.get_response(request)
        set_ok = False
        if not connection.in_atomic_block:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('statement_timeout', %s, false)", [f"{ms}ms"])
            set_ok = True
        try:
            return self.get_response(request)
        finally:
            if set_ok and connection.connection is not None:
                try:
                    if not connection.in_atomic_block:
                        with connection.cursor() as cursor:
                            cursor.execute("RESET statement_timeout")
                except Exception:  # a broken connection is closed and replaced by Django anyway
                    pass

    def process_exception(self, request, exc):
        if not isinstance(exc, OperationalError) or not is_timeout(exc):
            return None
        seconds = timeout_ms() / 1000
        message = _("The database took longer than %(s)s s for this request and it was stopped. Narrow the "
                    "list with a filter, or run the work as a background task (exports and checks do).") % {
            "s": f"{seconds:g}"}
        if request.path.startswith("/api/"):
            return JsonResponse({"error": {"code": "statement_timeout", "message": message, "fields": {}}},
                                status=503)
        return HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
