from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.web.api import AmountField, RecordViewSet, StrictModelSerializer, StrictSerializer, register_endpoint, router

from . import services
from .exchange import export_catalog, import_catalog
from .models import (Channel, ChannelPackage, ChannelPrice, DevicePrice, OneTimeFee, PriceVersion, Service,
                     ServiceType, Tariff, TariffParameter, Tax)


class MoneyField(AmountField):
    """An amount as a decimal string ("10.50"), by the one parser (tarifa.web.api.AmountField)."""


class CodeRelated(serializers.SlugRelatedField):
    def __init__(self, model, **kwargs):
        super().__init__(slug_field="code", queryset=model.objects.all(), **kwargs)


class ServiceTypeSerializer(StrictModelSerializer):
    class Meta:
        model = ServiceType
        fields = ["id", "code", "name", "category", "identifier_kinds", "description", "archived_at", "branch"]
        read_only_fields = ["archived_at", "branch"]
        extra_kwargs = {"code": {"validators": []}}


class ServiceSerializer(StrictModelSerializer):
    service_type = CodeRelated(ServiceType)

    class Meta:
        model = Service
        fields = ["id", "code", "name", "service_type", "description", "archived_at", "branch"]
        read_only_fields = ["archived_at", "branch"]
        extra_kwargs = {"code": {"validators": []}}


class TaxSerializer(StrictModelSerializer):
    rate = MoneyField(places=4)
    service_types = CodeRelated(ServiceType, many=True, required=False)

    class Meta:
        model = Tax
        fields = ["id", "code", "name", "rate", "inclusive", "service_types", "valid_from", "valid_to", "archived_at"]
        read_only_fields = ["archived_at"]
        extra_kwargs = {"code": {"validators": []}}


class ChannelSerializer(StrictModelSerializer):
    class Meta:
        model = Channel
        fields = ["id", "code", "name", "number", "archived_at"]
        read_only_fields = ["archived_at"]
        extra_kwargs = {"code": {"validators": []}}


class ChannelPackageSerializer(StrictModelSerializer):
    channels = CodeRelated(Channel, many=True, required=False)

    class Meta:
        model = ChannelPackage
        fields = ["id", "code", "name", "channels", "archived_at"]
        read_only_fields = ["archived_at"]
        extra_kwargs = {"code": {"validators": []}}


class OneTimeFeeSerializer(StrictModelSerializer):
    amount = MoneyField()

    class Meta:
        model = OneTimeFee
        fields = ["id", "price_version", "kind", "amount"]
        validators = []


class ChannelPriceSerializer(StrictModelSerializer):
    amount = MoneyField()
    channel = CodeRelated(Channel, required=False, allow_null=True)
    package = CodeRelated(ChannelPackage, required=False, allow_null=True)

    class Meta:
        model = ChannelPrice
        fields = ["id", "price_version", "channel", "package", "amount"]
        validators = []


class PriceVersionSerializer(StrictModelSerializer):
    recurring_fee = MoneyField()
    one_time_fees = serializers.SerializerMethodField()
    channel_prices = serializers.SerializerMethodField()
    tariff = CodeRelated(Tariff)

    class Meta:
        model = PriceVersion
        fields = ["id", "tariff", "valid_from", "recurring_fee", "note", "one_time_fees", "channel_prices"]
        validators = []

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
    def get_one_time_fees(self, obj):
        return {f.kind: str(f.amount) for f in obj.one_time_fees.all()}

    @extend_schema_field({"type": "array", "items": {"type": "object"}})
    def get_channel_prices(self, obj):
        return [{"channel": p.channel.code if p.channel_id else None,
                 "package": p.package.code if p.package_id else None, "amount": str(p.amount)}
                for p in obj.channel_prices.select_related("channel", "package")]


class NewPriceVersionSerializer(StrictSerializer):
    valid_from = serializers.DateField()
    recurring_fee = MoneyField()
    note = serializers.CharField(required=False, allow_blank=True, max_length=200)
    one_time_fees = serializers.DictField(child=MoneyField(), required=False)


