"""Authentication, permission and pagination classes named in REST_FRAMEWORK settings.

Kept apart from api.py: DRF imports these while `rest_framework.views` loads.
"""

from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions, permissions

from tarifa.identity.services import token_user


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        parts = header.split()
        if not parts or parts[0] != self.keyword:
            return None
        if len(parts) != 2 or not parts[1].isascii() or not parts[1].isprintable():
            # A token is printable ASCII: anything else (non-ASCII bytes, NUL) is refused before
            # it reaches the database.
            raise exceptions.AuthenticationFailed(_("Malformed Authorization header: expected 'Bearer <token>'."))
        found = token_user(parts[1])
        if found is None:
            raise exceptions.AuthenticationFailed(_("Invalid, expired or revoked token."))
        return found

    def authenticate_header(self, request):
        return self.keyword


class SessionAuthentication(authentication.SessionAuthentication):
    """Browser sessions, with CSRF enforced on unsafe methods (DRF's behaviour)."""


class ModelPermission(permissions.BasePermission):
    """GET needs view, POST add, PUT/PATCH change, DELETE delete (archive), on the viewset's model.

    An action declares its own with `@action(..., required_permission="payments.reverse")`;
    a view without a model declares `required_permission`.
    """

    method_actions = {"GET": "view", "HEAD": "view", "OPTIONS": "view", "POST": "add", "PUT": "change",
                      "PATCH": "change", "DELETE": "delete"}

    def required(self, request, view) -> str | None:
        action = getattr(view, "action", None)
        handler = getattr(view, action, None) if action else None
        explicit = getattr(handler, "kwargs", {}).get("required_permission") if handler else None
        if explicit:
            return explicit
        if getattr(view, "required_permission", None):
            return view.required_permission
        queryset = getattr(view, "queryset", None)
        if queryset is None:
            return None
        meta = queryset.model._meta
        return f"{meta.app_label}.{self.method_actions[request.method]}_{meta.model_name}"

    def has_permission(self, request, view):
        if request.method not in self.method_actions:
            # TRACE, CONNECT or an invented method: no view of the API answers it.
            raise exceptions.MethodNotAllowed(request.method)
        if not request.user or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        perm = self.required(request, view)
        return perm is None or request.user.has_perm(perm)


# Lists never count a large table: "next page" pagination with a bounded count (pagination.py).
from .pagination import Pagination  # noqa: E402,F401
