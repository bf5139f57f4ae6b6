"""REST API of network access: /api/v1/aaa/nas/ (secret write-only), /api/v1/aaa/profiles/,
/api/v1/aaa/sessions/ (open and finished: ?active=true|false, ?login=), /api/v1/aaa/auth-log/."""

import django_filters
from django.core.exceptions import ValidationError
from rest_framework import serializers

from tarifa.catalog.models import Tariff
from tarifa.kernel.errors import ValidationFailed
from tarifa.web.api import RecordViewSet, StrictModelSerializer, router
from tarifa.web.filters import FilterSet

from . import services
from .models import AuthAttempt, FinishedSession, Nas, Profile, Session

from . import coa_api  # noqa: F401,E402 — disconnect, the CoA/DM log, reconciliation runs
from . import rest_api  # noqa: F401,E402 — FreeRADIUS rlm_rest: authorize, post-auth, accounting


class NasSerializer(StrictModelSerializer):
    secret = serializers.CharField(write_only=True, max_length=128, min_length=6,
                                   help_text="The RADIUS shared secret; write-only, stored encrypted.")

    class Meta:
        model = Nas
        fields = ["id", "name", "ip_address", "secret", "type", "coa_port", "active", "last_seen", "description",
                  "created_at"]
        read_only_fields = ["last_seen", "created_at"]
        validators = []

    def get_fields(self):
        fields = super().get_fields()
        fields["ip_address"].validators = []  # unique: the service answers 409 nas_exists
        if self.instance is not None:
            fields["secret"].required = False
        return fields


class NasViewSet(RecordViewSet):
    """Network access servers allowed to send RADIUS requests (by source address)."""

    queryset = Nas.objects.order_by("name")
    serializer_class = NasSerializer
    filterset_fields = ["type", "active", "ip_address"]
    search_fields = ["name", "ip_address"]

    def create_service(*, actor, **data):
        return services.create_nas(actor=actor, **data)

    def update_service(nas, *, actor, **data):
        return services.update_nas(nas, actor=actor, **data)


class ProfileSerializer(StrictModelSerializer):
    tariff = serializers.SlugRelatedField(slug_field="code", queryset=Tariff.objects.all(), required=False,
                                          allow_null=True)

    class Meta:
        model = Profile
        fields = ["id", "name", "tariff", "rate_down_kbps", "rate_up_kbps", "ip_pool", "simultaneous_use",
                  "session_timeout", "idle_timeout", "interim_interval", "attributes", "when_suspended",
                  "pay_first_pool", "pay_first_rate_down_kbps", "pay_first_rate_up_kbps", "monthly_cap_mb",
                  "when_capped", "capped_rate_down_kbps", "capped_rate_up_kbps", "created_at"]
        read_only_fields = ["created_at"]
        validators = []

    def get_fields(self):
        fields = super().get_fields()
        fields["tariff"].validators = []
        return fields


class ProfileViewSet(RecordViewSet):
    """Access profiles: the Access-Accept's attributes per tariff (rate limit per NAS type, pool,
    timeouts) and what happens to suspended subscribers."""

    queryset = Profile.objects.select_related("tariff").order_by("name")
    serializer_class = ProfileSerializer
    filterset_fields = ["tariff__code", "when_suspended"]

    def create_service(*, actor, **data):
        return services.create_profile(actor=actor, **data)

    def update_service(profile, *, actor, **data):
        return services.update_profile(profile, actor=actor, **data)


SESSION_FIELDS = ["id", "nas", "nas_name", "acct_session_id", "subscription", "login", "framed_ip",
                  "calling_station_id", "nas_port_id", "started_at", "updated_at", "interim_interval", "session_time",
                  "bytes_in", "bytes_out", "packets_in", "packets_out", "active", "stopped_at", "terminate_cause",
                  "stop_reason"]


