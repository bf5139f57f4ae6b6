"""REST API of billing accounts and the ledger.

/accounts/ (+ switch-mode/, adjust/, transfer/, close/), /transfers/ (+ reverse/),
/holds/ (+ post/, void/), /ledger-accounts/; and /customers/ is re-registered so that
registering a customer opens their first billing account.

Amounts are decimal strings ("10.00"); numbers (10.5) are refused, so no float ever
touches money. Money-moving POSTs need an `Idempotency-Key` header (web.idempotency).
Balances and totals are decimal strings with 6 places (the ledger's exactness).
"""

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.crm.api import CustomerCreateSerializer, CustomerSerializer, CustomerViewSet
from tarifa.crm.models import Customer
from tarifa.kernel.errors import ValidationFailed
from tarifa.kernel.money import CURRENCY_CHOICES
from tarifa.web.api import AmountField, RecordViewSet, StrictSerializer, register_endpoint, router
from tarifa.web.idempotency import idempotent, service_key

from . import services
from .filters import TransferFilter
from .models import BillingAccount, Hold, LedgerAccount, Transfer


DECIMAL = {"max_digits": 20, "decimal_places": 6, "read_only": True}


# --- billing accounts ------------------------------------------------------------------------

class BillingAccountSerializer(serializers.ModelSerializer):
    customer_number = serializers.CharField(source="customer.number", read_only=True)
    ledger_account = serializers.CharField(source="ledger_account.code", read_only=True)
    credit_limit = AmountField(read_only=True)
    balance = serializers.DecimalField(source="ledger_account.balance", **DECIMAL)
    available = serializers.DecimalField(source="ledger_account.available", **DECIMAL)
    debits_posted = serializers.DecimalField(source="ledger_account.debits_posted", **DECIMAL)
    credits_posted = serializers.DecimalField(source="ledger_account.credits_posted", **DECIMAL)
    debits_pending = serializers.DecimalField(source="ledger_account.debits_pending", **DECIMAL)

    class Meta:
        model = BillingAccount
        fields = ["id", "number", "customer", "customer_number", "currency", "payment_mode", "credit_limit", "status",
                  "balance", "available", "debits_posted", "credits_posted", "debits_pending", "ledger_account",
                  "branch", "created_at", "closed_at"]
        read_only_fields = fields


class AccountCreateSerializer(StrictSerializer):
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all())
    currency = serializers.ChoiceField(choices=CURRENCY_CHOICES)
    payment_mode = serializers.ChoiceField(choices=BillingAccount.PaymentMode.choices, required=False)
    credit_limit = AmountField(non_negative=True, required=False)


class AccountUpdateSerializer(StrictSerializer):
    credit_limit = AmountField(non_negative=True)


class SwitchPaymentModeAnswerSerializer(BillingAccountSerializer):
    """The account after the switch, and what the switch settled in flight."""

    settled_sessions = serializers.IntegerField(
        read_only=True, help_text="Open online charging sessions settled at what they reported (their holds released).")
    notes = serializers.ListField(child=serializers.CharField(), read_only=True,
                                  help_text="What the switch settled, in words for the operator.")

    class Meta(BillingAccountSerializer.Meta):
        fields = [*BillingAccountSerializer.Meta.fields, "settled_sessions", "notes"]


class SwitchPaymentModeSerializer(StrictSerializer):
    payment_mode = serializers.ChoiceField(choices=BillingAccount.PaymentMode.choices)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class AdjustBalanceSerializer(StrictSerializer):
    amount = AmountField(help_text="Signed: positive credits the customer, negative debits them.")
    reason = serializers.CharField(max_length=500)


class TransferFundsSerializer(StrictSerializer):
    target = serializers.PrimaryKeyRelatedField(queryset=BillingAccount.objects.all())
    amount = AmountField(positive=True)
    reason = serializers.CharField(max_length=500)


class ReverseTransferSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500)


