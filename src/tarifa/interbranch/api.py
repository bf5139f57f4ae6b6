"""REST API of serving other branches' subscribers.

/foreign-payments/ (POST takes a payment for another branch's subscriber: `Idempotency-Key` required;
POST …/<id>/refund/ pays a refused one back), /received-payments/ (what other branches took for this
branch's subscribers, as applied here), /federation/search/?q= and /federation/subscribers/<branch>/<number>/
(cross-branch reads)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.ledger.api import AmountField
from tarifa.payments.api import ChannelField, request_key
from tarifa.web.api import RecordViewSet, StrictSerializer, register_endpoint, router
from tarifa.web.idempotency import idempotent

from . import selectors, services
from .models import ForeignPayment, ReceivedPayment

DECIMAL = {"max_digits": 20, "decimal_places": 6, "read_only": True}


class ForeignPaymentSerializer(serializers.ModelSerializer):
    amount = serializers.DecimalField(**DECIMAL)
    received_into = serializers.CharField(source="debit_account.code", read_only=True)
    desk = serializers.SlugRelatedField(slug_field="code", read_only=True)
    message_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = ForeignPayment
        fields = ["id", "number", "owner_branch", "account_number", "amount", "currency", "channel", "status",
                  "received_into", "desk", "transfer", "message_id", "payer", "memo", "received_at", "actor",
                  "remote_payment_number", "resolved_at", "refusal_code", "refusal_message", "refused_transfer",
                  "refund_transfer", "refunded_at", "refund_reason", "branch", "created_at"]
        read_only_fields = fields


class ForeignPaymentCreateSerializer(StrictSerializer):
    account = serializers.CharField(max_length=64, help_text="The account number at its owner branch (B1-A0000001).")
    branch = serializers.CharField(max_length=16, required=False, allow_blank=True,
                                   help_text="The owner branch; default: the account number's prefix.")
    amount = AmountField(help_text="A decimal string, e.g. \"10.00\".")
    currency = serializers.CharField(max_length=3, required=False, help_text="Default: this installation's currency.")
    channel = ChannelField()
    payer = serializers.CharField(max_length=200, required=False, allow_blank=True)
    memo = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    received_at = serializers.DateTimeField(required=False)


class RefundSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class ForeignPaymentViewSet(RecordViewSet):
    """Payments taken here for subscribers of other branches: pending until the owner applies them, then
    applied (with the owner's payment number) or refused (then refunded here)."""

    queryset = ForeignPayment.objects.select_related("debit_account", "desk").order_by("-created_at", "-id")
    serializer_class = ForeignPaymentSerializer
    filterset_fields = ["status", "owner_branch", "account_number", "channel", "currency", "number"]
    search_fields = ["number", "account_number", "remote_payment_number", "payer"]
    ordering_fields = ["created_at", "amount", "received_at"]

    @classmethod
    def unsupported_actions(cls):
        return {"update", "partial_update", "destroy"}

    @extend_schema(request=ForeignPaymentCreateSerializer, responses={201: ForeignPaymentSerializer})
    @idempotent
    def create(self, request, *args, **kwargs):
        body = ForeignPaymentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        fp = services.take_foreign_payment(actor=request.user, idempotency_key=request_key(request),
                                           account=data.pop("account"), **data)
        return Response(ForeignPaymentSerializer(fp).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RefundSerializer, responses=ForeignPaymentSerializer)
    @action(detail=True, methods=["post"], required_permission="interbranch.refund_foreignpayment")
    @idempotent(required=False)
    def refund(self, request, pk=None):
        """Pay a payment the owner refused back to the payer (once)."""
        body = RefundSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fp = services.refund_foreign_payment(self.get_object(), actor=request.user,
                                             reason=body.validated_data.get("reason", ""))
        return Response(ForeignPaymentSerializer(fp).data)


class ReceivedPaymentSerializer(serializers.ModelSerializer):
    amount = serializers.DecimalField(**DECIMAL)
    billing_account_number = serializers.CharField(source="billing_account.number", read_only=True)
    payment_number = serializers.CharField(source="payment.number", read_only=True)

    class Meta:
        model = ReceivedPayment
        fields = ["id", "sender", "remote_id", "remote_number", "billing_account", "billing_account_number",
                  "payment", "payment_number", "amount", "currency", "received_at", "created_at"]
        read_only_fields = fields


class ReceivedPaymentViewSet(RecordViewSet):
    """Payments other branches took for this branch's subscribers, as applied here (one each)."""

    queryset = ReceivedPayment.objects.select_related("billing_account", "payment").order_by("-created_at", "-id")
    serializer_class = ReceivedPaymentSerializer
    filterset_fields = ["sender", "currency", "billing_account"]
    search_fields = ["remote_number", "billing_account__number", "payment__number"]


router.register("foreign-payments", ForeignPaymentViewSet, basename="foreignpayment")
router.register("received-payments", ReceivedPaymentViewSet, basename="receivedpayment")


class SearchResultSerializer(serializers.Serializer):
    branch = serializers.CharField()
    customer = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()
    matched = serializers.CharField()
    accounts = serializers.ListField(child=serializers.CharField())


class SearchAnswerSerializer(serializers.Serializer):
    q = serializers.CharField()
    results = SearchResultSerializer(many=True)
    unreachable = serializers.DictField(child=serializers.CharField())
    asked = serializers.ListField(child=serializers.CharField())


class FederationSearchAPI(APIView):
    """Find a subscriber anywhere in the federation by an exact customer, account, subscription or contract
    number, phone number or login (`?q=`): this branch's and every other branch's (asked concurrently, 2 s
    each); results carry their owner branch; branches that did not answer are listed in `unreachable`."""

    required_permission = "interbranch.view_subscribercard"

    @extend_schema(parameters=[OpenApiParameter("q", str, description="The exact number, phone or login.")],
                   responses=SearchAnswerSerializer)
    def get(self, request):
        return Response(selectors.search_federation(str(request.query_params.get("q", ""))[:100]))


class CardAnswerSerializer(serializers.Serializer):
    branch = serializers.CharField()
    number = serializers.CharField()
    live = serializers.BooleanField(help_text="True: the owner answered now; false: `card` is the last known one "
                                              "(stale since `fetched_at`) or null.")
    card = serializers.DictField(allow_null=True)
    fetched_at = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    not_found = serializers.BooleanField()
    pending = serializers.ListField(child=serializers.DictField(),
                                    help_text="Foreign payments taken here that the owner has not applied yet.")


class SubscriberCardAPI(APIView):
    """A subscriber's card at its owner branch (customer, accounts and balances, subscriptions and states):
    live when the owner answers within 2 s, else the last known card marked stale (`live: false`), plus the
    foreign payments pending here for them. 404 when the owner answers that it has no such subscriber and
    nothing is known here."""

    required_permission = "interbranch.view_subscribercard"

    @extend_schema(responses={200: CardAnswerSerializer})
    def get(self, request, branch, number):
        view = selectors.foreign_card(branch, number)
        if view["not_found"] and not view["card"]:
            raise NotFound(f"Branch {branch} has no subscriber {number}.", code="subscriber_not_found")
        return Response(view)


def _card_sample():
    from tarifa.crm.models import Customer
    from tarifa.federation import selectors as federation

    customer = Customer.objects.order_by("number").first()
    return {"branch": federation.own_code(), "number": customer.number if customer else "X"}


register_endpoint("federation/search/", FederationSearchAPI.as_view(), "federation-search",
                  "interbranch.view_subscribercard")
register_endpoint("federation/subscribers/<str:branch>/<str:number>/", SubscriberCardAPI.as_view(),
                  "federation-subscriber", "interbranch.view_subscribercard", sample=_card_sample)