class SessionSerializer(serializers.Serializer):
    """A session, open or finished; bytes as integers (64-bit: Octets + 2^32 × Gigawords)."""

    id = serializers.UUIDField()
    nas = serializers.UUIDField(source="nas_id")
    nas_name = serializers.CharField(source="nas.name")
    acct_session_id = serializers.CharField()
    subscription = serializers.UUIDField(source="subscription_id", allow_null=True)
    login = serializers.CharField()
    framed_ip = serializers.IPAddressField(allow_null=True)
    calling_station_id = serializers.CharField()
    nas_port_id = serializers.CharField()
    started_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    interim_interval = serializers.IntegerField()
    session_time = serializers.IntegerField()
    bytes_in = serializers.IntegerField(help_text="Acct-Input-Octets with its Gigawords: sent by the subscriber.")
    bytes_out = serializers.IntegerField(help_text="Acct-Output-Octets with its Gigawords: received by the "
                                                   "subscriber.")
    packets_in = serializers.IntegerField()
    packets_out = serializers.IntegerField()
    active = serializers.SerializerMethodField()
    stopped_at = serializers.DateTimeField(allow_null=True, default=None)
    terminate_cause = serializers.CharField(default="")
    stop_reason = serializers.CharField(default="")

    def get_active(self, obj) -> bool:
        return isinstance(obj, Session)


class SessionFilter(FilterSet):
    active = django_filters.BooleanFilter(method="filter_active", help_text="true: online now; false: finished.")

    class Meta:
        model = Session
        fields = ["login", "nas", "subscription", "acct_session_id"]

    def filter_active(self, queryset, name, value):
        return queryset  # chosen by the viewset: open and finished sessions are two tables


class FinishedSessionFilter(SessionFilter):
    class Meta(SessionFilter.Meta):
        model = FinishedSession


class SessionViewSet(RecordViewSet):
    """Sessions: `?active=true` the open ones (default), `?active=false` the finished ones (newest
    first); filter by `login`, `nas`, `subscription`, `acct_session_id`."""

    queryset = Session.objects.select_related("nas").order_by("-started_at")
    serializer_class = SessionSerializer
    required_permission = "aaa.view_session"  # open and finished sessions alike

    def _finished(self):
        value = str(self.request.query_params.get("active", "")).lower()
        if value in ("", "true", "1", "yes"):
            return False
        if value in ("false", "0", "no"):
            return True
        raise ValidationFailed("active: give true or false.", fields={"active": ["Give true or false."]})

    @property
    def filterset_class(self):
        return FinishedSessionFilter if getattr(self, "_model", Session) is FinishedSession else SessionFilter

    def get_queryset(self):
        self._model = Session
        if getattr(self, "swagger_fake_view", False):
            return Session.objects.none()
        if self.action == "retrieve":
            try:
                open_now = Session.objects.filter(pk=self.kwargs.get("pk")).exists()
            except (ValueError, ValidationError):
                open_now = True  # not an id: the usual 404
            if not open_now:
                self._model = FinishedSession
        elif self._finished():
            self._model = FinishedSession
        if self._model is FinishedSession:
            return FinishedSession.objects.select_related("nas").order_by("-stopped_at")
        return Session.objects.select_related("nas").order_by("-started_at")


class AuthAttemptSerializer(serializers.ModelSerializer):
    nas_name = serializers.CharField(source="nas.name", default="", read_only=True)

    class Meta:
        model = AuthAttempt
        fields = ["id", "at", "outcome", "reason", "login", "nas", "nas_name", "nas_ip", "subscription",
                  "calling_station_id", "method"]


class AuthAttemptViewSet(RecordViewSet):
    """The authentication log: every Access-Request's outcome and the reason of a reject."""

    queryset = AuthAttempt.objects.select_related("nas").order_by("-at")
    serializer_class = AuthAttemptSerializer
    filterset_fields = ["login", "outcome", "nas", "subscription"]


router.register("aaa/nas", NasViewSet, basename="aaa-nas")
router.register("aaa/profiles", ProfileViewSet, basename="aaa-profile")
router.register("aaa/sessions", SessionViewSet, basename="aaa-session")
router.register("aaa/auth-log", AuthAttemptViewSet, basename="aaa-authattempt")
