"""REST API of rating: tariff plans, the cost calculator, usage in, rated/rejected usage out.

Plan rows name each other by code within their tenant (as in CGRateS's files); amounts
are decimal strings; durations are base units (ns for time) or CGRateS durations
("60s"). Usage enters by `POST /api/v1/usage/` (a batch of records, idempotent per
record by (source, record_id) and per request by the optional Idempotency-Key).
"""

import tempfile
from pathlib import Path

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.catalog.models import Tariff
from tarifa.kernel.errors import ValidationFailed
from tarifa.web.api import AmountField, RecordViewSet, StrictModelSerializer, StrictSerializer, register_endpoint, router
from tarifa.web.idempotency import idempotent

from . import engine, services, usage
from .cgrates_io import export_rows, import_directory
from .models import (ANY, Bundle, BundleCounter, Destination, DestinationPrefix, DestinationRate, Rate, RateSlot,
                     RatedUsage, RatingPlan, RatingPlanBinding, RatingProfile, RatingTenant, RejectedUsage,
                     RerateLine, RerateRun, TariffRating, Timing, UsageBatch, UsageFormat, UsageType)
from .units import format_usage

MAX_BATCH = 10_000


class DecimalText(AmountField):
    """A decimal given and shown as a string (never a float), by the one parser; 12 places."""

    def __init__(self, places=12, **kwargs):
        super().__init__(places=places, **kwargs)

    def to_representation(self, value):
        return None if value is None else format(value.normalize(), "f")


@extend_schema_field(OpenApiTypes.STR)
class DurationField(serializers.Field):
    """Base units (an integer) or a CGRateS duration string such as "60s"; answered as base units."""

    openapi_schema = {  # read by tarifa.web.schema.AutoSchema
        "request": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "example": "60s"}],
                    "description": "Base units (nanoseconds of time, bytes, units) or a duration such as 60s."},
        "response": {"type": "integer", "minimum": 0, "description": "Base units (nanoseconds of time, bytes, units)."},
    }

    def to_internal_value(self, data):
        if isinstance(data, bool) or isinstance(data, float):
            raise serializers.ValidationError("An integer or a duration such as 60s.")
        if isinstance(data, int):
            value = data
        else:
            try:
                value = engine.parse_duration(str(data))
            except ValueError:
                raise serializers.ValidationError("An integer or a duration such as 60s.") from None
        if value < 0:
            raise serializers.ValidationError("Must not be negative.")
        return value

    def to_representation(self, value):
        return value


class Code(serializers.SlugRelatedField):
    def __init__(self, model, **kwargs):
        super().__init__(slug_field="code", queryset=model.objects.filter(archived_at__isnull=True)
                         if hasattr(model, "archived_at") else model.objects.all(), **kwargs)


def _in_tenant(model, tenant, code, field):
    if code in (None, "", ANY) and model is Destination:
        return None
    found = model.objects.filter(tenant=tenant, code=code, archived_at__isnull=True).first()
    if found is None:
        raise serializers.ValidationError({field: [f"No {model._meta.verbose_name} {code!r} in {tenant.code}."]})
    return found


class TenantSerializer(StrictModelSerializer):
    class Meta:
        model = RatingTenant
        fields = ["id", "code", "name", "description", "plan_version", "archived_at"]
        read_only_fields = ["plan_version", "archived_at"]
        extra_kwargs = {"code": {"validators": []}}


class DestinationSerializer(StrictModelSerializer):
    tenant = Code(RatingTenant)
    prefixes = serializers.ListField(child=serializers.CharField(max_length=32), required=False, write_only=True)

    class Meta:
        model = Destination
        fields = ["id", "tenant", "code", "name", "prefixes", "archived_at"]
        read_only_fields = ["archived_at"]
        validators = []

    def to_representation(self, obj):
        data = super().to_representation(obj)
        data["prefixes"] = list(obj.prefixes.order_by("id").values_list("prefix", flat=True))
        return data


class PrefixSerializer(StrictModelSerializer):
    class Meta:
        model = DestinationPrefix
        fields = ["id", "destination", "prefix"]
        validators = []


class TimingSerializer(StrictModelSerializer):
    tenant = Code(RatingTenant)

    class Meta:
        model = Timing
        fields = ["id", "tenant", "code", "name", "years", "months", "month_days", "week_days", "start_time",
                  "end_time", "archived_at"]
        read_only_fields = ["archived_at"]
        validators = []


