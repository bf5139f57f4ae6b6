"""REST API of payments.

/payments/ (+ reverse/, refund/), /refunds/, /cash-desks/, /shifts/ (+ open/, close/),
/cash-handovers/, /payment-gateways/ (+ rotate-credentials/), /terminal-transactions/,
/card-checkouts/, /payment-methods/, /autopay-agreements/, /autopay-runs/,
/bank-statements/, /bank-statement-lines/ (+ assign/, ignore/), /voucher-batches/
(+ sell/), /vouchers/ (+ redeem/).

Not staff endpoints, so outside the viewsets: /terminals/<gateway>/ (the terminal
networks' check/pay protocol, HTTP Basic with the gateway's credentials) and
/gateways/<gateway>/webhook/ (card providers' signed webhooks); see views.py.

Amounts are decimal strings. `POST /payments/` needs an `Idempotency-Key` header.
A cashier (operate_cash_desk without view_all_desks) sees only their desks' records.
"""

import hashlib

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from tarifa.identity.models import User
from tarifa.kernel.errors import ValidationFailed
from tarifa.kernel.money import CURRENCY_CHOICES
from tarifa.ledger.api import AmountField
from tarifa.web.api import RecordViewSet, StrictSerializer, router
from tarifa.web.idempotency import idempotent, service_key
from tarifa.web.parsers import FormParser, JSONParser, MultiPartParser

from . import endpoints, errors, selectors, services  # noqa: F401  (endpoints registers the network-facing views)
from .models import (AutoPayAgreement, AutoPayRun, BankStatement, BankStatementLine, CardCheckout, CashDesk,
                     CashHandover, CashierShift, Channel, Payment, PaymentGateway, Refund, StoredPaymentMethod,
                     TerminalTransaction, Voucher, VoucherBatch)

DECIMAL = {"max_digits": 20, "decimal_places": 6, "read_only": True}
MAX_SERVICE_KEY = 190


def request_key(request) -> str:
    """The service's idempotency key for this request's Idempotency-Key (hashed when long)."""
    key = service_key(request)
    if key is None:
        raise ValidationFailed("Send an Idempotency-Key header.", code="idempotency_key_required")
    if len(key) > MAX_SERVICE_KEY:
        key = "http-sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


class DeskRefField(serializers.SlugRelatedField):
    def __init__(self, **kwargs):
        kwargs.setdefault("slug_field", "code")
        kwargs.setdefault("queryset", CashDesk.objects.filter(archived_at__isnull=True).select_related("ledger_account"))
        super().__init__(**kwargs)


class UserRefField(serializers.SlugRelatedField):
    def __init__(self, **kwargs):
        kwargs.setdefault("slug_field", "username")
        kwargs.setdefault("queryset", User.objects.filter(is_active=True))
        super().__init__(**kwargs)


class GatewayRefField(serializers.SlugRelatedField):
    def __init__(self, **kwargs):
        kwargs.setdefault("slug_field", "code")
        kwargs.setdefault("queryset", PaymentGateway.objects.filter(archived_at__isnull=True)
                          .select_related("clearing_account"))
        super().__init__(**kwargs)


class ChannelField(serializers.ChoiceField):
    """A payment channel; an unknown one answers the service's code, `invalid_channel`."""

    def __init__(self, **kwargs):
        super().__init__(choices=Channel.choices, **kwargs)

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError:
            raise errors.InvalidChannel(f"Unknown payment channel {data!r}.",
                                        fields={"channel": [f"One of: {', '.join(Channel.values)}."]}) from None


# --- payments --------------------------------------------------------------------------------------

class PaymentSerializer(serializers.ModelSerializer):
    billing_account_number = serializers.CharField(source="billing_account.number", read_only=True)
    amount = serializers.DecimalField(**DECIMAL)
    refunded_amount = serializers.DecimalField(**DECIMAL)
    gateway = serializers.SlugRelatedField(slug_field="code", read_only=True)
    desk = serializers.SlugRelatedField(slug_field="code", read_only=True)
    shift = serializers.SlugRelatedField(slug_field="number", read_only=True)
    cashier = serializers.SlugRelatedField(slug_field="username", read_only=True)
    received_into = serializers.CharField(source="debit_account.code", read_only=True)

    class Meta:
        model = Payment
        fields = ["id", "number", "billing_account", "billing_account_number", "amount", "currency", "channel",
                  "status", "received_into", "transfer", "reversal_transfer", "external_reference", "payer", "gateway",
                  "provider_txn_id", "received_at", "desk", "shift", "cashier", "memo", "refunded_amount",
                  "reversed_at", "reversal_reason", "actor", "branch", "created_at"]
        read_only_fields = fields


