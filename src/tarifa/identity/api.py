from django.db import transaction
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.kernel.errors import ValidationFailed
from tarifa.web.api import (
    RecordViewSet,
    StrictModelSerializer,
    StrictSerializer,
    register_endpoint,
    router,
)
from tarifa.web.middleware import client_ip

from . import services
from .models import ApiToken, Role, User


class PermissionNamesField(serializers.ListField):
    child = serializers.CharField()

    def to_representation(self, value):
        return sorted(services.permission_name(p) for p in value.select_related("content_type"))


class RoleSerializer(StrictModelSerializer):
    permissions = PermissionNamesField(required=False)

    class Meta:
        model = Role
        fields = ["id", "name", "description", "permissions"]

    def validate_permissions(self, value):
        return services.permissions_by_name(value)


class UserSerializer(StrictModelSerializer):
    roles = serializers.SlugRelatedField(slug_field="name", queryset=Role.objects.all(), many=True, required=False)
    password = serializers.CharField(write_only=True, required=False, style={"input_type": "password"})

    class Meta:
        model = User
        fields = ["id", "username", "first_name", "last_name", "email", "is_active", "roles", "password",
                  "last_login", "date_joined", "branch"]
        read_only_fields = ["is_active", "last_login", "date_joined", "branch"]
        extra_kwargs = {"username": {"validators": []}}


class UserViewSet(RecordViewSet):
    queryset = User.objects.prefetch_related("roles").order_by("username")
    serializer_class = UserSerializer
    filterset_fields = ["is_active", "username"]
    search_fields = ["username", "first_name", "last_name", "email"]

    def create_service(*, actor, roles=(), **data):
        return services.create_user(actor=actor, roles=list(roles), **data)

    def update_service(user, *, actor, roles=None, password=None, **data):
        if data.pop("username", user.username) != user.username:
            # Refused rather than silently ignored: the caller would believe it renamed the user.
            raise ValidationFailed("The username cannot be changed.", code="username_immutable",
                                   fields={"username": ["The username cannot be changed."]})
        with transaction.atomic():  # a refused password leaves the other changes unwritten too
            user = services.update_user(user, actor=actor, roles=list(roles) if roles is not None else None, **data)
            if password:
                services.set_password(user, actor=actor, password=password)
        return user

    def archive_service(user, *, actor, reason=""):
        return services.deactivate_user(user, actor=actor, reason=reason)


class RoleViewSet(RecordViewSet):
    queryset = Role.objects.prefetch_related("permissions__content_type").order_by("name")
    serializer_class = RoleSerializer
    search_fields = ["name"]

    def create_service(*, actor, **data):
        return services.create_role(actor=actor, **data)

    def update_service(role, *, actor, **data):
        return services.update_role(role, actor=actor, **data)


class TokenSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "username", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]


class ApiTokenViewSet(RecordViewSet):
    """All users' tokens, for administrators (identity.view_apitoken / identity.revoke)."""

    queryset = ApiToken.objects.select_related("user").order_by("-created_at")
    serializer_class = TokenSerializer
    filterset_fields = ["user__username"]

    @extend_schema(request=None, responses=TokenSerializer)
    @action(detail=True, methods=["post"], required_permission="identity.revoke")
    def revoke(self, request, pk=None):
        token = services.revoke_token(self.get_object(), actor=request.user)
        return Response(TokenSerializer(token).data)


class TokenRequestSerializer(StrictSerializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})
    name = serializers.CharField(required=False, allow_blank=True, max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class TokenIssuedSerializer(TokenSerializer):
    token = serializers.CharField()

    class Meta(TokenSerializer.Meta):
        fields = TokenSerializer.Meta.fields + ["token"]


class ObtainTokenView(APIView):
    """Exchange username and password for a bearer token (shown once; stored hashed)."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(request=TokenRequestSerializer, responses={201: TokenIssuedSerializer})
    def post(self, request):
        body = TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        user = services.authenticate(username=data["username"], password=data["password"],
                                     ip=client_ip(request._request) or None)
        token, secret = services.issue_token(actor=user, user=user, name=data.get("name", ""),
                                             expires_at=data.get("expires_at"))
        return Response({**TokenSerializer(token).data, "token": secret}, status=status.HTTP_201_CREATED)


class OwnTokensView(APIView):
    """The caller's own tokens."""

    required_permission = None

    @extend_schema(responses=TokenSerializer(many=True))
    def get(self, request):
        return Response(TokenSerializer(request.user.api_tokens.order_by("-created_at"), many=True).data)


class RevokeOwnTokenView(APIView):
    required_permission = None

    @extend_schema(request=None, responses=TokenSerializer)
    def post(self, request, pk):
        token = request.user.api_tokens.filter(pk=pk).first()
        if token is None:
            from rest_framework.exceptions import NotFound

            raise NotFound(_("No such token of yours."))
        return Response(TokenSerializer(services.revoke_token(token, actor=request.user)).data)


class PermissionListView(APIView):
    """Every permission that roles can hold, as `app_label.codename`."""

    required_permission = "identity.view_role"

    @extend_schema(responses={200: {"type": "array", "items": {"type": "object"}}})
    def get(self, request):
        from .forms import tarifa_permissions

        return Response([{"name": services.permission_name(p), "description": p.name} for p in tarifa_permissions()])


router.register("users", UserViewSet, basename="user")
router.register("roles", RoleViewSet, basename="role")
router.register("api-tokens", ApiTokenViewSet, basename="apitoken")
register_endpoint("auth/token/", ObtainTokenView.as_view(), "auth-token", None)
register_endpoint("auth/tokens/", OwnTokensView.as_view(), "auth-tokens", None)
register_endpoint("auth/tokens/<uuid:pk>/revoke/", RevokeOwnTokenView.as_view(), "auth-token-revoke", None)
register_endpoint("permissions/", PermissionListView.as_view(), "permissions", "identity.view_role")