class SlotSerializer(StrictSerializer):
    connect_fee = DecimalText(required=False, default="0")
    price = DecimalText()
    rate_unit = DurationField()
    rate_increment = DurationField()
    group_interval_start = DurationField(required=False, default=0)


class RateSerializer(StrictModelSerializer):
    tenant = Code(RatingTenant)
    slots = SlotSerializer(many=True, required=False, write_only=True)

    class Meta:
        model = Rate
        fields = ["id", "tenant", "code", "name", "slots", "archived_at"]
        read_only_fields = ["archived_at"]
        validators = []

    def to_representation(self, obj):
        data = super().to_representation(obj)
        data["slots"] = [{"connect_fee": format(s.connect_fee.normalize(), "f"),
                          "price": format(s.price.normalize(), "f"), "rate_unit": s.rate_unit,
                          "rate_increment": s.rate_increment, "group_interval_start": s.group_interval_start}
                         for s in obj.slots.order_by("id")]
        return data


class RateSlotSerializer(StrictModelSerializer):
    connect_fee = DecimalText(required=False)
    price = DecimalText()
    rate_unit = DurationField()
    rate_increment = DurationField()
    group_interval_start = DurationField(required=False)

    class Meta:
        model = RateSlot
        fields = ["id", "rate", "connect_fee", "price", "rate_unit", "rate_increment", "group_interval_start"]


class DestinationRateSerializer(StrictModelSerializer):
    tenant = Code(RatingTenant)
    destination = serializers.CharField(required=False, allow_blank=True, help_text="A destination code; empty or "
                                                                                    "*any for any destination.")
    rate = serializers.CharField()
    max_cost = DecimalText(required=False)

    class Meta:
        model = DestinationRate
        fields = ["id", "tenant", "code", "destination", "rate", "rounding_method", "rounding_decimals", "max_cost",
                  "max_cost_strategy", "archived_at"]
        read_only_fields = ["archived_at"]
        validators = []

    def validate(self, attrs):
        tenant = attrs.get("tenant") or getattr(self.instance, "tenant", None)
        if "destination" in attrs:
            attrs["destination"] = _in_tenant(Destination, tenant, attrs["destination"], "destination")
        if "rate" in attrs:
            attrs["rate"] = _in_tenant(Rate, tenant, attrs["rate"], "rate")
        return attrs

    def to_representation(self, obj):
        data = super().to_representation(obj)
        data["destination"] = obj.destination.code if obj.destination_id else ANY
        data["rate"] = obj.rate.code
        return data


class BindingSerializer(StrictSerializer):
    destination_rate = serializers.CharField(max_length=64)
    timing = serializers.CharField(required=False, allow_blank=True, default=ANY)
    weight = DecimalText(places=6, required=False, default="10")


class RatingPlanSerializer(StrictModelSerializer):
    tenant = Code(RatingTenant)
    bindings = BindingSerializer(many=True, required=False, write_only=True)

    class Meta:
        model = RatingPlan
        fields = ["id", "tenant", "code", "name", "bindings", "archived_at"]
        read_only_fields = ["archived_at"]
        validators = []

    def validate(self, attrs):
        if "bindings" in attrs:
            attrs["bindings"] = [{"destination_rate_code": b["destination_rate"], "timing": b["timing"],
                                  "weight": b["weight"]} for b in attrs["bindings"]]
        return attrs

    def to_representation(self, obj):
        data = super().to_representation(obj)
        data["bindings"] = [{"destination_rate": b.destination_rate_code,
                             "timing": b.timing.code if b.timing_id else ANY,
                             "weight": format(b.weight.normalize(), "f")}
                            for b in obj.bindings.select_related("timing").order_by("id")]
        return data


class RatingProfileSerializer(StrictModelSerializer):
    tenant = Code(RatingTenant)
    rating_plan = serializers.CharField()

    class Meta:
        model = RatingProfile
        fields = ["id", "tenant", "category", "subject", "activation_time", "rating_plan", "fallback_subjects",
                  "archived_at"]
        read_only_fields = ["archived_at"]

    def validate(self, attrs):
        tenant = attrs.get("tenant") or getattr(self.instance, "tenant", None)
        if "rating_plan" in attrs:
            attrs["rating_plan"] = _in_tenant(RatingPlan, tenant, attrs["rating_plan"], "rating_plan")
        return attrs

    def to_representation(self, obj):
        data = super().to_representation(obj)
        data["rating_plan"] = obj.rating_plan.code
        return data


