from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.catalog.api import MoneyField
from tarifa.catalog.models import Channel, ChannelPackage, Tariff
from tarifa.ledger.models import BillingAccount
from tarifa.web.api import AmountField, RecordViewSet, StrictModelSerializer, StrictSerializer, register_endpoint, router
from tarifa.web.idempotency import idempotent

from . import devices as device_fees
from . import services
from .models import (IDENTIFIERS, ChargeRun, DeviceAgreement, PromisedPayment, StatusChange, Subscription, SubscriptionItem, Suspension,
                     TariffPeriod)


class SuspensionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Suspension
        fields = ["id", "subscription", "cause", "started_at", "started_on", "planned_end", "ended_at", "ended_on",
                  "reason", "actor", "ended_by"]


class SubscriptionSerializer(StrictModelSerializer):
    billing_account = serializers.SlugRelatedField(slug_field="number", queryset=BillingAccount.objects.all())
    tariff = serializers.SlugRelatedField(slug_field="code", queryset=Tariff.objects.all())
    service = serializers.SlugRelatedField(slug_field="code", read_only=True)
    activate = serializers.BooleanField(write_only=True, required=False, default=False)
    password = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=128,
                                     style={"input_type": "password"},
                                     help_text="The login's password (network access, RADIUS); write-only.")
    open_causes = serializers.SerializerMethodField()

    class Meta:
        model = Subscription
        fields = ["id", "number", "billing_account", "service", "tariff", "status", *IDENTIFIERS, "password",
                  "parameters", "note", "activated_on", "terminated_on", "open_causes", "activate", "branch",
                  "created_at"]
        read_only_fields = ["number", "status", "activated_on", "terminated_on", "branch", "created_at"]
        validators = []

    def get_open_causes(self, obj) -> list[str]:
        return sorted(obj.suspensions.filter(ended_at__isnull=True).values_list("cause", flat=True))

    def get_fields(self):
        fields = super().get_fields()
        for name in IDENTIFIERS:
            fields[name].validators = []
        return fields


class SubscriptionUpdateSerializer(StrictSerializer):
    note = serializers.CharField(required=False, allow_blank=True)
    password = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=128,
                                     help_text="The login's password (network access, RADIUS); write-only.")
    parameters = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)


class SuspendSerializer(StrictSerializer):
    cause = serializers.ChoiceField(choices=Suspension.Cause.choices)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)
    planned_end = serializers.DateField(required=False, allow_null=True)


class ResumeSerializer(StrictSerializer):
    cause = serializers.ChoiceField(choices=Suspension.Cause.choices)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class ChangeTariffSerializer(StrictSerializer):
    tariff = serializers.SlugRelatedField(slug_field="code", queryset=Tariff.objects.all())
    effective = serializers.DateField(required=False, allow_null=True)
    parameters = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class ReplaceSimSerializer(StrictSerializer):
    iccid = serializers.CharField(max_length=22)
    imsi = serializers.CharField(max_length=15, required=False, allow_blank=True)


class ChangeNumberSerializer(StrictSerializer):
    phone_number = serializers.CharField(max_length=32)