class PaymentCreateSerializer(StrictSerializer):
    account = serializers.CharField(max_length=64, help_text="The billing account: its id or number (HQ-A0000001).")
    amount = AmountField(help_text="A decimal string in the account's currency, e.g. \"10.00\".")
    channel = ChannelField()
    currency = serializers.CharField(max_length=3, required=False,
                                     help_text="Optional; when given it must be the account's currency.")
    desk = DeskRefField(required=False, help_text="Cash desk code (cash only; default: the caller's open shift).")
    external_reference = serializers.CharField(max_length=200, required=False, allow_blank=True)
    payer = serializers.CharField(max_length=200, required=False, allow_blank=True)
    received_at = serializers.DateTimeField(required=False)
    memo = serializers.CharField(max_length=1000, required=False, allow_blank=True)


class PaymentReasonSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500)


class RefundCreateSerializer(StrictSerializer):
    amount = AmountField()
    reason = serializers.CharField(max_length=500)
    destination = serializers.ChoiceField(choices=Refund.Destination.choices, required=False,
                                          help_text="original (default): back to the payment's channel; cash: "
                                                    "paid at the caller's desk.")


class RefundSerializer(serializers.ModelSerializer):
    payment_number = serializers.CharField(source="payment.number", read_only=True)
    billing_account_number = serializers.CharField(source="billing_account.number", read_only=True)
    amount = serializers.DecimalField(**DECIMAL)
    desk = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Refund
        fields = ["id", "number", "payment", "payment_number", "billing_account", "billing_account_number", "amount",
                  "currency", "destination", "reason", "transfer", "desk", "actor", "created_at"]
        read_only_fields = fields


class PaymentViewSet(RecordViewSet):
    """Payments. POST applies money to an account once per `Idempotency-Key` (required): a retry
    answers the first response again (`Idempotent-Replayed: true`); the same key with another
    body answers 409 `idempotency_conflict`."""

    queryset = Payment.objects.order_by("-created_at", "-id")
    serializer_class = PaymentSerializer
    filterset_fields = ["billing_account", "channel", "status", "currency", "desk", "shift", "gateway",
                        "provider_txn_id", "number"]
    search_fields = ["number", "external_reference", "payer", "billing_account__number", "provider_txn_id"]
    ordering_fields = ["created_at", "amount", "received_at"]

    def get_queryset(self):
        return selectors.payments_for(self.request.user).order_by("-created_at", "-id")

    @classmethod
    def unsupported_actions(cls):
        return {"update", "partial_update", "destroy"}

    @extend_schema(request=PaymentCreateSerializer, responses={201: PaymentSerializer})
    @idempotent
    def create(self, request, *args, **kwargs):
        body = PaymentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        payment = services.accept_payment(actor=request.user, idempotency_key=request_key(request),
                                          account=data.pop("account"), **data)
        # The service's record carries what the answer shows (account, channel account, desk…): no re-read.
        return Response(PaymentSerializer(payment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PaymentReasonSerializer, responses=PaymentSerializer)
    @action(detail=True, methods=["post"], required_permission="payments.reverse")
    @idempotent(required=False)
    def reverse(self, request, pk=None):
        """Book the reversing transfer (once) and mark the payment reversed."""
        body = PaymentReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        payment = services.reverse_payment(self.get_object(), actor=request.user, reason=body.validated_data["reason"])
        return Response(PaymentSerializer(payment).data)

    @extend_schema(request=RefundCreateSerializer, responses={201: RefundSerializer})
    @action(detail=True, methods=["post"], required_permission="payments.refund")
    @idempotent
    def refund(self, request, pk=None):
        """Pay back up to what is left of the payment, to its channel or in cash at the caller's desk."""
        body = RefundCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        refund = services.refund_payment(self.get_object(), actor=request.user, idempotency_key=request_key(request),
                                         **body.validated_data)
        return Response(RefundSerializer(refund).data, status=status.HTTP_201_CREATED)


class RefundViewSet(RecordViewSet):
    """Refunds (made with POST /payments/<id>/refund/)."""

    queryset = Refund.objects.order_by("-created_at")
    serializer_class = RefundSerializer
    filterset_fields = ["billing_account", "payment", "destination", "currency"]

    def get_queryset(self):
        return selectors.refunds_for(self.request.user).order_by("-created_at")


# --- cash desks, shifts, hand-overs ------------------------------------------------------------------

class CashDeskSerializer(serializers.ModelSerializer):
    cashiers = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    cash_on_books = serializers.SerializerMethodField()
    ledger_account = serializers.CharField(source="ledger_account.code", read_only=True)

    class Meta:
        model = CashDesk
        fields = ["id", "code", "name", "currency", "location", "cashiers", "ledger_account", "cash_on_books",
                  "archived_at", "created_at"]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "format": "decimal"})
    def get_cash_on_books(self, desk) -> str:
        account = desk.ledger_account
        return f"{account.debits_posted - account.credits_posted:f}"