class TariffRatingSerializer(StrictModelSerializer):
    tariff = Code(Tariff)
    tenant = Code(RatingTenant)
    rating_plan = serializers.CharField(required=False, allow_blank=True, allow_null=True)

    class Meta:
        model = TariffRating
        fields = ["id", "tariff", "tenant", "categories", "subject", "rating_plan", "rounding_decimals", "archived_at"]
        read_only_fields = ["archived_at"]
        validators = []

    def validate(self, attrs):
        tenant = attrs.get("tenant") or getattr(self.instance, "tenant", None)
        if "rating_plan" in attrs:
            code = attrs["rating_plan"]
            attrs["rating_plan"] = _in_tenant(RatingPlan, tenant, code, "rating_plan") if code else None
        return attrs

    def to_representation(self, obj):
        data = super().to_representation(obj)
        data["rating_plan"] = obj.rating_plan.code if obj.rating_plan_id else None
        return data


class BundleSerializer(StrictModelSerializer):
    tariff = Code(Tariff)
    allowance = serializers.CharField(help_text="As the operator writes it: 300m, 10GB, 100.")
    allowance_text = serializers.SerializerMethodField()

    class Meta:
        model = Bundle
        fields = ["id", "tariff", "code", "name", "usage_type", "allowance", "allowance_text", "period",
                  "destinations", "archived_at"]
        read_only_fields = ["archived_at"]
        validators = []

    @extend_schema_field(OpenApiTypes.STR)
    def get_allowance_text(self, obj):
        return format_usage(obj.allowance, obj.usage_type)

    def to_representation(self, obj):
        data = super().to_representation(obj)
        data["allowance"] = str(obj.allowance)
        return data


class BundleCounterSerializer(serializers.ModelSerializer):
    class Meta:
        model = BundleCounter
        fields = ["id", "subscription", "bundle", "period_start", "used", "updated_at"]


class UsageTypeSerializer(StrictModelSerializer):
    class Meta:
        model = UsageType
        fields = ["id", "code", "name", "measure", "split_by_time", "archived_at"]
        read_only_fields = ["archived_at"]
        extra_kwargs = {"code": {"validators": []}}


class UsageFormatSerializer(StrictModelSerializer):
    class Meta:
        model = UsageFormat
        fields = ["id", "code", "name", "spec", "description", "archived_at"]
        read_only_fields = ["archived_at"]
        extra_kwargs = {"code": {"validators": []}}


class BatchSerializer(StrictModelSerializer):
    class Meta:
        model = UsageBatch
        fields = ["id", "kind", "format_code", "file_name", "file_size", "status", "read", "rated", "rejected",
                  "duplicates", "reprocessed", "charged", "transfers", "charged_online", "reasons", "started_at",
                  "finished_at", "actor", "error",
                  "timings"]


RECORD_FIELDS = ["id", "batch", "line_no", "status", "source", "record_id", "subject", "destination", "usage_type",
                 "start_time", "usage", "subscription", "billing_account", "tariff", "rating_plan",
                 "matched_destination", "free_units", "bundle", "cost", "currency", "payment_mode", "transfer",
                 "rated_at", "reason", "message", "raw", "attempts"]


class RatedUsageSerializer(serializers.ModelSerializer):
    cost = DecimalText(read_only=True)

    class Meta:
        model = RatedUsage
        fields = [*RECORD_FIELDS, "online_session"]


class RejectedUsageSerializer(StrictModelSerializer):
    class Meta:
        model = RejectedUsage
        fields = RECORD_FIELDS


class CorrectionSerializer(StrictSerializer):
    subject = serializers.CharField(required=False, max_length=100)
    destination = serializers.CharField(required=False, allow_blank=True, max_length=64)
    usage_type = serializers.CharField(required=False, max_length=32)
    start_time = serializers.DateTimeField(required=False)
    usage = serializers.CharField(required=False, help_text="45s, 1m20s, 90 (seconds), 10MB, 3")


class RerateLineSerializer(StrictModelSerializer):
    class Meta:
        model = RerateLine
        fields = ["record", "old_cost", "new_cost", "old_free_units", "new_free_units", "old_rating_plan",
                  "new_rating_plan", "transfer"]