class CloseAccountSerializer(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class VoidHoldSerializer(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class TransferSerializer(serializers.ModelSerializer):
    debit_account_code = serializers.CharField(source="debit_account.code", read_only=True)
    credit_account_code = serializers.CharField(source="credit_account.code", read_only=True)
    amount = serializers.DecimalField(**DECIMAL)
    reversed_by = serializers.SerializerMethodField()

    class Meta:
        model = Transfer
        fields = ["id", "kind", "amount", "currency", "debit_account", "debit_account_code", "credit_account",
                  "credit_account_code", "tags", "reference_type", "reference_id", "idempotency_key", "reverses",
                  "reversed_by", "pending", "memo", "actor", "branch", "created_at"]
        read_only_fields = fields

    def get_reversed_by(self, transfer) -> str | None:
        reversal = Transfer.objects.filter(reverses=transfer).values_list("pk", flat=True).first()
        return str(reversal) if reversal else None


def _transfer_response(transfer, request, *, created=True):
    return Response(TransferSerializer(transfer, context={"request": request}).data,
                    status=status.HTTP_201_CREATED if created and not transfer.replayed else status.HTTP_200_OK)


def _key_or_refuse(request):
    key = service_key(request)
    if key is None:  # @idempotent(required=True) already refused; this is a guard
        raise ValidationFailed("Send an Idempotency-Key header.", code="idempotency_key_required")
    return key


class AccountViewSet(RecordViewSet):
    """Billing accounts. `balance` = credits − debits posted (negative: the customer owes);
    `available` also subtracts pending holds. PATCH changes the credit limit only."""

    queryset = BillingAccount.objects.select_related("ledger_account", "customer").order_by("number")
    serializer_class = BillingAccountSerializer
    filterset_fields = ["customer", "currency", "payment_mode", "status", "number"]
    search_fields = ["number", "customer__number"]
    ordering_fields = ["number", "created_at"]

    def get_serializer_class(self):
        if self.action == "create":
            return AccountCreateSerializer
        if self.action in ("update", "partial_update"):
            return AccountUpdateSerializer
        return BillingAccountSerializer

    def create_service(*, actor, customer, currency, payment_mode="prepaid", credit_limit=0):
        return services.open_account(actor=actor, customer=customer, currency=currency, payment_mode=payment_mode,
                                     credit_limit=credit_limit)

    def update_service(account, *, actor, credit_limit=None):
        if credit_limit is None:
            return account
        return services.set_credit_limit(account, actor=actor, credit_limit=credit_limit)

    @idempotent(required=False)
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    def _read(self, account):
        account = self.get_queryset().get(pk=account.pk)
        return Response(BillingAccountSerializer(account, context=self.get_serializer_context()).data)

    @extend_schema(request=SwitchPaymentModeSerializer, responses=SwitchPaymentModeAnswerSerializer)
    @action(detail=True, methods=["post"], url_path="switch-mode", required_permission="ledger.switch_payment_mode")
    @idempotent(required=False)
    def switch_mode(self, request, pk=None):
        """Switch prepaid ↔ postpaid from today; the history keeps the earlier mode."""
        body = SwitchPaymentModeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        account = services.switch_payment_mode(self.get_object(), actor=request.user, **body.validated_data)
        effects = account.mode_change.effects
        read = self.get_queryset().get(pk=account.pk)
        read.settled_sessions = int(effects.get("settled_sessions", 0))
        read.notes = list(effects.get("notes", []))
        return Response(SwitchPaymentModeAnswerSerializer(read, context=self.get_serializer_context()).data)

    @extend_schema(request=AdjustBalanceSerializer, responses={201: TransferSerializer})
    @action(detail=True, methods=["post"], required_permission="ledger.adjust")
    @idempotent
    def adjust(self, request, pk=None):
        """A manual correction with a reason: positive credits the account, negative debits it."""
        body = AdjustBalanceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        transfer = services.adjust(actor=request.user, account=self.get_object(),
                                   idempotency_key=_key_or_refuse(request), **body.validated_data)
        return _transfer_response(transfer, request)

    @extend_schema(request=TransferFundsSerializer, responses={201: TransferSerializer})
    @action(detail=True, methods=["post"], required_permission="ledger.transfer_funds")
    @idempotent
    def transfer(self, request, pk=None):
        """Move money this account has to another account of the same customer, same currency."""
        body = TransferFundsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        transfer = services.transfer_between_accounts(actor=request.user, source=self.get_object(),
                                                      target=data["target"], amount=data["amount"],
                                                      reason=data["reason"], idempotency_key=_key_or_refuse(request))
        return _transfer_response(transfer, request)

    @extend_schema(request=CloseAccountSerializer, responses=BillingAccountSerializer)
    @action(detail=True, methods=["post"], required_permission="ledger.close_account")
    @idempotent(required=False)
    def close(self, request, pk=None):
        """Close an account with a zero balance and no pending holds."""
        body = CloseAccountSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        account = services.close_account(self.get_object(), actor=request.user,
                                         reason=body.validated_data.get("reason", ""))
        return self._read(account)


# --- transfers ------------------------------------------------------------------------------------

class TransferViewSet(RecordViewSet):
    """Ledger transfers (never changed). Filter by kind, currency, `account` / `billing_account`
    (either side), `date_from`/`date_to`, `tag=name:value`, reference."""

    # Newest first by the time-ordered primary key: ordering by created_at sorted every transfer
    # (3 s at 0.5 M); `?ordering=-created_at` is still offered.
    queryset = Transfer.objects.select_related("debit_account", "credit_account").order_by("-id")
    serializer_class = TransferSerializer
    filterset_class = TransferFilter
    ordering_fields = ["created_at", "amount"]

    @extend_schema(request=ReverseTransferSerializer, responses={201: TransferSerializer})
    @action(detail=True, methods=["post"], required_permission="ledger.reverse_transfer")
    @idempotent
    def reverse(self, request, pk=None):
        """Book the reversing transfer (at most once per transfer)."""
        body = ReverseTransferSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reversal = services.reverse_transfer(self.get_object(), actor=request.user,
                                             reason=body.validated_data["reason"],
                                             idempotency_key=_key_or_refuse(request))
        return _transfer_response(reversal, request)


# --- holds -------------------------------------------------------------------------------------------

class HoldSerializer(serializers.ModelSerializer):
    debit_account_code = serializers.CharField(source="debit_account.code", read_only=True)
    credit_account_code = serializers.CharField(source="credit_account.code", read_only=True)
    amount = serializers.DecimalField(**DECIMAL)
    posting = serializers.SerializerMethodField()

    class Meta:
        model = Hold
        fields = ["id", "state", "amount", "currency", "kind", "debit_account", "debit_account_code", "credit_account",
                  "credit_account_code", "tags", "reference_type", "reference_id", "idempotency_key", "memo", "actor",
                  "created_at", "expires_at", "resolved_at", "resolved_by", "resolution_note", "posting"]
        read_only_fields = fields

    def get_posting(self, hold) -> str | None:
        posting = Transfer.objects.filter(pending=hold).values_list("pk", flat=True).first()
        return str(posting) if posting else None


class HoldCreateSerializer(StrictSerializer):
    account = serializers.PrimaryKeyRelatedField(queryset=BillingAccount.objects.select_related("ledger_account"),
                                                 help_text="The billing account whose money is held.")
    credit_account = serializers.CharField(max_length=100, help_text="Code of the system account that posting "
                                                                     "credits, e.g. revenue:voice.")
    amount = AmountField(positive=True)
    currency = serializers.ChoiceField(choices=CURRENCY_CHOICES, required=False,
                                       help_text="Default: the account's; another one is refused.")
    expires_at = serializers.DateTimeField(required=False)
    kind = serializers.ChoiceField(choices=Transfer.Kind.choices, required=False)
    tags = serializers.DictField(required=False)
    memo = serializers.CharField(required=False, allow_blank=True, max_length=500)


class PostHoldSerializer(StrictSerializer):
    amount = AmountField(positive=True, required=False, help_text="Default: all of the hold.")
    memo = serializers.CharField(required=False, allow_blank=True, max_length=500)


class HoldViewSet(RecordViewSet):
    """Holds (pending transfers): create, then post (all or less), void — or they expire."""

    queryset = Hold.objects.select_related("debit_account", "credit_account").order_by("-created_at", "-id")
    serializer_class = HoldSerializer
    filterset_fields = ["state", "currency", "debit_account", "credit_account", "kind"]

    def get_serializer_class(self):
        return HoldCreateSerializer if self.action == "create" else HoldSerializer

    @classmethod
    def unsupported_actions(cls):
        return {"update", "partial_update", "destroy"}  # create is its own view below (it needs the request)

    @extend_schema(request=HoldCreateSerializer, responses={201: HoldSerializer})
    @idempotent
    def create(self, request, *args, **kwargs):
        body = HoldCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        account = data.pop("account")
        currency = data.pop("currency", account.currency)
        credit = services.system_account(data.pop("credit_account"), account.currency)
        hold = services.create_hold(actor=request.user, debit=account, credit=credit, currency=currency,
                                    idempotency_key=_key_or_refuse(request), **data)
        hold = self.get_queryset().get(pk=hold.pk)
        return Response(HoldSerializer(hold).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PostHoldSerializer, responses={201: TransferSerializer})
    @action(detail=True, methods=["post"], url_path="post", url_name="post", required_permission="ledger.post_hold")
    @idempotent
    def post_hold(self, request, pk=None):
        """Post the hold: one transfer of the amount (default all of it); the rest is released."""
        body = PostHoldSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        transfer = services.post_hold(self.get_object(), actor=request.user, idempotency_key=_key_or_refuse(request),
                                      **body.validated_data)
        return _transfer_response(transfer, request)

    @extend_schema(request=VoidHoldSerializer, responses=HoldSerializer)
    @action(detail=True, methods=["post"], required_permission="ledger.void_hold")
    @idempotent
    def void(self, request, pk=None):
        """Release the hold."""
        body = VoidHoldSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        hold = services.void_hold(self.get_object(), actor=request.user, reason=body.validated_data.get("reason", ""))
        return Response(HoldSerializer(self.get_queryset().get(pk=hold.pk)).data)


# --- ledger accounts ---------------------------------------------------------------------------------

class LedgerAccountSerializer(serializers.ModelSerializer):
    balance = serializers.DecimalField(**DECIMAL)
    debits_posted = serializers.DecimalField(**DECIMAL)
    credits_posted = serializers.DecimalField(**DECIMAL)
    debits_pending = serializers.DecimalField(**DECIMAL)
    credits_pending = serializers.DecimalField(**DECIMAL)

    class Meta:
        model = LedgerAccount
        fields = ["id", "code", "kind", "currency", "name", "balance", "debits_posted", "credits_posted",
                  "debits_pending", "credits_pending", "branch", "created_at"]
        read_only_fields = fields


class LedgerAccountCreateSerializer(StrictSerializer):
    code = serializers.CharField(max_length=100)
    currency = serializers.ChoiceField(choices=CURRENCY_CHOICES)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)


class LedgerAccountViewSet(RecordViewSet):
    """Every ledger account with its running totals. POST makes a system account (get-or-create)."""

    queryset = LedgerAccount.objects.order_by("code", "currency")
    serializer_class = LedgerAccountSerializer
    filterset_fields = ["kind", "currency", "code"]
    search_fields = ["code", "name"]

    def get_serializer_class(self):
        return LedgerAccountCreateSerializer if self.action == "create" else LedgerAccountSerializer

    def create_service(*, actor, code, currency, name=""):
        return services.system_account(code, currency, name=name)

    def get_serializer_class_for_read(self):
        return LedgerAccountSerializer


# --- customers: registration opens the first account ---------------------------------------------

class FirstAccountSerializer(StrictSerializer):
    currency = serializers.ChoiceField(choices=CURRENCY_CHOICES, required=False)
    payment_mode = serializers.ChoiceField(choices=BillingAccount.PaymentMode.choices, required=False)
    credit_limit = AmountField(non_negative=True, required=False)


class AccountSummarySerializer(serializers.ModelSerializer):
    balance = serializers.DecimalField(source="ledger_account.balance", **DECIMAL)

    class Meta:
        model = BillingAccount
        fields = ["id", "number", "currency", "payment_mode", "status", "balance"]
        read_only_fields = fields


class CustomerWithAccountsSerializer(CustomerSerializer):
    billing_accounts = serializers.SerializerMethodField()

    class Meta(CustomerSerializer.Meta):
        fields = CustomerSerializer.Meta.fields + ["billing_accounts"]

    @extend_schema_field(AccountSummarySerializer(many=True))
    def get_billing_accounts(self, customer) -> list[dict]:
        accounts = customer.billing_accounts.select_related("ledger_account").order_by("number")
        return AccountSummarySerializer(accounts, many=True).data


class RegisterCustomerSerializer(CustomerCreateSerializer):
    account = FirstAccountSerializer(required=False, help_text="The first billing account (default: "
                                                               "TARIFA_DEFAULT_CURRENCY, prepaid, no credit).")

    class Meta(CustomerCreateSerializer.Meta):
        fields = CustomerCreateSerializer.Meta.fields + ["account"]


class RegisteringCustomerViewSet(CustomerViewSet):
    """Customers. Creating one also opens their first billing account (`account` in the body)."""

    serializer_class = CustomerWithAccountsSerializer

    def get_serializer_class(self):
        if self.action == "create":
            return RegisterCustomerSerializer
        cls = super().get_serializer_class()
        return CustomerWithAccountsSerializer if cls is CustomerSerializer else cls

    def create_service(*, actor, account=None, **data):
        return services.register_customer(actor=actor, **(account or {}), **data)


class LedgerCheckView(APIView):
    """The ledger check (every invariant, as `tarifa ledger check` prints it: {"ok", "transfers",
    "holds", "moved": {currency: total}, "checks", "problems": [{"check", <offender>, "detail"}]}).

    It reads every transfer, so it runs as a background task: POST starts one (or answers the
    one under way) with 202, its URL in `url` and `Location` — GET that for the state, progress
    and, when it succeeded, the report in `result`. GET here answers the last report at once:
    {"last": {"task", "finished_at", "result"} or null, "under_way": task or null}."""

    required_permission = "ledger.view_ledgeraccount"

    @extend_schema(request=None, responses={200: {"type": "object"}})
    def get(self, request):
        from tarifa.web import background

        from . import tasks  # noqa: F401  (registers the task kind)

        last, under_way = background.latest("ledger.check"), background.running("ledger.check")
        return Response({
            "last": {"task": str(last.pk), "finished_at": last.finished_at.isoformat(), "result": last.result}
            if last else None,
            "under_way": background.describe(under_way, request) if under_way else None})

    @extend_schema(request=None, responses={202: {"type": "object"}})
    def post(self, request):
        from tarifa.web import background

        from . import tasks  # noqa: F401

        task = background.running("ledger.check")
        if task is None or not background.can_see(request.user, task):
            task = background.start("ledger.check", actor=request.user)
        body = background.describe(task, request)
        return Response(body, status=202, headers={"Location": body["url"]})


def _register():
    register_endpoint("ledger/check/", LedgerCheckView.as_view(), "ledger-check", "ledger.view_ledgeraccount")
    router.registry[:] = [entry for entry in router.registry if entry[0] != "customers"]
    router.register("customers", RegisteringCustomerViewSet, basename="customer")
    router.register("accounts", AccountViewSet, basename="billingaccount")
    router.register("transfers", TransferViewSet, basename="transfer")
    router.register("holds", HoldViewSet, basename="hold")
    router.register("ledger-accounts", LedgerAccountViewSet, basename="ledgeraccount")


_register()