class CashDeskWriteSerializer(StrictSerializer):
    code = serializers.CharField(max_length=40)
    name = serializers.CharField(max_length=200)
    currency = serializers.ChoiceField(choices=CURRENCY_CHOICES)
    location = serializers.CharField(max_length=200, required=False, allow_blank=True)
    cashiers = UserRefField(many=True, required=False)


class CashDeskUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    location = serializers.CharField(max_length=200, required=False, allow_blank=True)
    cashiers = UserRefField(many=True, required=False)


class CashDeskViewSet(RecordViewSet):
    """Cash desks; each keeps its cash in the ledger account `cash:<code>`."""

    queryset = CashDesk.objects.select_related("ledger_account").prefetch_related("cashiers").order_by("code")
    serializer_class = CashDeskSerializer
    filterset_fields = ["currency", "code"]

    def get_queryset(self):
        return selectors.desks_for(self.request.user).prefetch_related("cashiers").order_by("code")

    def get_serializer_class(self):
        if self.action == "create":
            return CashDeskWriteSerializer
        if self.action in ("update", "partial_update"):
            return CashDeskUpdateSerializer
        return CashDeskSerializer

    def create_service(*, actor, **data):
        return services.create_cash_desk(actor=actor, **data)

    def update_service(desk, *, actor, **data):
        return services.update_cash_desk(desk, actor=actor, **data)

    def archive_service(desk, *, actor, reason=""):
        return services.archive_cash_desk(desk, actor=actor, reason=reason)


class ShiftSerializer(serializers.ModelSerializer):
    desk = serializers.SlugRelatedField(slug_field="code", read_only=True)
    cashier = serializers.SlugRelatedField(slug_field="username", read_only=True)
    opening_float = serializers.DecimalField(**DECIMAL)
    expected_cash = serializers.DecimalField(**DECIMAL)
    counted_cash = serializers.DecimalField(**DECIMAL)
    discrepancy = serializers.DecimalField(**DECIMAL)
    expected_now = serializers.SerializerMethodField()

    class Meta:
        model = CashierShift
        fields = ["id", "number", "desk", "cashier", "status", "currency", "opened_at", "opening_float", "expected_now",
                  "closed_at", "expected_cash", "counted_cash", "discrepancy", "discrepancy_transfer", "closing_note"]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "format": "decimal", "nullable": True})
    def get_expected_now(self, shift) -> str | None:
        """Cash that should be in the drawer now (open shifts)."""
        if shift.status != CashierShift.Status.OPEN:
            return None
        return f"{services.expected_cash(shift):f}"


class OpenShiftSerializer(StrictSerializer):
    desk = DeskRefField()
    opening_float = AmountField(required=False)


class CloseShiftSerializer(StrictSerializer):
    counted_cash = AmountField()
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True)