class RerateRunSerializer(StrictModelSerializer):
    lines = serializers.SerializerMethodField()

    class Meta:
        model = RerateRun
        nested_parts = ["lines"]  # the run's own result lines (tarifa.web.api_nesting)
        fields = ["id", "date_from", "date_to", "billing_account", "records", "changed", "unratable", "old_total",
                  "new_total", "difference", "transfers", "started_at", "finished_at", "actor", "lines"]

    @extend_schema_field(RerateLineSerializer(many=True))
    def get_lines(self, obj):
        return RerateLineSerializer(obj.lines.order_by("id")[:1000], many=True).data


# --- viewsets ------------------------------------------------------------------------------------------

def _svc(func):
    return staticmethod(func)


class TenantViewSet(RecordViewSet):
    """Rating tenants; `GET …/{id}/export-cgrates/` gives the plan as CGRateS CSV texts."""

    queryset = RatingTenant.objects.order_by("code")
    serializer_class = TenantSerializer
    filterset_fields = ["code"]
    create_service = services.create_tenant
    update_service = services.update_tenant
    archive_service = services.archive_tenant

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"], url_path="export-cgrates", required_permission="rating.export_plan")
    def export_cgrates(self, request, pk=None):
        rows = export_rows(self.get_object())
        return Response({"files": {name: "\n".join(",".join(r) for r in content) + "\n"
                                   for name, content in rows.items()}})


class DestinationViewSet(RecordViewSet):
    queryset = Destination.objects.select_related("tenant").order_by("tenant__code", "code")
    serializer_class = DestinationSerializer
    filterset_fields = ["tenant__code", "code"]
    create_service = services.create_destination
    update_service = services.update_destination
    archive_service = services.archive


class PrefixViewSet(RecordViewSet):
    queryset = DestinationPrefix.objects.select_related("destination").order_by("destination__code", "prefix")
    serializer_class = PrefixSerializer
    filterset_fields = ["destination", "prefix", "destination__tenant__code"]
    create_service = services.create_prefix
    archive_service = services.delete_part
    archive_deletes = True


class TimingViewSet(RecordViewSet):
    queryset = Timing.objects.select_related("tenant").order_by("tenant__code", "code")
    serializer_class = TimingSerializer
    filterset_fields = ["tenant__code", "code"]
    create_service = services.create_timing
    update_service = services.update_timing
    archive_service = services.archive


class RateViewSet(RecordViewSet):
    queryset = Rate.objects.select_related("tenant").order_by("tenant__code", "code")
    serializer_class = RateSerializer
    filterset_fields = ["tenant__code", "code"]
    create_service = services.create_rate
    update_service = services.update_rate
    archive_service = services.archive


class RateSlotViewSet(RecordViewSet):
    queryset = RateSlot.objects.select_related("rate").order_by("rate__code", "id")
    serializer_class = RateSlotSerializer
    filterset_fields = ["rate"]
    create_service = services.create_rate_slot
    update_service = services.update_rate_slot
    archive_service = services.delete_part
    archive_deletes = True


class DestinationRateViewSet(RecordViewSet):
    queryset = DestinationRate.objects.select_related("tenant", "destination", "rate").order_by("tenant__code", "code")
    serializer_class = DestinationRateSerializer
    filterset_fields = ["tenant__code", "code"]
    create_service = services.create_destination_rate
    update_service = services.update_destination_rate
    archive_service = services.archive


class RatingPlanViewSet(RecordViewSet):
    queryset = RatingPlan.objects.select_related("tenant").order_by("tenant__code", "code")
    serializer_class = RatingPlanSerializer
    filterset_fields = ["tenant__code", "code"]
    create_service = services.create_rating_plan
    update_service = services.update_rating_plan
    archive_service = services.archive


class BindingViewSet(RecordViewSet):
    queryset = RatingPlanBinding.objects.select_related("rating_plan", "timing").order_by("rating_plan__code", "id")
    serializer_class = type("RatingPlanBindingSerializer", (StrictModelSerializer,), {
        "Meta": type("Meta", (), {"model": RatingPlanBinding,
                                  "fields": ["id", "rating_plan", "destination_rate_code", "timing", "weight"]})})
    filterset_fields = ["rating_plan"]
    create_service = services.create_binding
    update_service = services.update_binding
    archive_service = services.delete_part
    archive_deletes = True


