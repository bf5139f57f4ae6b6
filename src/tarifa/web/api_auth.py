"""Authentication, permission and pagination classes named in REST_FRAMEWORK settings.

Kept apart from api.py: DRF imports these while `rest_framework.views` loads.
"""

from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions, pagination, permissions
from rest_framework.utils.urls import replace_query_param

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


class Pagination(pagination.PageNumberPagination):
    """Pages of a list: `?page=N&page_size=M`, or `?limit=M&offset=K`; at most `max_page_size`
    items. A value that is not a positive whole number, a size over the maximum, or the two
    styles mixed answer 400 naming the parameter (they were silently replaced by defaults)."""

    page_size_query_param = "page_size"
    max_page_size = 1000
    limit_query_param, offset_query_param = "limit", "offset"
    query_params = ("page", "page_size", "limit", "offset")

    @staticmethod
    def _whole(request, name, minimum):
        raw = request.query_params.get(name)
        if raw is None:
            return None
        raw = raw.strip()
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
            raise exceptions.ValidationError({name: [_("A whole number.")]})
        value = int(raw)
        if value < minimum:
            raise exceptions.ValidationError({name: [_("At least %(min)s.") % {"min": minimum}]})
        return value

    def get_page_size(self, request):
        sizes = {name: self._whole(request, name, 1) for name in (self.page_size_query_param, self.limit_query_param)}
        given = {name: value for name, value in sizes.items() if value is not None}
        if len(given) > 1:
            raise exceptions.ValidationError({self.limit_query_param: [_("Give page_size or limit, not both.")]})
        for name, value in given.items():
            if value > self.max_page_size:
                raise exceptions.ValidationError({name: [_("At most %(max)s.") % {"max": self.max_page_size}]})
            return value
        return self.page_size

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.offset = self._whole(request, self.offset_query_param, 0)
        limit_style = self.offset is not None or self.limit_query_param in request.query_params
        if limit_style and self.page_query_param in request.query_params:
            raise exceptions.ValidationError({self.page_query_param: [_("Give page or offset/limit, not both.")]})
        if not limit_style:
            self._whole(request, self.page_query_param, 1)
            self.limit = None
            return super().paginate_queryset(queryset, request, view)
        self.limit, self.offset = self.get_page_size(request), self.offset or 0
        self.count = queryset.count() if hasattr(queryset, "count") else len(queryset)
        return list(queryset[self.offset:self.offset + self.limit])

    def get_paginated_response(self, data):
        if self.limit is None:
            return super().get_paginated_response(data)
        from rest_framework.response import Response

        return Response({"count": self.count, "next": self.get_next_link(), "previous": self.get_previous_link(),
                         "results": data})

    def get_next_link(self):
        if self.limit is None:
            return super().get_next_link()
        if self.offset + self.limit >= self.count:
            return None
        url = self.request.build_absolute_uri()
        url = replace_query_param(url, self.limit_query_param, self.limit)
        return replace_query_param(url, self.offset_query_param, self.offset + self.limit)

    def get_previous_link(self):
        if self.limit is None:
            return super().get_previous_link()
        if self.offset <= 0:
            return None
        url = replace_query_param(self.request.build_absolute_uri(), self.limit_query_param, self.limit)
        return replace_query_param(url, self.offset_query_param, max(self.offset - self.limit, 0))

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for name, text in ((self.limit_query_param, f"Number of results (at most {self.max_page_size}); with offset."),
                           (self.offset_query_param, "Index of the first result; with limit.")):
            parameters.append({"name": name, "required": False, "in": "query", "description": text,
                               "schema": {"type": "integer", "minimum": 0 if name == "offset" else 1}})
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
            if parameter["name"] == self.page_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return parameters