class ShiftViewSet(RecordViewSet):
    """Cashier shifts: open (yours, at a desk you are assigned to) and close with the cash counted."""

    queryset = CashierShift.objects.order_by("-opened_at")
    serializer_class = ShiftSerializer
    filterset_fields = ["desk", "cashier", "status"]

    def get_queryset(self):
        return selectors.shifts_for(self.request.user).order_by("-opened_at")

    @extend_schema(request=OpenShiftSerializer, responses={201: ShiftSerializer})
    @action(detail=False, methods=["post"], url_path="open", required_permission="payments.operate_cash_desk")
    def open_shift(self, request):
        body = OpenShiftSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        shift = services.open_shift(actor=request.user, desk=body.validated_data["desk"],
                                    opening_float=body.validated_data.get("opening_float", 0))
        return Response(ShiftSerializer(shift).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CloseShiftSerializer, responses=ShiftSerializer)
    @action(detail=True, methods=["post"], required_permission="payments.operate_cash_desk")
    def close(self, request, pk=None):
        body = CloseShiftSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        shift = services.close_shift(self.get_object(), actor=request.user, **body.validated_data)
        return Response(ShiftSerializer(shift).data)


class HandoverSerializer(serializers.ModelSerializer):
    from_desk = serializers.SlugRelatedField(slug_field="code", read_only=True)
    to_desk = serializers.SlugRelatedField(slug_field="code", read_only=True)
    handed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    received_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    amount = serializers.DecimalField(**DECIMAL)

    class Meta:
        model = CashHandover
        fields = ["id", "number", "from_desk", "destination", "to_desk", "amount", "currency", "handed_by",
                  "handed_by_label", "received_by", "bank_reference", "handed_at", "transfer", "note"]
        read_only_fields = fields


class HandoverCreateSerializer(StrictSerializer):
    from_desk = DeskRefField()
    destination = serializers.ChoiceField(choices=CashHandover.Destination.choices)
    to_desk = DeskRefField(required=False)
    amount = AmountField()
    received_by = UserRefField(required=False)
    bank_reference = serializers.CharField(max_length=100, required=False, allow_blank=True)
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True)


class HandoverViewSet(RecordViewSet):
    """Cash handed from a desk to another desk or to the bank (`Idempotency-Key` required)."""

    queryset = CashHandover.objects.order_by("-handed_at")
    serializer_class = HandoverSerializer
    filterset_fields = ["from_desk", "to_desk", "destination"]

    def get_queryset(self):
        return selectors.handovers_for(self.request.user).order_by("-handed_at")

    @classmethod
    def unsupported_actions(cls):
        return {"update", "partial_update", "destroy"}

    @extend_schema(request=HandoverCreateSerializer, responses={201: HandoverSerializer})
    @idempotent
    def create(self, request, *args, **kwargs):
        body = HandoverCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        handover = services.hand_over_cash(actor=request.user, idempotency_key=request_key(request),
                                           **body.validated_data)
        return Response(HandoverSerializer(handover).data, status=status.HTTP_201_CREATED)


# --- gateways ----------------------------------------------------------------------------------------

class GatewaySerializer(serializers.ModelSerializer):
    min_amount = serializers.DecimalField(**DECIMAL)
    max_amount = serializers.DecimalField(**DECIMAL)
    clearing_account = serializers.CharField(source="clearing_account.code", read_only=True)
    credentials = serializers.SerializerMethodField()

    class Meta:
        model = PaymentGateway
        fields = ["id", "code", "name", "kind", "adapter", "currency", "is_active", "username", "allowed_ips",
                  "min_amount", "max_amount", "api_url", "clearing_account", "credentials", "archived_at",
                  "created_at"]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "nullable": True, "additionalProperties": {"type": "string"},
                          "description": "Only in the answer that issued them (create, rotate-credentials)."})
    def get_credentials(self, gateway) -> dict | None:
        return getattr(gateway, "issued_credentials", None)


class GatewayCreateSerializer(StrictSerializer):
    code = serializers.CharField(max_length=40)
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=PaymentGateway.Kind.choices)
    currency = serializers.ChoiceField(choices=CURRENCY_CHOICES)
    adapter = serializers.CharField(max_length=40, required=False, allow_blank=True)
    username = serializers.CharField(max_length=100, required=False, allow_blank=True)
    allowed_ips = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    min_amount = AmountField(required=False)
    max_amount = AmountField(required=False)
    api_url = serializers.URLField(required=False, allow_blank=True)
    hmac_secret = serializers.CharField(max_length=128, required=False, allow_blank=True, write_only=True)
    is_active = serializers.BooleanField(required=False)


class GatewayUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    is_active = serializers.BooleanField(required=False)
    allowed_ips = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    min_amount = AmountField(required=False)
    max_amount = AmountField(required=False)
    api_url = serializers.URLField(required=False, allow_blank=True)
    username = serializers.CharField(max_length=100, required=False)