class RatingProfileViewSet(RecordViewSet):
    queryset = RatingProfile.objects.select_related("tenant", "rating_plan").order_by("tenant__code", "category",
                                                                                     "subject", "activation_time")
    serializer_class = RatingProfileSerializer
    filterset_fields = ["tenant__code", "category", "subject"]
    create_service = services.create_rating_profile
    update_service = services.update_rating_profile
    archive_service = services.archive


class TariffRatingViewSet(RecordViewSet):
    queryset = TariffRating.objects.select_related("tariff", "tenant", "rating_plan").order_by("tariff__code")
    serializer_class = TariffRatingSerializer
    filterset_fields = ["tariff__code", "tenant__code"]
    create_service = services.create_tariff_rating
    update_service = services.update_tariff_rating
    archive_service = services.archive_record


class BundleViewSet(RecordViewSet):
    queryset = Bundle.objects.select_related("tariff").order_by("tariff__code", "code")
    serializer_class = BundleSerializer
    filterset_fields = ["tariff__code", "usage_type"]
    create_service = services.create_bundle
    update_service = services.update_bundle
    archive_service = services.archive_record


class BundleCounterViewSet(RecordViewSet):
    queryset = BundleCounter.objects.order_by("-period_start", "subscription")
    serializer_class = BundleCounterSerializer
    filterset_fields = ["subscription", "bundle", "period_start"]


class UsageTypeViewSet(RecordViewSet):
    queryset = UsageType.objects.order_by("code")
    serializer_class = UsageTypeSerializer
    filterset_fields = ["code", "measure"]
    create_service = services.create_usage_type
    update_service = services.update_usage_type
    archive_service = services.archive_record


class UsageFormatViewSet(RecordViewSet):
    queryset = UsageFormat.objects.order_by("code")
    serializer_class = UsageFormatSerializer
    filterset_fields = ["code"]
    create_service = services.create_usage_format
    update_service = services.update_usage_format
    archive_service = services.archive_record


class BatchViewSet(RecordViewSet):
    queryset = UsageBatch.objects.order_by("-started_at")
    serializer_class = BatchSerializer
    filterset_fields = ["kind", "status", "format_code"]


class RatedUsageViewSet(RecordViewSet):
    """Rated usage, newest imported first; filter by billing_account, subscription, batch, usage_type,
    start_time range; `?ordering=-start_time` sorts by time (best with a billing_account filter)."""

    # The primary key is time-ordered by import: the first page of millions of rows reads 50
    # of them (ordering by start time sorted the whole table: 1.2 s at 1.6 M records).
    queryset = RatedUsage.objects.order_by("-id")
    serializer_class = RatedUsageSerializer
    filterset_fields = {"billing_account": ["exact"], "subscription": ["exact"], "batch": ["exact"],
                        "usage_type": ["exact"], "payment_mode": ["exact"], "start_time": ["gte", "lt"]}


class RejectedUsageViewSet(RecordViewSet):
    """The rejected queue: correct a record (`…/{id}/correct/`) or run it again (`…/{id}/reprocess/`)."""

    queryset = RejectedUsage.objects.order_by("-start_time", "id")
    serializer_class = RejectedUsageSerializer
    filterset_fields = ["reason", "batch", "source", "subject"]

    @extend_schema(request=CorrectionSerializer, responses={200: RejectedUsageSerializer})
    @action(detail=True, methods=["post"], required_permission="rating.reprocess_usage")
    def correct(self, request, pk=None):
        body = CorrectionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        record = usage.correct(self.get_object(), actor=request.user, **body.validated_data)
        return Response(RatedUsageSerializer(record).data)

    @extend_schema(request=None, responses={200: BatchSerializer})
    @action(detail=True, methods=["post"], required_permission="rating.reprocess_usage")
    def reprocess(self, request, pk=None):
        batch = usage.reprocess(actor=request.user, ids=[self.get_object().pk], include_filtered=True)
        return Response(BatchSerializer(batch).data)


class RerateRunViewSet(RecordViewSet):
    queryset = RerateRun.objects.order_by("-started_at")
    serializer_class = RerateRunSerializer
    filterset_fields = ["billing_account"]


# --- endpoints -----------------------------------------------------------------------------------------

