"""Two APIs.

Staff (`/api/v1/portal-users/`, the staff API's token and permissions): portal logins.

The portal API for the mobile app (`/api/portal/v1/`, its own schema at `/api/portal/v1/schema/`):
portal tokens only (`POST auth/token/`), never a staff token, and a portal token is refused by
the staff API. Every answer is scoped by `Scope` exactly as the pages are: another customer's
record by id, or as a list filter, is a 404.
"""

import uuid

from django.http import HttpResponse
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.billing import documents
from tarifa.crm.models import Customer
from tarifa.web.api import RecordViewSet, StrictModelSerializer, StrictSerializer, router
from tarifa.web.middleware import client_ip
from tarifa.web.pagination import Pagination

from . import helpdesk, network, services
from .models import Department, PortalUser
from .scope import Scope

# Staff: portal logins ------------------------------------------------------------------------------


class PortalUserSerializer(StrictModelSerializer):
    customer = serializers.SlugRelatedField(slug_field="number", queryset=Customer.objects.all(),
                                            help_text="The customer's number (or use its id in `customer_id`).")
    password = serializers.CharField(write_only=True, style={"input_type": "password"})
    departments = serializers.PrimaryKeyRelatedField(queryset=Department.objects.all(), many=True, required=False)

    class Meta:
        model = PortalUser
        fields = ["id", "customer", "login", "password", "name", "role", "language", "departments", "notify_email",
                  "notify_sms", "totp_enabled", "last_login_at", "created_at", "archived_at"]
        read_only_fields = ["totp_enabled", "last_login_at", "created_at", "archived_at"]
        extra_kwargs = {"login": {"validators": []}}

    def to_internal_value(self, data):
        # The customer by its number or its id.
        if isinstance(data, dict) and isinstance(data.get("customer"), str):
            try:
                found = Customer.objects.filter(pk=uuid.UUID(data["customer"])).first()
            except ValueError:
                found = None
            if found is not None:
                data = {**data, "customer": found.number}
        return super().to_internal_value(data)


class PortalUserUpdateSerializer(PortalUserSerializer):
    class Meta(PortalUserSerializer.Meta):
        fields = ["name", "role", "language", "departments", "notify_email", "notify_sms"]


class PortalUserViewSet(RecordViewSet):
    """Portal logins of customers. POST `{"customer", "login", "password"}` creates one."""

    queryset = PortalUser.objects.select_related("customer").prefetch_related("departments").order_by("login")
    serializer_class = PortalUserSerializer
    filterset_fields = ["customer", "role"]
    search_fields = ["login", "name"]

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return PortalUserUpdateSerializer
        return PortalUserSerializer

    def get_serializer_class_for_read(self):
        return PortalUserSerializer

    def create_service(*, actor, departments=(), **data):
        return services.create_portal_user(actor=actor, departments=list(departments or ()), **data)

    def update_service(user, *, actor, departments=None, **data):
        return services.update_portal_user(user, actor=actor, departments=list(departments)
                                           if departments is not None else None, **data)

    def archive_service(user, *, actor, reason=""):
        return services.archive_portal_user(user, actor=actor, reason=reason)


router.register("portal-users", PortalUserViewSet, basename="portaluser")


# The portal API --------------------------------------------------------------------------------------

class PortalTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer tpp_…` — a portal token. Anything else (a staff token) is refused."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        parts = header.split()
        if not parts or parts[0] != self.keyword:
            return None
        if len(parts) != 2 or not parts[1].isascii() or not parts[1].isprintable():
            raise exceptions.AuthenticationFailed("Malformed Authorization header: expected 'Bearer <token>'.")
        user = services.token_user(parts[1])
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked portal token.")
        return user, None

    def authenticate_header(self, request):
        return self.keyword


class IsPortalUser(BasePermission):
    def has_permission(self, request, view):
        if not isinstance(request.user, PortalUser):
            raise exceptions.NotAuthenticated()
        if view.right and not Scope(request.user).can(view.right):
            raise exceptions.NotFound()
        return True


class PortalAPIView(APIView):
    pagination_class = Pagination  # for the lists (`paged`), documented by their many=True serializers
    authentication_classes = [PortalTokenAuthentication]
    permission_classes = [IsPortalUser]
    right: str | None = None
    allowed_params: set = set()

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        unknown = set(request.query_params) - self.allowed_params
        if unknown:
            raise exceptions.ValidationError({name: ["Unknown query parameter."] for name in sorted(unknown)})
        self.scope = Scope(request.user) if isinstance(request.user, PortalUser) else None

    def dispatch(self, request, *args, **kwargs):
        with services.client_context(client_ip(request)):
            return super().dispatch(request, *args, **kwargs)

    def get_object(self, kind, pk):
        from django.http import Http404

        try:
            return self.scope.get(kind, pk)
        except Http404:
            raise exceptions.NotFound(f"No such {kind.replace('_', ' ')}.") from None

    def paged(self, rows, render=None):
        """One page of `rows` as the staff API pages (`page`/`page_size` or `limit`/`offset`, at most
        1,000; {"count", "next", "previous", "results"}), each row rendered by `render` (a serializer
        class or a function of the page's rows)."""
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, self.request, view=self)
        data = render(page) if not isinstance(render, type) else render(page, many=True).data
        return paginator.get_paginated_response(data)

    def ordered(self, qs, orderings: dict, default: str):
        term = self.request.query_params.get("ordering")
        if term is None:
            return qs.order_by(default)
        if term not in orderings:
            raise exceptions.ValidationError({"ordering": [f"One of: {', '.join(sorted(orderings))}."]})
        return qs.order_by(orderings[term])


class TokenRequest(StrictSerializer):
    login = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=200)
    otp = serializers.CharField(max_length=10, required=False, allow_blank=True)


class TokenAnswer(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()


class TokenView(PortalAPIView):
    authentication_classes = []
    permission_classes = []

    @extend_schema(request=TokenRequest, responses={200: TokenAnswer}, operation_id="portal_token",
                   description="A portal token for the mobile app. Rate-limited per login and per client address "
                               "(429 `too_many_attempts` with Retry-After); 401 `invalid_login`, `otp_required`.")
    def post(self, request):
        data = TokenRequest(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.authenticate(login=data.validated_data["login"], password=data.validated_data["password"],
                                     otp=data.validated_data.get("otp") or None, ip=client_ip(request) or None)
        token, raw = services.issue_token(user)
        return Response({"token": raw, "expires_at": token.expires_at})


class MeSerializer(serializers.Serializer):
    login = serializers.CharField()
    name = serializers.CharField()
    role = serializers.CharField()
    language = serializers.CharField()
    customer_number = serializers.CharField(source="customer.number")
    customer_name = serializers.CharField(source="customer.__str__")
    totp_enabled = serializers.BooleanField()


class MeView(PortalAPIView):
    @extend_schema(responses=MeSerializer, operation_id="portal_me")
    def get(self, request):
        return Response(MeSerializer(request.user).data)


class AccountSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    number = serializers.CharField()
    currency = serializers.CharField()
    payment_mode = serializers.CharField()
    status = serializers.CharField()
    balance = serializers.DecimalField(max_digits=20, decimal_places=6, read_only=True)
    credit_limit = serializers.DecimalField(max_digits=20, decimal_places=6, read_only=True)
    available = serializers.DecimalField(max_digits=20, decimal_places=6, read_only=True)


class AccountsView(PortalAPIView):
    right = "money"

    @extend_schema(responses=AccountSerializer(many=True), operation_id="portal_accounts")
    def get(self, request):
        rows = []
        for account in self.scope.accounts().order_by("number"):
            funds = services.account_funds(account)
            rows.append({"id": account.pk, "number": account.number, "currency": account.currency,
                         "payment_mode": account.payment_mode, "status": account.status,
                         "balance": funds["balance"], "credit_limit": funds["credit_limit"],
                         "available": funds["available"]})
        return Response({"results": AccountSerializer(rows, many=True).data})


class InvoiceSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    number = serializers.CharField()
    kind = serializers.CharField()
    state = serializers.CharField()
    billing_account = serializers.CharField(source="billing_account.number")
    period = serializers.CharField()
    invoice_date = serializers.DateField()
    due_date = serializers.DateField()
    currency = serializers.CharField()
    total = serializers.DecimalField(max_digits=20, decimal_places=6, read_only=True)
    paid_amount = serializers.DecimalField(max_digits=20, decimal_places=6, read_only=True)


ACCOUNT_PARAM = OpenApiParameter("account", str, description="Only this account's (its id); another's: 404.")
ORDERING_PARAM = OpenApiParameter("ordering", str)
PAGE_PARAMS = [OpenApiParameter("page", int, description="A page number (with page_size, default 50)."),
               OpenApiParameter("page_size", int, description="Rows a page, at most 1,000."),
               OpenApiParameter("limit", int, description="Rows (at most 1,000); with offset."),
               OpenApiParameter("offset", int, description="Index of the first row; with limit.")]


class InvoicesView(PortalAPIView):
    right = "money"
    allowed_params = {"account", "ordering", "kind", *Pagination.query_params}
    ORDERINGS = {"invoice_date": "invoice_date", "-invoice_date": "-invoice_date", "due_date": "due_date",
                 "-due_date": "-due_date", "total": "total", "-total": "-total", "number": "number",
                 "-number": "-number"}

    @extend_schema(parameters=[ACCOUNT_PARAM, ORDERING_PARAM, OpenApiParameter("kind", str), *PAGE_PARAMS],
                   responses=InvoiceSerializer(many=True), operation_id="portal_invoices")
    def get(self, request):
        qs = self.scope.invoices()
        if "account" in request.query_params:
            qs = qs.filter(billing_account=self.get_object("account", request.query_params["account"]))
        if "kind" in request.query_params:
            qs = qs.filter(kind=request.query_params["kind"])
        qs = self.ordered(qs, self.ORDERINGS, "-invoice_date")
        return self.paged(qs, InvoiceSerializer)


class InvoicePdfView(PortalAPIView):
    right = "money"

    @extend_schema(responses={(200, "application/pdf"): bytes}, operation_id="portal_invoice_pdf")
    def get(self, request, invoice_id):
        invoice = self.get_object("invoice", invoice_id)
        response = HttpResponse(documents.invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice.number or invoice.pk}.pdf"'
        return response


class PaymentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    number = serializers.CharField()
    billing_account = serializers.CharField(source="billing_account.number")
    amount = serializers.DecimalField(max_digits=20, decimal_places=6, read_only=True)
    currency = serializers.CharField()
    channel = serializers.CharField()
    status = serializers.CharField()
    received_at = serializers.DateTimeField()


class PaymentsView(PortalAPIView):
    right = "money"
    allowed_params = {"account", "ordering", *Pagination.query_params}
    ORDERINGS = {"received_at": "received_at", "-received_at": "-received_at", "amount": "amount", "-amount": "-amount"}

    @extend_schema(parameters=[ACCOUNT_PARAM, ORDERING_PARAM, *PAGE_PARAMS], responses=PaymentSerializer(many=True),
                   operation_id="portal_payments")
    def get(self, request):
        qs = self.scope.payments()
        if "account" in request.query_params:
            qs = qs.filter(billing_account=self.get_object("account", request.query_params["account"]))
        qs = self.ordered(qs, self.ORDERINGS, "-received_at")
        return self.paged(qs, PaymentSerializer)


class SubscriptionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    number = serializers.CharField()
    service = serializers.CharField(source="service.name")
    tariff = serializers.CharField(source="tariff.code")
    tariff_name = serializers.CharField(source="tariff.name")
    status = serializers.CharField()
    suspension_reason = serializers.CharField()
    billing_account = serializers.CharField(source="billing_account.number")
    phone_number = serializers.CharField()
    login = serializers.CharField()


class SubscriptionsView(PortalAPIView):
    allowed_params = {"account", "ordering", "status", *Pagination.query_params}
    ORDERINGS = {"number": "number", "-number": "-number", "status": "status", "-status": "-status"}

    @extend_schema(parameters=[ACCOUNT_PARAM, ORDERING_PARAM, OpenApiParameter("status", str), *PAGE_PARAMS],
                   responses=SubscriptionSerializer(many=True), operation_id="portal_subscriptions")
    def get(self, request):
        from .views import suspension_reason

        qs = self.scope.subscriptions()
        if "account" in request.query_params:
            qs = qs.filter(billing_account=self.get_object("account", request.query_params["account"]))
        if "status" in request.query_params:
            qs = qs.filter(status=request.query_params["status"])

        def render(rows):
            for sub in rows:
                sub.suspension_reason = suspension_reason(sub) if sub.status == "suspended" else ""
            return SubscriptionSerializer(rows, many=True).data

        return self.paged(self.ordered(qs, self.ORDERINGS, "number"), render)


class ChangeTariffRequest(StrictSerializer):
    tariff = serializers.CharField(help_text="The tariff's code (one of the operator's self-service tariffs).")
    confirm = serializers.BooleanField(default=False, help_text="false: only the price and proration (a quote).")


class ChangeTariffView(PortalAPIView):
    right = "services"

    @extend_schema(request=ChangeTariffRequest, operation_id="portal_change_tariff",
                   responses={200: serializers.DictField()})
    def post(self, request, subscription_id):
        sub = self.get_object("subscription", subscription_id)
        data = ChangeTariffRequest(data=request.data)
        data.is_valid(raise_exception=True)
        tariff = services.allowed_tariffs(sub).filter(code=data.validated_data["tariff"]).first()
        if tariff is None:
            raise exceptions.ValidationError({"tariff": ["Not offered for self-service for this subscription."]})
        quote = services.tariff_quote(sub, tariff)
        answer = {k: (str(v) if not isinstance(v, (bool, int)) else v) for k, v in quote.items() if k != "tariff"}
        answer["tariff"] = tariff.code
        if not data.validated_data["confirm"]:
            return Response({"quote": answer, "changed": False})
        result = services.change_tariff(request.user, subscription=sub, tariff=tariff)
        changed = result.__class__.__name__ == "Subscription"
        return Response({"quote": answer, "changed": changed,
                         "request": None if changed else helpdesk.number(result)})


class VoucherRequest(StrictSerializer):
    account = serializers.UUIDField()
    code = serializers.CharField(max_length=64)


class VoucherAnswer(serializers.Serializer):
    payment = serializers.CharField()
    amount = serializers.DecimalField(max_digits=20, decimal_places=6, read_only=True)
    currency = serializers.CharField()


class VoucherView(PortalAPIView):
    right = "money"

    @extend_schema(request=VoucherRequest, responses={200: VoucherAnswer}, operation_id="portal_voucher_redeem")
    def post(self, request):
        data = VoucherRequest(data=request.data)
        data.is_valid(raise_exception=True)
        account = self.get_object("account", data.validated_data["account"])
        payment = services.redeem_voucher(request.user, account=account, code=data.validated_data["code"],
                                          ip=client_ip(request) or None)
        return Response({"payment": payment.number, "amount": payment.amount, "currency": payment.currency})


class SessionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    started_at = serializers.DateTimeField()
    stopped_at = serializers.DateTimeField(allow_null=True)
    duration = serializers.IntegerField(help_text="Seconds.")
    ip = serializers.CharField()
    download = serializers.IntegerField(help_text="Bytes received by the subscriber.")
    upload = serializers.IntegerField(help_text="Bytes sent by the subscriber.")


class SessionsAnswer(serializers.Serializer):
    current = SessionSerializer(many=True)
    recent = SessionSerializer(many=True)


class SessionsView(PortalAPIView):
    right = "services"

    @extend_schema(responses=SessionsAnswer, operation_id="portal_subscription_sessions",
                   description="The line's open network sessions and its last finished ones.")
    def get(self, request, subscription_id):
        sub = self.get_object("subscription", subscription_id)
        return Response(SessionsAnswer(network.sessions(self.scope, sub)).data)


class DeviceSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    item = serializers.CharField()
    serial = serializers.CharField()
    mac = serializers.CharField()
    how = serializers.ChoiceField(choices=sorted(network.HOW))
    installments_left = serializers.IntegerField(allow_null=True)
    installment_amount = serializers.DecimalField(max_digits=20, decimal_places=6, allow_null=True, read_only=True)
    monthly = serializers.DecimalField(max_digits=20, decimal_places=6, allow_null=True, read_only=True,
                                       help_text="Rent per month.")
    currency = serializers.CharField()
    subscription = serializers.CharField(help_text="The line's number, if the device is tied to one.")


class DevicesView(PortalAPIView):
    right = "services"
    allowed_params = {"subscription"}

    @extend_schema(parameters=[OpenApiParameter("subscription", str, description="Only this line's (its id).")],
                   responses=DeviceSerializer(many=True), operation_id="portal_devices")
    def get(self, request):
        sub = None
        if "subscription" in request.query_params:
            sub = self.get_object("subscription", request.query_params["subscription"])
        return Response({"results": DeviceSerializer(network.devices(self.scope, sub), many=True).data})


class DeviceView(PortalAPIView):
    right = "services"

    @extend_schema(responses=DeviceSerializer, operation_id="portal_device")
    def get(self, request, device_id):
        device = self.get_object("device", device_id)
        return Response(DeviceSerializer(next(r for r in network.devices(self.scope) if r["id"] == device.pk)).data)


class TicketsView(PortalAPIView):
    right = "help"
    allowed_params = set(Pagination.query_params)

    @extend_schema(parameters=PAGE_PARAMS, responses={200: serializers.DictField()}, operation_id="portal_tickets")
    def get(self, request):
        if not helpdesk.available():
            return self.paged([], list)
        return self.paged(self.scope.tickets(), lambda rows: [helpdesk.as_dict(t) for t in rows])


class TicketView(PortalAPIView):
    right = "help"

    @extend_schema(responses={200: serializers.DictField()}, operation_id="portal_ticket")
    def get(self, request, ticket_id):
        if not helpdesk.available():
            raise exceptions.NotFound()
        ticket = self.get_object("ticket", ticket_id)
        return Response({**helpdesk.as_dict(ticket), "comments": [
            {"author": c["author"], "at": c["at"], "text": c["text"]} for c in helpdesk.comments(ticket)]})


patterns = [
    path("auth/token/", TokenView.as_view(), name="token"),
    path("me/", MeView.as_view(), name="me"),
    path("accounts/", AccountsView.as_view(), name="accounts"),
    path("invoices/", InvoicesView.as_view(), name="invoices"),
    path("invoices/<uuid:invoice_id>/pdf/", InvoicePdfView.as_view(), name="invoice_pdf"),
    path("payments/", PaymentsView.as_view(), name="payments"),
    path("subscriptions/", SubscriptionsView.as_view(), name="subscriptions"),
    path("subscriptions/<uuid:subscription_id>/change-tariff/", ChangeTariffView.as_view(), name="change_tariff"),
    path("subscriptions/<uuid:subscription_id>/sessions/", SessionsView.as_view(), name="sessions"),
    path("devices/", DevicesView.as_view(), name="devices"),
    path("devices/<uuid:device_id>/", DeviceView.as_view(), name="device"),
    path("tickets/", TicketsView.as_view(), name="tickets"),
    path("vouchers/redeem/", VoucherView.as_view(), name="voucher_redeem"),
]

if helpdesk.available():
    patterns.append(path("tickets/<uuid:ticket_id>/", TicketView.as_view(), name="ticket"))


def schema_view():
    from drf_spectacular.views import SpectacularAPIView

    from rest_framework.permissions import AllowAny

    # Public, as a mobile app's API description is (it holds no data).
    return SpectacularAPIView.as_view(urlconf="tarifa.portal.api_urls", authentication_classes=[],
                                      permission_classes=[AllowAny], custom_settings={
        "TITLE": "Tarifa self-care portal API", "DESCRIPTION": "For the customers' mobile app: portal tokens only.",
        "PREPROCESSING_HOOKS": []})