class GatewayViewSet(RecordViewSet):
    """Payment gateways. Creating one (and rotate-credentials/) answers its secret once, in `credentials`."""

    queryset = PaymentGateway.objects.select_related("clearing_account").order_by("code")
    serializer_class = GatewaySerializer
    filterset_fields = ["kind", "currency", "is_active", "code"]

    def get_serializer_class(self):
        if self.action == "create":
            return GatewayCreateSerializer
        if self.action in ("update", "partial_update"):
            return GatewayUpdateSerializer
        return GatewaySerializer

    def create_service(*, actor, **data):
        gateway, issued = services.create_gateway(actor=actor, **data)
        gateway.issued_credentials = issued
        return gateway

    def update_service(gateway, *, actor, **data):
        return services.update_gateway(gateway, actor=actor, **data)

    def archive_service(gateway, *, actor, reason=""):
        return services.archive_gateway(gateway, actor=actor, reason=reason)

    @extend_schema(request=None, responses=GatewaySerializer)
    @action(detail=True, methods=["post"], url_path="rotate-credentials",
            required_permission="payments.rotate_credentials")
    def rotate_credentials(self, request, pk=None):
        """Issue a new password / HMAC secret; the old one stops working at once."""
        gateway = self.get_object()
        issued = services.rotate_credentials(gateway, actor=request.user)
        gateway.refresh_from_db()
        gateway.issued_credentials = issued
        return Response(GatewaySerializer(gateway).data)


class TerminalTransactionSerializer(serializers.ModelSerializer):
    gateway = serializers.SlugRelatedField(slug_field="code", read_only=True)
    payment = serializers.SlugRelatedField(slug_field="number", read_only=True)
    amount = serializers.DecimalField(**DECIMAL)

    class Meta:
        model = TerminalTransaction
        fields = ["id", "gateway", "txn_id", "state", "account_ref", "billing_account", "amount", "txn_date", "result",
                  "comment", "payment", "checked_at", "paid_at"]
        read_only_fields = fields


class TerminalTransactionViewSet(RecordViewSet):
    """The terminal protocol's transactions (check / pay), unique by (gateway, txn_id)."""

    queryset = TerminalTransaction.objects.select_related("gateway", "payment").order_by("-checked_at")
    serializer_class = TerminalTransactionSerializer
    filterset_fields = ["gateway", "state", "txn_id", "result"]


# --- card payments --------------------------------------------------------------------------------

class CardCheckoutSerializer(serializers.ModelSerializer):
    gateway = serializers.SlugRelatedField(slug_field="code", read_only=True)
    payment = serializers.SlugRelatedField(slug_field="number", read_only=True)
    amount = serializers.DecimalField(**DECIMAL)

    class Meta:
        model = CardCheckout
        fields = ["id", "gateway", "billing_account", "amount", "currency", "state", "redirect_url", "return_url",
                  "save_card", "provider_txn_id", "payment", "failure_reason", "created_at", "completed_at"]
        read_only_fields = fields


class CardCheckoutCreateSerializer(StrictSerializer):
    account = serializers.CharField(max_length=64, help_text="Billing account id or number.")
    amount = AmountField()
    gateway = serializers.CharField(max_length=40, help_text="Card gateway code.")
    return_url = serializers.URLField(required=False, allow_blank=True, max_length=2000)
    save_card = serializers.BooleanField(required=False)


class CardCheckoutViewSet(RecordViewSet):
    """Online card payments: POST starts one and answers the provider's `redirect_url` (send the
    customer there); the provider's signed webhook applies it. `Idempotency-Key` required."""

    queryset = CardCheckout.objects.select_related("gateway", "payment").order_by("-created_at")
    serializer_class = CardCheckoutSerializer
    filterset_fields = ["gateway", "billing_account", "state"]

    @classmethod
    def unsupported_actions(cls):
        return {"update", "partial_update", "destroy"}

    @extend_schema(request=CardCheckoutCreateSerializer, responses={201: CardCheckoutSerializer})
    @idempotent
    def create(self, request, *args, **kwargs):
        body = CardCheckoutCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        notify = request.build_absolute_uri(reverse("api:payments-gateway-webhook", args=[data["gateway"]]))
        checkout = services.start_card_checkout(actor=request.user, idempotency_key=request_key(request),
                                                notify_url=notify, **data)
        return Response(CardCheckoutSerializer(checkout).data, status=status.HTTP_201_CREATED)


