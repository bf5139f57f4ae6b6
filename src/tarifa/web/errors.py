from django.shortcuts import render


def forbidden(request, exception=None):
    return render(request, "web/403.html", {"permission": str(exception or "")}, status=403)


def not_found(request, exception=None):
    return render(request, "web/404.html", status=404)
