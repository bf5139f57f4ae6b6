"""REST API of online charging: the credit-control engine for partners that do not speak Diameter.

POST /charging/sessions/ (initial), /charging/sessions/{id}/update/, …/terminate/,
POST /charging/events/; GET /charging/sessions/?subscription=&account= (each with its usage
and cost); /charging/reservations/; /charging/peers/ (Diameter peers); /charging/rating-groups/
(Rating-Group / Service-Identifier → usage type).
Units: `requested`, `used` and `units` are quantities as operators write them ("300s", "90"
(seconds), "10MB", "1"); answers give base units (ns, bytes, items) and the same as text.
"""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.kernel.errors import ValidationFailed
from tarifa.ledger.models import BillingAccount
from tarifa.rating.models import UsageType
from tarifa.rating.selectors import measure_of
from tarifa.rating.units import QuantityError, format_usage, parse_quantity
from tarifa.web.api import RecordViewSet, StrictModelSerializer, StrictSerializer, register_endpoint, router
from tarifa.web.filters import FilterSet, ReferenceFilter
from tarifa.web.idempotency import idempotent

from . import services
from .models import CallMatch, ChargingSession, DiameterPeer, RatingGroup, Reservation

DECIMAL = {"max_digits": 20, "decimal_places": 6, "read_only": True}
KINDS = [("e164", "E.164 number"), ("imsi", "IMSI"), ("login", "login / NAI"), ("any", "any identifier")]


def _units(value, usage_type: str, field: str) -> int:
    if value in (None, ""):
        return 0
    try:
        return parse_quantity(value, measure_of(usage_type))
    except QuantityError as exc:
        raise ValidationFailed(str(exc), code="invalid_units", fields={field: [str(exc)]}) from None


def _answer(answer: services.Answer, usage_type: str) -> dict:
    data = answer.as_dict()
    data["granted_text"] = format_usage(answer.granted, usage_type) if answer.granted else ""
    data["result"] = services.RESULT_TEXT.get(answer.result_code, "")
    return data


class ChargingSessionSerializer(serializers.ModelSerializer):
    subscription_number = serializers.CharField(source="subscription.number", read_only=True)
    account_number = serializers.CharField(source="billing_account.number", read_only=True)
    cost = serializers.DecimalField(source="charged", **DECIMAL)
    usage = serializers.SerializerMethodField()
    reserved = serializers.SerializerMethodField()

    class Meta:
        model = ChargingSession
        fields = ["id", "subscription", "subscription_number", "billing_account", "account_number", "kind",
                  "usage_type", "state", "origin", "external_id", "peer", "subject", "destination", "started_at",
                  "ended_at", "used_units", "rated_units", "free_units", "usage", "cost", "currency", "reserved",
                  "final_unit", "termination_cause", "last_request_number", "matched_usage"]
        read_only_fields = fields

    def get_usage(self, obj) -> str:
        return format_usage(obj.used_units, obj.usage_type)

    def get_reserved(self, obj) -> str:
        open_ = [r for r in obj.reservations.all() if r.state == Reservation.State.OPEN]
        return f"{sum((r.amount for r in open_), 0):f}" if open_ else "0"


class StartSerializer(StrictSerializer):
    subscriber = serializers.CharField(max_length=100, help_text=_("E.164 number, IMSI or login."))
    identifier_kind = serializers.ChoiceField(choices=KINDS, required=False, default="any")
    usage_type = serializers.CharField(max_length=32)
    session_id = serializers.CharField(max_length=200, help_text=_("Your id of the session (unique)."))
    destination = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    requested = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")


class UpdateSerializer(StrictSerializer):
    used = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    requested = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    request_number = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)


class TerminateSerializer(StrictSerializer):
    used = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    request_number = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)


class EventSerializer(StrictSerializer):
    subscriber = serializers.CharField(max_length=100)
    identifier_kind = serializers.ChoiceField(choices=KINDS, required=False, default="any")
    usage_type = serializers.CharField(max_length=32)
    event_id = serializers.CharField(max_length=200)
    destination = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    units = serializers.CharField(max_length=32, required=False, default="1")