class CostRequest(StrictSerializer):
    tenant = serializers.CharField()
    category = serializers.CharField()
    subject = serializers.CharField()
    destination = serializers.CharField(required=False, allow_blank=True, default="")
    answer_time = serializers.DateTimeField()
    usage = serializers.CharField(help_text="45s, 1m20s or 90 (seconds) for time; a count for data and SMS.")
    type = serializers.CharField(required=False, default="voice")
    plan = serializers.CharField(required=False, allow_blank=True, default="")
    rounding_decimals = serializers.IntegerField(required=False, default=5, min_value=0, max_value=18)


def calculate(data: dict) -> dict:
    """The calculator's answer (shared by the API and the screen); RatingError propagates."""
    from .selectors import measure_of
    from .units import QuantityError, parse_quantity

    kind = data.get("type") or "voice"
    measure = {"voice": "time", "data": "bytes", "sms": "count"}.get(kind) or measure_of(kind)
    try:
        units = parse_quantity(data["usage"], measure)
    except QuantityError as exc:
        raise ValidationFailed(str(exc), code="invalid_usage", fields={"usage": [str(exc)]}) from None
    cost = services.calculate_cost(tenant=data["tenant"], category=data["category"], subject=data["subject"],
                                   destination=data.get("destination") or "", answer_time=data["answer_time"],
                                   usage=units, usage_type=kind, rating_plan=data.get("plan") or None,
                                   rounding_decimals=data.get("rounding_decimals", 5))
    return services.cost_to_dict(cost)