class PaymentMethodSerializer(serializers.ModelSerializer):
    gateway = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = StoredPaymentMethod
        fields = ["id", "gateway", "billing_account", "label", "created_at", "archived_at"]
        read_only_fields = fields


class PaymentMethodViewSet(RecordViewSet):
    """Cards stored at a provider (token kept, never shown). DELETE forgets one."""

    queryset = StoredPaymentMethod.objects.select_related("gateway").order_by("-created_at")
    serializer_class = PaymentMethodSerializer
    filterset_fields = ["billing_account", "gateway"]

    def archive_service(method, *, actor, reason=""):
        return services.remove_payment_method(method, actor=actor, reason=reason)


class AutoPayAgreementSerializer(serializers.ModelSerializer):
    threshold = AmountField()
    amount = AmountField()
    billing_account = serializers.PrimaryKeyRelatedField(read_only=True)
    payment_method = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = AutoPayAgreement
        fields = ["id", "billing_account", "payment_method", "threshold", "amount", "is_active", "created_at",
                  "archived_at"]
        read_only_fields = ["id", "billing_account", "payment_method", "created_at", "archived_at"]


class AutoPayAgreementCreateSerializer(StrictSerializer):
    billing_account = serializers.CharField(max_length=64)
    payment_method = serializers.PrimaryKeyRelatedField(queryset=StoredPaymentMethod.objects.all())
    threshold = AmountField()
    amount = AmountField()


class AutoPayAgreementUpdateSerializer(StrictSerializer):
    threshold = AmountField(required=False)
    amount = AmountField(required=False)
    is_active = serializers.BooleanField(required=False)


class AutoPayAgreementViewSet(RecordViewSet):
    """Automatic top-ups from a stored card when the balance falls below `threshold` (once a day at most)."""

    queryset = AutoPayAgreement.objects.order_by("-created_at")
    serializer_class = AutoPayAgreementSerializer
    filterset_fields = ["billing_account", "is_active"]

    def get_serializer_class(self):
        if self.action == "create":
            return AutoPayAgreementCreateSerializer
        if self.action in ("update", "partial_update"):
            return AutoPayAgreementUpdateSerializer
        return AutoPayAgreementSerializer

    def create_service(*, actor, **data):
        return services.create_agreement(actor=actor, **data)

    def update_service(agreement, *, actor, **data):
        return services.update_agreement(agreement, actor=actor, **data)

    def archive_service(agreement, *, actor, reason=""):
        return services.cancel_agreement(agreement, actor=actor, reason=reason)


class AutoPayRunSerializer(serializers.ModelSerializer):
    balance_before = serializers.DecimalField(**DECIMAL)
    amount = serializers.DecimalField(**DECIMAL)
    payment = serializers.SlugRelatedField(slug_field="number", read_only=True)

    class Meta:
        model = AutoPayRun
        fields = ["id", "agreement", "day", "state", "balance_before", "amount", "payment", "error", "created_at",
                  "finished_at"]
        read_only_fields = fields


class AutoPayRunViewSet(RecordViewSet):
    queryset = AutoPayRun.objects.select_related("payment").order_by("-day", "-created_at")
    serializer_class = AutoPayRunSerializer
    filterset_fields = ["agreement", "day", "state"]


# --- bank statements ---------------------------------------------------------------------------------

class BankStatementSerializer(serializers.ModelSerializer):
    class Meta:
        model = BankStatement
        fields = ["id", "number", "filename", "sha256", "imported_by", "lines_read", "lines_booked", "lines_unmatched",
                  "lines_duplicate", "lines_rejected", "created_at"]
        read_only_fields = fields


class BankStatementUploadSerializer(StrictSerializer):
    file = serializers.FileField(help_text="CSV: date, amount, currency, reference, payer, bank_txn_id.")