class SessionFilter(FilterSet):
    account = ReferenceFilter(field_name="billing_account", related_model=BillingAccount, label=_("Billing account"),
                              help_text=_("Id or number of the billing account."))

    class Meta:
        model = ChargingSession
        fields = ["subscription", "billing_account", "state", "origin", "usage_type", "kind"]


def _known_usage_type(code: str) -> str:
    from tarifa.rating.models import UsageType

    if not UsageType.objects.filter(code=code, archived_at__isnull=True).exists():
        raise ValidationFailed(f"Unknown usage type {code!r}.", code="unknown_usage_type",
                               fields={"usage_type": ["Unknown usage type."]})
    return code


class ChargingSessionViewSet(RecordViewSet):
    """Credit-control sessions: start (initial), update, terminate; history with usage and cost."""

    queryset = (ChargingSession.objects.select_related("subscription", "billing_account")
                .prefetch_related("reservations").order_by("-started_at", "-id"))
    serializer_class = ChargingSessionSerializer
    filterset_class = SessionFilter

    @classmethod
    def unsupported_actions(cls):
        return {"update", "partial_update", "destroy"}

    @extend_schema(request=StartSerializer, responses={201: dict, 200: dict})
    @idempotent(required=False)
    def create(self, request, *args, **kwargs):
        """Initial request: open the session and reserve its first slice (answer: result_code, granted…)."""
        body = StartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        usage_type = _known_usage_type(d["usage_type"])
        answer = services.start(actor=request.user, identifier=d["subscriber"], identifier_kind=d["identifier_kind"],
                                usage_type=usage_type, external_id=d["session_id"], origin="http",
                                destination=d["destination"], requested=_units(d["requested"], usage_type,
                                                                               "requested"))
        return Response(_answer(answer, usage_type), status=status.HTTP_201_CREATED if answer.ok else status.HTTP_200_OK)

    def _session(self, pk):
        return self.get_object()

    @extend_schema(request=UpdateSerializer, responses=dict)
    @action(detail=True, methods=["post"], url_path="update", url_name="charge-update",
            required_permission="charging.add_chargingsession")
    @idempotent(required=False)
    def charge_update(self, request, pk=None):
        """Report what was used and ask for the next slice."""
        session = self.get_object()
        body = UpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        answer = services.update(session, actor=request.user, used=_units(d["used"], session.usage_type, "used"),
                                 requested=_units(d["requested"], session.usage_type, "requested"),
                                 request_number=d.get("request_number"))
        return Response(_answer(answer, session.usage_type))

    @extend_schema(request=TerminateSerializer, responses=dict)
    @action(detail=True, methods=["post"], required_permission="charging.add_chargingsession")
    @idempotent(required=False)
    def terminate(self, request, pk=None):
        """Report the last usage and end the session (the rest of the reservation is released)."""
        session = self.get_object()
        body = TerminateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        answer = services.terminate(session, actor=request.user, used=_units(d["used"], session.usage_type, "used"),
                                    request_number=d.get("request_number"), cause="http terminate")
        return Response(_answer(answer, session.usage_type))


class EventView(APIView):
    """A one-shot charge (an SMS, a VOD purchase): all of it or nothing (4012)."""

    required_permission = "charging.add_chargingsession"

    @extend_schema(request=EventSerializer, responses={201: dict, 200: dict})
    @idempotent(required=False)
    def post(self, request):
        body = EventSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        usage_type = _known_usage_type(d["usage_type"])
        answer = services.event(actor=request.user, identifier=d["subscriber"], identifier_kind=d["identifier_kind"],
                                usage_type=usage_type, external_id=d["event_id"], origin="http",
                                destination=d["destination"], units=_units(d["units"], usage_type, "units") or 1)
        return Response(_answer(answer, usage_type), status=status.HTTP_201_CREATED if answer.ok else status.HTTP_200_OK)


class ReservationSerializer(serializers.ModelSerializer):
    amount = serializers.DecimalField(**DECIMAL)

    class Meta:
        model = Reservation
        fields = ["id", "session", "billing_account", "hold", "units", "free_units", "amount", "currency", "state",
                  "created_at", "expires_at", "resolved_at"]
        read_only_fields = fields


class ReservationViewSet(RecordViewSet):
    queryset = Reservation.objects.order_by("-created_at")
    serializer_class = ReservationSerializer
    filterset_fields = ["state", "billing_account", "session"]