class TariffParameterSerializer(StrictModelSerializer):
    tariff = CodeRelated(Tariff)

    class Meta:
        model = TariffParameter
        fields = ["id", "tariff", "code", "label", "kind", "value", "choices", "required", "unit"]
        validators = []


class TariffSerializer(StrictModelSerializer):
    service = CodeRelated(Service)
    suspend_below = MoneyField(required=False)
    resume_at = MoneyField(required=False)
    warn_below = MoneyField(required=False, allow_null=True)
    promised_payment_amount = MoneyField(required=False)
    recurring_fee = MoneyField(write_only=True, required=False)
    valid_from = serializers.DateField(write_only=True, required=False)
    current_price = serializers.SerializerMethodField()

    class Meta:
        model = Tariff
        fields = ["id", "code", "name", "service", "currency", "period", "proration", "charge_suspended_days",
                  "suspend_below", "resume_at", "warn_below", "voluntary_suspension", "voluntary_suspension_max_days",
                  "promised_payment_amount", "promised_payment_days", "promised_payment_interval_days", "description",
                  "recurring_fee", "valid_from", "current_price", "archived_at"]
        read_only_fields = ["archived_at"]
        extra_kwargs = {"code": {"validators": []}}
        validators = []

    @extend_schema_field({"type": "string", "format": "decimal", "nullable": True,
                          "description": "Today's recurring fee; null when no price version is in force."})
    def get_current_price(self, obj):
        version = obj.version_on(services.today())
        return str(version.recurring_fee) if version else None


class DevicePriceSerializer(StrictModelSerializer):
    """A row of the device price list; warehouse items name it by code (their `catalog_ref`).
    An amount of "0" means not offered that way."""

    sale_price = MoneyField(places=2, required=False, help_text="Charged once on sale; \"0\": not sold.")
    monthly_rent = MoneyField(places=2, required=False, help_text="Per month installed, prorated by day; \"0\": not rented.")
    installment_total = MoneyField(places=2, required=False, help_text="Total paid in installments; \"0\": not offered.")
    installment_months = serializers.IntegerField(required=False, min_value=0, max_value=120,
                                                  help_text="How many monthly installments (with a total).")

    class Meta:
        model = DevicePrice
        fields = ["id", "code", "name", "currency", "sale_price", "monthly_rent", "installment_total",
                  "installment_months", "description", "archived_at"]
        read_only_fields = ["archived_at"]
        extra_kwargs = {"code": {"validators": []}}


def _update_tariff(obj, *, actor, recurring_fee=None, valid_from=None, **data):
    return services.update_tariff(obj, actor=actor, **data)


class ServiceTypeViewSet(RecordViewSet):
    queryset = ServiceType.objects.order_by("code")
    serializer_class = ServiceTypeSerializer
    filterset_fields = ["code", "category"]
    search_fields = ["code", "name"]
    create_service = services.create_service_type
    update_service = services.update_service_type
    archive_service = services.archive


class ServiceViewSet(RecordViewSet):
    queryset = Service.objects.select_related("service_type").order_by("code")
    serializer_class = ServiceSerializer
    filterset_fields = ["code", "service_type__code"]
    search_fields = ["code", "name"]
    create_service = services.create_service
    update_service = services.update_service
    archive_service = services.archive


class TaxViewSet(RecordViewSet):
    queryset = Tax.objects.prefetch_related("service_types").order_by("code")
    serializer_class = TaxSerializer
    filterset_fields = ["code", "inclusive"]
    create_service = services.create_tax
    update_service = services.update_tax
    archive_service = services.archive


class ChannelViewSet(RecordViewSet):
    queryset = Channel.objects.order_by("number", "code")
    serializer_class = ChannelSerializer
    filterset_fields = ["code"]
    create_service = services.create_channel
    update_service = services.update_channel
    archive_service = services.archive


class ChannelPackageViewSet(RecordViewSet):
    queryset = ChannelPackage.objects.prefetch_related("channels").order_by("code")
    serializer_class = ChannelPackageSerializer
    filterset_fields = ["code"]
    create_service = services.create_channel_package
    update_service = services.update_channel_package
    archive_service = services.archive