class ReasonSerializer(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class ItemSerializer(StrictModelSerializer):
    channel = serializers.SlugRelatedField(slug_field="code", queryset=Channel.objects.all(), required=False,
                                           allow_null=True)
    package = serializers.SlugRelatedField(slug_field="code", queryset=ChannelPackage.objects.all(), required=False,
                                           allow_null=True)

    class Meta:
        model = SubscriptionItem
        fields = ["id", "subscription", "channel", "package", "added_on", "removed_on"]
        read_only_fields = ["subscription", "added_on", "removed_on"]


class DeviceAgreementSerializer(serializers.ModelSerializer):
    """A device sold, rented or sold in installments on a subscription."""

    serial = serializers.CharField(source="device.serial", read_only=True)
    item = serializers.CharField(source="device.item.code", read_only=True)
    location = serializers.CharField(source="device.location.code", read_only=True)
    agreement = serializers.CharField(source="mode", read_only=True)
    amount = MoneyField(read_only=True)
    installments_left = serializers.SerializerMethodField()

    class Meta:
        model = DeviceAgreement
        fields = ["id", "serial", "item", "location", "agreement", "amount", "currency", "installments",
                  "installments_charged", "installments_left", "started_on", "charged_through", "ended_on"]

    def get_installments_left(self, obj) -> int:
        return obj.installments - obj.installments_charged if obj.ended_on is None else 0


class DeviceAgreementCreateSerializer(StrictSerializer):
    serial = serializers.CharField(max_length=64, help_text="A device in stock, or one at the customer's premises.")
    agreement = serializers.ChoiceField(choices=DeviceAgreement.Mode.choices)
    amount = AmountField(non_negative=True, places=2, required=False, allow_null=True,
                         help_text="Sale price, monthly rent, or the total paid in installments. Left out (or "
                                   "null): the device's catalog price (its item's catalog_ref); a given amount "
                                   "overrides it. Neither: 400 naming the item.")
    months = serializers.IntegerField(min_value=1, max_value=120, required=False, allow_null=True,
                                      help_text="Installments only: how many monthly installments. Left out: the "
                                                "catalog price's months.")


def _create(*, actor, billing_account, tariff, activate=False, **data):
    return services.create_subscription(actor=actor, billing_account=billing_account, tariff=tariff,
                                        activate=activate, **data)


def _update(sub, *, actor, **data):
    return services.update_subscription(sub, actor=actor, **data)


class SubscriptionViewSet(RecordViewSet):
    """Subscriptions and their life cycle: POST …/activate, suspend, resume, change-tariff,
    replace-sim, change-number, items, terminate."""

    queryset = Subscription.objects.select_related("billing_account", "tariff", "service").order_by("number")
    serializer_class = SubscriptionSerializer
    write_serializer_class = None
    filterset_fields = ["status", "billing_account__number", "tariff__code", "service__code", *IDENTIFIERS]
    search_fields = ["number", *IDENTIFIERS]
    create_service = _create
    update_service = _update

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return SubscriptionUpdateSerializer
        return SubscriptionSerializer

    def _run(self, request, body_class, func, code=status.HTTP_200_OK):
        data = {}
        if body_class is not None:
            body = body_class(data=request.data)
            body.is_valid(raise_exception=True)
            data = body.validated_data
        result = func(self.get_object(), actor=request.user, **data)
        return Response(SubscriptionSerializer(result).data if isinstance(result, Subscription)
                        else ItemSerializer(result).data, status=code)

    @extend_schema(request=None, responses=SubscriptionSerializer)
    @action(detail=True, methods=["post"], required_permission="subscriptions.activate_subscription")
    def activate(self, request, pk=None):
        return self._run(request, None, services.activate_subscription)

    @extend_schema(request=SuspendSerializer, responses=SubscriptionSerializer)
    @action(detail=True, methods=["post"], required_permission="subscriptions.suspend_subscription")
    def suspend(self, request, pk=None):
        return self._run(request, SuspendSerializer, services.suspend)

    @extend_schema(request=ResumeSerializer, responses=SubscriptionSerializer)
    @action(detail=True, methods=["post"], required_permission="subscriptions.suspend_subscription")
    def resume(self, request, pk=None):
        return self._run(request, ResumeSerializer, services.resume)

    @extend_schema(request=ChangeTariffSerializer, responses=SubscriptionSerializer)
    @action(detail=True, methods=["post"], url_path="change-tariff", required_permission="subscriptions.change_tariff")
    def change_tariff(self, request, pk=None):
        return self._run(request, ChangeTariffSerializer, services.change_tariff)

    @extend_schema(request=ReplaceSimSerializer, responses=SubscriptionSerializer)
    @action(detail=True, methods=["post"], url_path="replace-sim", required_permission="subscriptions.replace_sim")
    def replace_sim(self, request, pk=None):
        return self._run(request, ReplaceSimSerializer, services.replace_sim)

    @extend_schema(request=ChangeNumberSerializer, responses=SubscriptionSerializer)
    @action(detail=True, methods=["post"], url_path="change-number", required_permission="subscriptions.replace_sim")
    def change_number(self, request, pk=None):
        return self._run(request, ChangeNumberSerializer, services.change_number)

    @extend_schema(request=ItemSerializer, responses={201: ItemSerializer})
    @action(detail=True, methods=["post"], url_path="items", required_permission="subscriptions.change_subscription")
    def add_item(self, request, pk=None):
        body = ItemSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        item = services.add_item(self.get_object(), actor=request.user, channel=body.validated_data.get("channel"),
                                 package=body.validated_data.get("package"))
        return Response(ItemSerializer(item).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=DeviceAgreementSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="devices", required_permission="subscriptions.view_deviceagreement", pagination_class=None)
    def devices(self, request, pk=None):
        """GET: the devices sold, rented or on installments on this subscription; POST `{"serial",
        "agreement": "sale"|"rent"|"installments", "amount", "months"}` with an Idempotency-Key
        (needs subscriptions.add_deviceagreement); without "amount" (and "months") the device's
        catalog price applies."""
        sub = self.get_object()
        agreements = DeviceAgreement.objects.filter(subscription=sub).select_related("device__item",
                                                                                      "device__location")
        return Response(DeviceAgreementSerializer(agreements, many=True).data)

    @extend_schema(request=DeviceAgreementCreateSerializer, responses={201: DeviceAgreementSerializer})
    @devices.mapping.post
    @idempotent
    def add_device(self, request, pk=None):
        if not request.user.has_perm("subscriptions.add_deviceagreement"):
            raise PermissionDenied("You may not sell or rent devices (subscriptions.add_deviceagreement).")
        body = DeviceAgreementCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        agreement = device_fees.start_agreement(self.get_object(), actor=request.user, serial=data["serial"],
                                                agreement=data["agreement"], amount=data.get("amount"),
                                                months=data.get("months"))
        return Response(DeviceAgreementSerializer(agreement).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ReasonSerializer, responses=SubscriptionSerializer)
    @action(detail=True, methods=["post"], required_permission="subscriptions.terminate_subscription")
    def terminate(self, request, pk=None):
        return self._run(request, ReasonSerializer, services.terminate)


class SuspensionViewSet(RecordViewSet):
    queryset = Suspension.objects.order_by("-started_at")
    serializer_class = SuspensionSerializer
    filterset_fields = ["subscription", "cause"]


class StatusChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = StatusChange
        fields = ["id", "subscription", "from_status", "to_status", "cause", "at", "actor", "reason"]


class StatusChangeViewSet(RecordViewSet):
    """The life cycle as it happened: every transition with its actor, cause and reason."""

    queryset = StatusChange.objects.order_by("at", "id")
    serializer_class = StatusChangeSerializer
    filterset_fields = ["subscription", "to_status", "cause"]


class TariffPeriodSerializer(serializers.ModelSerializer):
    tariff = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = TariffPeriod
        fields = ["id", "subscription", "tariff", "valid_from", "valid_until", "created_at"]


class TariffPeriodViewSet(RecordViewSet):
    """Which tariff a subscription is charged under, when (a scheduled change is a future period)."""

    queryset = TariffPeriod.objects.select_related("tariff").order_by("subscription", "valid_from")
    serializer_class = TariffPeriodSerializer
    filterset_fields = ["subscription", "tariff__code"]


class SubscriptionItemViewSet(RecordViewSet):
    queryset = SubscriptionItem.objects.select_related("channel", "package").order_by("-added_on")
    serializer_class = ItemSerializer
    filterset_fields = ["subscription"]

    def archive_service(item, *, actor, reason=""):
        return services.remove_item(item, actor=actor, reason=reason)


class PromisedPaymentSerializer(StrictModelSerializer):
    billing_account = serializers.SlugRelatedField(slug_field="number", queryset=BillingAccount.objects.all())
    amount = MoneyField(read_only=True)

    class Meta:
        model = PromisedPayment
        fields = ["id", "billing_account", "amount", "granted_at", "expires_at", "expired_at", "actor"]
        read_only_fields = ["granted_at", "expires_at", "expired_at", "actor"]


class PromisedPaymentViewSet(RecordViewSet):
    """POST with a billing account number grants the promised payment its tariffs offer."""

    queryset = PromisedPayment.objects.select_related("billing_account").order_by("-granted_at")
    serializer_class = PromisedPaymentSerializer
    filterset_fields = ["billing_account__number"]

    def create_service(*, actor, billing_account):
        return services.grant_promised_payment(billing_account, actor=actor)


class ChargeRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChargeRun
        fields = ["id", "as_of", "first_day", "started_at", "finished_at", "staged", "inserted", "refused",
                  "suspended", "resumed", "actor"]


class ChargeRunViewSet(RecordViewSet):
    queryset = ChargeRun.objects.order_by("-started_at")
    serializer_class = ChargeRunSerializer
    filterset_fields = ["as_of"]


class ChargeRequestSerializer(StrictSerializer):
    as_of = serializers.DateField()
    dry_run = serializers.BooleanField(required=False, default=False,
                                       help_text="Preview only: what the run would charge and suspend; nothing written.")


class ChargeView(APIView):
    """Charge every fee due up to `as_of` (idempotent; catches up missed days). With
    `dry_run: true`, a preview: counts, totals per currency, suspensions; nothing written."""

    required_permission = "subscriptions.charge_fees"

    @extend_schema(request=ChargeRequestSerializer, responses={200: {"type": "object"}})
    def post(self, request):
        from .daily import run

        from .daily import preview

        body = ChargeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if body.validated_data["dry_run"]:
            return Response(preview(as_of=body.validated_data["as_of"], actor=request.user))
        return Response(run(as_of=body.validated_data["as_of"], actor=request.user.get_username()))


router.register("subscriptions", SubscriptionViewSet, basename="subscription")
router.register("suspensions", SuspensionViewSet, basename="suspension")
router.register("subscription-status-changes", StatusChangeViewSet, basename="statuschange")
router.register("tariff-periods", TariffPeriodViewSet, basename="tariffperiod")
router.register("subscription-items", SubscriptionItemViewSet, basename="subscriptionitem")
router.register("promised-payments", PromisedPaymentViewSet, basename="promisedpayment")
router.register("charge-runs", ChargeRunViewSet, basename="chargerun")
register_endpoint("billing/charge/", ChargeView.as_view(), "billing-charge", "subscriptions.charge_fees")