class CallMatchSerializer(serializers.ModelSerializer):
    session_external_id = serializers.CharField(source="session.external_id", read_only=True)
    account_number = serializers.CharField(source="billing_account.number", read_only=True)
    online_cost = serializers.DecimalField(**DECIMAL)
    offline_cost = serializers.DecimalField(**DECIMAL)
    difference = serializers.DecimalField(**DECIMAL)
    correction_amount = serializers.DecimalField(source="correction.amount", allow_null=True, **DECIMAL)

    class Meta:
        model = CallMatch
        fields = ["id", "session", "session_external_id", "usage_record", "batch", "source", "record_id",
                  "billing_account", "account_number", "online_units", "offline_units", "online_cost",
                  "offline_cost", "difference", "currency", "correction", "correction_amount", "session_was_open",
                  "matched_at"]
        read_only_fields = fields


class CallMatchFilter(FilterSet):
    account = ReferenceFilter(field_name="billing_account", related_model=BillingAccount, label=_("Billing account"),
                              help_text=_("Id or number of the billing account."))

    class Meta:
        model = CallMatch
        fields = ["billing_account", "session", "usage_record", "batch"]


class CallMatchViewSet(RecordViewSet):
    """Semi-online billing: CDRs matched to the online sessions of their calls, with the corrections booked."""

    queryset = (CallMatch.objects.select_related("session", "billing_account", "correction")
                .order_by("-matched_at", "-id"))
    serializer_class = CallMatchSerializer
    filterset_class = CallMatchFilter


class DiameterPeerSerializer(StrictModelSerializer):
    class Meta:
        model = DiameterPeer
        fields = ["id", "origin_host", "realm", "ip_address", "note", "state", "state_changed_at", "created_at",
                  "archived_at"]
        read_only_fields = ["id", "state", "state_changed_at", "created_at", "archived_at"]


class DiameterPeerViewSet(RecordViewSet):
    """Network elements allowed to connect over Diameter (others are refused at CER)."""

    queryset = DiameterPeer.objects.order_by("origin_host")
    serializer_class = DiameterPeerSerializer
    filterset_fields = ["realm", "state"]
    search_fields = ["origin_host", "realm"]

    def create_service(*, actor, **data):
        return services.create_peer(actor=actor, **data)

    def update_service(obj, *, actor, **data):
        return services.update_peer(obj, actor=actor, **data)

    def archive_service(obj, *, actor, reason=""):
        return services.archive_peer(obj, actor=actor, reason=reason)


class RatingGroupSerializer(StrictModelSerializer):
    usage_type = serializers.SlugRelatedField(slug_field="code", queryset=UsageType.objects.filter(
        archived_at__isnull=True), help_text="A usage type code (voice, sms, data, vod…).")

    class Meta:
        model = RatingGroup
        fields = ["id", "kind", "number", "usage_type", "note", "created_at", "archived_at"]
        read_only_fields = ["id", "created_at", "archived_at"]


class RatingGroupViewSet(RecordViewSet):
    """Diameter Rating-Groups / Service-Identifiers and the usage type their units are charged as.

    A CCR's Multiple-Services-Credit-Control whose group is not listed is charged by its
    Service-Context-Id, else by the unit it asks for."""

    queryset = RatingGroup.objects.select_related("usage_type").order_by("kind", "number")
    serializer_class = RatingGroupSerializer
    filterset_fields = ["kind", "number"]
    search_fields = ["note"]

    def create_service(*, actor, **data):
        return services.create_rating_group(actor=actor, **data)

    def update_service(obj, *, actor, **data):
        return services.update_rating_group(obj, actor=actor, **data)

    def archive_service(obj, *, actor, reason=""):
        return services.archive_rating_group(obj, actor=actor, reason=reason)


router.register("charging/sessions", ChargingSessionViewSet, basename="chargingsession")
router.register("charging/reservations", ReservationViewSet, basename="reservation")
router.register("charging/peers", DiameterPeerViewSet, basename="diameterpeer")
router.register("charging/rating-groups", RatingGroupViewSet, basename="ratinggroup")
router.register("charging/matches", CallMatchViewSet, basename="callmatch")
register_endpoint("charging/events/", EventView.as_view(), "charging-events", "charging.add_chargingsession")