class BankStatementViewSet(RecordViewSet):
    """Bank statements: POST a CSV file (multipart `file`); lines are matched, booked or queued."""

    queryset = BankStatement.objects.order_by("-created_at")
    serializer_class = BankStatementSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    max_upload_setting = "TARIFA_MAX_STATEMENT_FILE_BYTES"  # checked before the body is read

    @classmethod
    def unsupported_actions(cls):
        return {"update", "partial_update", "destroy"}

    @extend_schema(request={"multipart/form-data": BankStatementUploadSerializer},
                   responses={201: BankStatementSerializer})
    def create(self, request, *args, **kwargs):
        body = BankStatementUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        upload = body.validated_data["file"]
        statement = services.import_statement(actor=request.user, filename=upload.name, content=upload.read())
        return Response(BankStatementSerializer(statement).data, status=status.HTTP_201_CREATED)


class StatementLineSerializer(serializers.ModelSerializer):
    statement = serializers.SlugRelatedField(slug_field="number", read_only=True)
    amount = serializers.DecimalField(**DECIMAL)
    payment = serializers.SlugRelatedField(slug_field="number", read_only=True)
    billing_account_number = serializers.CharField(source="billing_account.number", read_only=True, default=None)

    class Meta:
        model = BankStatementLine
        fields = ["id", "statement", "line_no", "state", "reason", "value_date", "amount", "currency", "reference",
                  "payer", "bank_txn_id", "billing_account", "billing_account_number", "payment", "duplicate_of",
                  "matched_by", "raw"]
        read_only_fields = fields


class AssignLineSerializer(StrictSerializer):
    account = serializers.CharField(max_length=64, help_text="Billing account id or number.")


class StatementLineViewSet(RecordViewSet):
    """Statement lines; the unmatched queue is `?state=unmatched`. assign/ books one, ignore/ drops it."""

    queryset = BankStatementLine.objects.select_related("statement", "billing_account", "payment").order_by(
        "-created_at", "line_no")
    serializer_class = StatementLineSerializer
    filterset_fields = ["statement", "state", "bank_txn_id", "currency"]

    @extend_schema(request=AssignLineSerializer, responses=StatementLineSerializer)
    @action(detail=True, methods=["post"], required_permission="payments.resolve_statement_line")
    def assign(self, request, pk=None):
        body = AssignLineSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        line = services.assign_line(self.get_object(), actor=request.user, account=body.validated_data["account"])
        return Response(StatementLineSerializer(self.get_queryset().get(pk=line.pk)).data)

    @extend_schema(request=PaymentReasonSerializer, responses=StatementLineSerializer)
    @action(detail=True, methods=["post"], required_permission="payments.resolve_statement_line")
    def ignore(self, request, pk=None):
        body = PaymentReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        line = services.ignore_line(self.get_object(), actor=request.user, reason=body.validated_data["reason"])
        return Response(StatementLineSerializer(self.get_queryset().get(pk=line.pk)).data)


# --- vouchers ------------------------------------------------------------------------------------------

class VoucherBatchSerializer(serializers.ModelSerializer):
    nominal = serializers.DecimalField(**DECIMAL)
    redeemed = serializers.SerializerMethodField()

    class Meta:
        model = VoucherBatch
        fields = ["id", "number", "count", "nominal", "currency", "expires_on", "state", "sold_to", "sale_transfer",
                  "activated_at", "note", "redeemed", "created_at"]
        read_only_fields = fields

    def get_redeemed(self, batch) -> int:
        return batch.vouchers.filter(state=Voucher.State.REDEEMED).count()


class VoucherCardSerializer(serializers.Serializer):
    serial = serializers.CharField()
    code = serializers.CharField()


class GeneratedBatchSerializer(VoucherBatchSerializer):
    cards = VoucherCardSerializer(many=True, read_only=True, source="generated_cards",
                                  help_text="The codes, shown this once: only their HMAC is stored.")

    class Meta(VoucherBatchSerializer.Meta):
        nested_parts = ["cards"]  # the codes just generated, for their generator (tarifa.web.api_nesting)
        fields = VoucherBatchSerializer.Meta.fields + ["cards"]
        read_only_fields = fields


class VoucherBatchCreateSerializer(StrictSerializer):
    count = serializers.IntegerField(min_value=1, max_value=100_000)
    nominal = AmountField()
    currency = serializers.ChoiceField(choices=CURRENCY_CHOICES)
    expires_on = serializers.DateField()
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True)