class TariffViewSet(RecordViewSet):
    """Tariffs; their prices are price versions (`POST /tariffs/{id}/price-versions/`)."""

    queryset = Tariff.objects.select_related("service").order_by("code")
    serializer_class = TariffSerializer
    filterset_fields = ["code", "service__code", "currency", "period"]
    search_fields = ["code", "name"]
    create_service = services.create_tariff
    update_service = _update_tariff
    archive_service = services.archive

    @extend_schema(request=NewPriceVersionSerializer, responses={201: PriceVersionSerializer})
    @action(detail=True, methods=["post"], url_path="price-versions", required_permission="catalog.add_priceversion")
    def new_price_version(self, request, pk=None):
        body = NewPriceVersionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = services.create_price_version(actor=request.user, tariff=self.get_object(), **body.validated_data)
        return Response(PriceVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class TariffParameterViewSet(RecordViewSet):
    queryset = TariffParameter.objects.select_related("tariff").order_by("tariff__code", "code")
    serializer_class = TariffParameterSerializer
    filterset_fields = ["tariff__code", "code"]
    create_service = services.create_parameter
    update_service = services.update_parameter


class PriceVersionViewSet(RecordViewSet):
    queryset = PriceVersion.objects.select_related("tariff").prefetch_related("one_time_fees").order_by(
        "tariff__code", "-valid_from")
    serializer_class = PriceVersionSerializer
    filterset_fields = ["tariff__code", "valid_from"]
    create_service = services.create_price_version
    update_service = services.update_price_version


class OneTimeFeeViewSet(RecordViewSet):
    queryset = OneTimeFee.objects.order_by("price_version", "kind")
    serializer_class = OneTimeFeeSerializer
    filterset_fields = ["price_version", "kind"]
    create_service = services.create_one_time_fee
    update_service = services.update_one_time_fee


class ChannelPriceViewSet(RecordViewSet):
    queryset = ChannelPrice.objects.select_related("channel", "package").order_by("price_version")
    serializer_class = ChannelPriceSerializer
    filterset_fields = ["price_version"]
    create_service = services.create_channel_price
    update_service = services.update_channel_price


class DevicePriceViewSet(RecordViewSet):
    """The device price list: sale price, monthly rent and installment terms of warehouse items
    (an item's `catalog_ref` names a row). DELETE archives: items keep it, new use is refused."""

    queryset = DevicePrice.objects.order_by("code")
    serializer_class = DevicePriceSerializer
    filterset_fields = ["code", "currency"]
    search_fields = ["code", "name"]
    create_service = services.create_device_price
    update_service = services.update_device_price
    archive_service = services.archive


class CatalogExportView(APIView):
    """The whole catalog as one JSON document (the same as `tarifa catalog export`)."""

    required_permission = "catalog.export_catalog"

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response(export_catalog())


class CatalogImportView(APIView):
    """Apply a catalog document; one transaction, returns counts per kind."""

    required_permission = "catalog.import_catalog"

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT})
    def post(self, request):
        return Response(import_catalog(request.data, actor=request.user))


router.register("service-types", ServiceTypeViewSet, basename="servicetype")
router.register("services", ServiceViewSet, basename="service")
router.register("taxes", TaxViewSet, basename="tax")
router.register("tv-channels", ChannelViewSet, basename="channel")
router.register("channel-packages", ChannelPackageViewSet, basename="channelpackage")
router.register("tariffs", TariffViewSet, basename="tariff")
router.register("tariff-parameters", TariffParameterViewSet, basename="tariffparameter")
router.register("price-versions", PriceVersionViewSet, basename="priceversion")
router.register("one-time-fees", OneTimeFeeViewSet, basename="onetimefee")
router.register("channel-prices", ChannelPriceViewSet, basename="channelprice")
router.register("device-prices", DevicePriceViewSet, basename="deviceprice")
register_endpoint("catalog/export/", CatalogExportView.as_view(), "catalog-export", "catalog.export_catalog")
register_endpoint("catalog/import/", CatalogImportView.as_view(), "catalog-import", "catalog.import_catalog")