class CostView(APIView):
    """Price one call with a tenant's current plan: the cost and how each span was priced.
    An unratable call answers 422 with `UNAUTHORIZED_DESTINATION` or `RATING_PLAN_NOT_FOUND`."""

    required_permission = "rating.calculate"

    @extend_schema(request=CostRequest, responses={200: OpenApiTypes.OBJECT})
    def post(self, request):
        body = CostRequest(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            return Response(calculate(body.validated_data))
        except engine.RatingError as exc:
            return Response({"error": {"code": exc.code, "message": exc.message, "fields": {}}},
                            status=status.HTTP_422_UNPROCESSABLE_ENTITY)


class UsageRecordIn(StrictSerializer):
    record_id = serializers.CharField(max_length=128)
    source = serializers.CharField(max_length=64, required=False)
    subject = serializers.CharField(max_length=100)
    destination = serializers.CharField(max_length=64, required=False, allow_blank=True)
    type = serializers.CharField(max_length=32, required=False)
    start_time = serializers.CharField()
    usage = serializers.CharField()


class UsageBatchIn(StrictSerializer):
    source = serializers.CharField(max_length=64, required=False, default="api")
    records = serializers.ListField(child=serializers.DictField(), max_length=MAX_BATCH,
                                    help_text="Records: record_id, subject, start_time, usage, optional source, "
                                              "destination, type. A record that cannot be read is rejected with "
                                              "its reason, not refused.")


class UsageInView(APIView):
    """Submit a batch of usage records (partners, adapters). Every record ends rated, rejected
    (with a reason, kept) or duplicate (same source and record id as one already taken); the
    answer's counts add up. Idempotent: a retry with the same Idempotency-Key replays the first
    answer; without it, a resent record is answered as a duplicate."""

    required_permission = "rating.add_usagebatch"

    @extend_schema(request=UsageBatchIn, responses={201: BatchSerializer})
    @idempotent(required=False)
    def post(self, request):
        body = UsageBatchIn(data=request.data)
        body.is_valid(raise_exception=True)
        batch = usage.import_records(body.validated_data["records"], actor=request.user,
                                     source=body.validated_data["source"])
        return Response(BatchSerializer(batch).data, status=status.HTTP_201_CREATED)


class RerateIn(StrictSerializer):
    date_from = serializers.DateTimeField()
    date_to = serializers.DateTimeField()
    billing_account = serializers.UUIDField(required=False, allow_null=True)


class RerateView(APIView):
    """Price a period again after a tariff correction; only differences are booked."""

    required_permission = "rating.rerate_usage"

    @extend_schema(request=RerateIn, responses={201: RerateRunSerializer})
    @idempotent(required=False)
    def post(self, request):
        from tarifa.ledger.models import BillingAccount

        body = RerateIn(data=request.data)
        body.is_valid(raise_exception=True)
        account = None
        if body.validated_data.get("billing_account"):
            account = BillingAccount.objects.filter(pk=body.validated_data["billing_account"]).first()
            if account is None:
                raise ValidationFailed("No such billing account.", code="not_found",
                                       fields={"billing_account": ["Unknown."]})
        run = usage.rerate(actor=request.user, date_from=body.validated_data["date_from"],
                           date_to=body.validated_data["date_to"], billing_account=account)
        return Response(RerateRunSerializer(run).data, status=status.HTTP_201_CREATED)


class ReprocessIn(StrictSerializer):
    reasons = serializers.ListField(child=serializers.CharField(), required=False)
    include_filtered = serializers.BooleanField(required=False, default=False)


class ReprocessView(APIView):
    """Run the rejected queue (optionally some reasons) through rating again."""

    required_permission = "rating.reprocess_usage"

    @extend_schema(request=ReprocessIn, responses={200: BatchSerializer})
    def post(self, request):
        body = ReprocessIn(data=request.data)
        body.is_valid(raise_exception=True)
        batch = usage.reprocess(actor=request.user, reasons=body.validated_data.get("reasons"),
                                include_filtered=body.validated_data["include_filtered"])
        return Response(BatchSerializer(batch).data)


class ImportCgratesIn(StrictSerializer):
    tenant = serializers.CharField(required=False, allow_blank=True)
    files = serializers.DictField(child=serializers.CharField(allow_blank=True),
                                  help_text="File name (Destinations.csv, …) → its CSV text.")


class ImportCgratesView(APIView):
    """Load a CGRateS classic tariff plan given as CSV texts; replaces the plans of the
    tenants it loads, atomically; a bad row is named by file and line and nothing is written."""

    required_permission = "rating.import_plan"

    @extend_schema(request=ImportCgratesIn, responses={200: OpenApiTypes.OBJECT})
    def post(self, request):
        from .engine.cgrates_csv import FILES

        body = ImportCgratesIn(data=request.data)
        body.is_valid(raise_exception=True)
        files = body.validated_data["files"]
        unknown = sorted(set(files) - set(FILES))
        if unknown:
            raise ValidationFailed(f"Unknown files: {', '.join(unknown)}.", code="unknown_file",
                                   fields={"files": [f"Expected some of {', '.join(FILES)}."]})
        with tempfile.TemporaryDirectory(prefix="tarifa-cgrates-") as tmp:
            for name, text in files.items():
                Path(tmp, name).write_text(text, encoding="utf-8")
            summary = import_directory(tmp, tenant=body.validated_data.get("tenant") or None, actor=request.user)
        summary["directory"] = "(upload)"
        return Response(summary)


for prefix, viewset, basename in [
    ("rating-tenants", TenantViewSet, "ratingtenant"),
    ("rating-destinations", DestinationViewSet, "destination"),
    ("rating-prefixes", PrefixViewSet, "destinationprefix"),
    ("rating-timings", TimingViewSet, "timing"),
    ("rating-rates", RateViewSet, "rate"),
    ("rating-rate-slots", RateSlotViewSet, "rateslot"),
    ("rating-destination-rates", DestinationRateViewSet, "destinationrate"),
    ("rating-plans", RatingPlanViewSet, "ratingplan"),
    ("rating-plan-bindings", BindingViewSet, "ratingplanbinding"),
    ("rating-profiles", RatingProfileViewSet, "ratingprofile"),
    ("tariff-ratings", TariffRatingViewSet, "tariffrating"),
    ("bundles", BundleViewSet, "bundle"),
    ("bundle-counters", BundleCounterViewSet, "bundlecounter"),
    ("usage-types", UsageTypeViewSet, "usagetype"),
    ("usage-formats", UsageFormatViewSet, "usageformat"),
    ("usage-batches", BatchViewSet, "usagebatch"),
    ("rated-usage", RatedUsageViewSet, "ratedusage"),
    ("rejected-usage", RejectedUsageViewSet, "rejectedusage"),
    ("rerate-runs", RerateRunViewSet, "reraterun"),
]:
    router.register(prefix, viewset, basename=basename)

register_endpoint("rating/cost", CostView.as_view(), "rating-cost", "rating.calculate")
register_endpoint("rating/import-cgrates", ImportCgratesView.as_view(), "rating-import-cgrates", "rating.import_plan")
register_endpoint("usage/", UsageInView.as_view(), "usage-in", "rating.add_usagebatch")
register_endpoint("usage/rerate", RerateView.as_view(), "usage-rerate", "rating.rerate_usage")
register_endpoint("usage/reprocess", ReprocessView.as_view(), "usage-reprocess", "rating.reprocess_usage")