class SellBatchSerializer(StrictSerializer):
    paid_via = serializers.ChoiceField(choices=[("cash", "cash"), ("bank", "bank"), ("dealer", "dealer")])
    sold_to = serializers.CharField(max_length=200, required=False, allow_blank=True)
    desk = DeskRefField(required=False)


class VoucherBatchViewSet(RecordViewSet):
    """Voucher batches. POST generates one and answers its codes this once (not stored, not replayed);
    sell/ activates it (books its value into voucher_liability)."""

    queryset = VoucherBatch.objects.order_by("-created_at")
    serializer_class = VoucherBatchSerializer
    filterset_fields = ["state", "currency"]

    @classmethod
    def unsupported_actions(cls):
        return {"update", "partial_update", "destroy"}

    @extend_schema(request=VoucherBatchCreateSerializer, responses={201: GeneratedBatchSerializer})
    def create(self, request, *args, **kwargs):
        body = VoucherBatchCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        batch, cards = services.generate_batch(actor=request.user, **body.validated_data)
        batch.generated_cards = [{"serial": s, "code": c} for s, c in cards]
        response = Response(GeneratedBatchSerializer(batch).data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(request=SellBatchSerializer, responses=VoucherBatchSerializer)
    @action(detail=True, methods=["post"], required_permission="payments.sell_voucherbatch")
    def sell(self, request, pk=None):
        body = SellBatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        batch = services.sell_batch(self.get_object(), actor=request.user, **body.validated_data)
        return Response(VoucherBatchSerializer(batch).data)


class VoucherSerializer(serializers.ModelSerializer):
    batch = serializers.SlugRelatedField(slug_field="number", read_only=True)
    payment = serializers.SlugRelatedField(slug_field="number", read_only=True)

    class Meta:
        model = Voucher
        fields = ["id", "serial", "batch", "state", "redeemed_at", "billing_account", "payment"]
        read_only_fields = fields


class RedeemSerializer(StrictSerializer):
    account = serializers.CharField(max_length=64, help_text="Billing account id or number.")
    code = serializers.CharField(max_length=64, help_text="The scratched code (spaces and dashes are ignored).")


class VoucherViewSet(RecordViewSet):
    """Vouchers (serials and states; codes are never stored). redeem/ credits an account once."""

    queryset = Voucher.objects.select_related("batch", "payment").order_by("serial")
    serializer_class = VoucherSerializer
    filterset_fields = ["batch", "state", "serial"]

    @extend_schema(request=RedeemSerializer, responses={201: PaymentSerializer,
                                                        429: OpenApiResponse(description="voucher_throttled")})
    @action(detail=False, methods=["post"], required_permission="payments.redeem_voucher")
    def redeem(self, request):
        """Redeem a code to an account. Optional `Idempotency-Key`: a retry returns the same payment.
        After 5 failures in 15 minutes (per account or client address) → 429 voucher_throttled."""
        body = RedeemSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key")
        payment = services.redeem_voucher(actor=request.user, account=body.validated_data["account"],
                                          code=body.validated_data["code"],
                                          idempotency_key=f"{request.user.pk}:{key}" if key else None)
        return Response(PaymentSerializer(payment).data, status=status.HTTP_201_CREATED)


def _register():
    router.register("payments", PaymentViewSet, basename="payment")
    router.register("refunds", RefundViewSet, basename="refund")
    router.register("cash-desks", CashDeskViewSet, basename="cashdesk")
    router.register("shifts", ShiftViewSet, basename="cashiershift")
    router.register("cash-handovers", HandoverViewSet, basename="cashhandover")
    router.register("payment-gateways", GatewayViewSet, basename="paymentgateway")
    router.register("terminal-transactions", TerminalTransactionViewSet, basename="terminaltransaction")
    router.register("card-checkouts", CardCheckoutViewSet, basename="cardcheckout")
    router.register("payment-methods", PaymentMethodViewSet, basename="storedpaymentmethod")
    router.register("autopay-agreements", AutoPayAgreementViewSet, basename="autopayagreement")
    router.register("autopay-runs", AutoPayRunViewSet, basename="autopayrun")
    router.register("bank-statements", BankStatementViewSet, basename="bankstatement")
    router.register("bank-statement-lines", StatementLineViewSet, basename="bankstatementline")
    router.register("voucher-batches", VoucherBatchViewSet, basename="voucherbatch")
    router.register("vouchers", VoucherViewSet, basename="voucher")


_register()
