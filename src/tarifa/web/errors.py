from django.http import JsonResponse
from django.shortcuts import render


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def _api_error(code: str, message: str, status: int) -> JsonResponse:
    # The same body as tarifa.web.api.exception_handler gives inside DRF views: URLs that
    # match no API route never reach DRF, so the API's one error format is kept here.
    return JsonResponse({"error": {"code": code, "message": message, "fields": {}}}, status=status)


def forbidden(request, exception=None):
    if _is_api(request):
        return _api_error("permission_denied", "You do not have permission to perform this action.", 403)
    return render(request, "web/403.html", {"permission": str(exception or "")}, status=403)


def not_found(request, exception=None):
    if _is_api(request):
        return _api_error("not_found", "Not found.", 404)
    return render(request, "web/404.html", status=404)

