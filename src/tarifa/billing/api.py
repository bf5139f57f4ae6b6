from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.catalog.api import MoneyField
from tarifa.kernel.clock import today
from tarifa.ledger.models import BillingAccount, Transfer
from tarifa.web.api import PeriodField, RecordViewSet, StrictModelSerializer, StrictSerializer, register_endpoint, router

from . import billrun, dunning, services
from .models import (BillCycle, BillCycleAssignment, BillRun, DocumentTemplate, DunningAction, DunningAssignment,
                     DunningPolicy, DunningStep, Invoice, InvoiceLine, PendingItem)



class BillCycleSerializer(StrictModelSerializer):
    class Meta:
        model = BillCycle
        fields = ["id", "code", "name", "day_of_month", "invoice_date_offset_days", "payment_terms_days", "rounding",
                  "series", "auto_issue", "description", "archived_at", "branch", "created_at"]
        read_only_fields = ["archived_at", "branch", "created_at"]


class BillCycleViewSet(RecordViewSet):
    """Bill cycles: when accounts are invoiced (period start day, invoice date, payment terms, rounding)."""

    queryset = BillCycle.objects.order_by("day_of_month", "code")
    serializer_class = BillCycleSerializer
    filterset_fields = ["code"]

    def create_service(*, actor, **data):
        return services.create_cycle(actor=actor, **data)

    def update_service(obj, *, actor, **data):
        return services.update_cycle(obj, actor=actor, **data)

    def archive_service(obj, *, actor, reason=""):
        return services.archive_cycle(obj, actor=actor, reason=reason)


class AssignmentSerializer(StrictModelSerializer):
    billing_account = serializers.SlugRelatedField(slug_field="number", queryset=BillingAccount.objects.all())
    cycle = serializers.SlugRelatedField(slug_field="code", queryset=BillCycle.objects.all())

    class Meta:
        model = BillCycleAssignment
        fields = ["id", "billing_account", "cycle", "assigned_at", "actor"]
        read_only_fields = ["assigned_at", "actor"]
        validators = []

    def get_fields(self):
        fields = super().get_fields()
        fields["billing_account"].validators = []
        return fields


class AssignmentViewSet(RecordViewSet):
    """Which cycle an account is invoiced in; POST puts (or moves) an account into a cycle."""

    queryset = BillCycleAssignment.objects.select_related("billing_account", "cycle").order_by("assigned_at")
    serializer_class = AssignmentSerializer
    filterset_fields = ["cycle__code", "billing_account__number"]

    def create_service(*, actor, billing_account, cycle):
        return services.assign_cycle(actor=actor, billing_account=billing_account, cycle=cycle)


class LineSerializer(StrictModelSerializer):
    class Meta:
        model = InvoiceLine
        fields = ["position", "kind", "description", "service", "service_type", "subscription", "period_start",
                  "period_end", "quantity", "unit", "free_units", "destination", "amount", "net", "tax", "total",
                  "taxes", "booked"]


class InvoiceSerializer(StrictModelSerializer):
    billing_account = serializers.SlugRelatedField(slug_field="number", read_only=True)
    cycle = serializers.SlugRelatedField(slug_field="code", read_only=True)
    credited_invoice = serializers.SlugRelatedField(slug_field="number", read_only=True)
    lines = LineSerializer(many=True, read_only=True)
    outstanding = serializers.DecimalField(max_digits=20, decimal_places=6, read_only=True)

    class Meta:
        model = Invoice
        nested_parts = ["lines"]  # the invoice's own content (tarifa.web.api_nesting)
        fields = ["id", "number", "kind", "purpose", "state", "billing_account", "customer", "cycle", "period",
                  "period_start",
                  "period_end", "invoice_date", "due_date", "currency", "rounding", "rounding_note", "subtotal",
                  "tax_total", "total", "paid_amount", "credited_amount", "outstanding", "tax_summary",
                  "credited_invoice", "reason", "language", "issued_at", "lines", "branch", "created_at"]


class InvoiceCreateSerializer(StrictSerializer):
    billing_account = serializers.SlugRelatedField(slug_field="number", queryset=BillingAccount.objects.all())
    period = PeriodField()
    issue = serializers.BooleanField(required=False, allow_null=True, default=None)


class BillNowSerializer(StrictSerializer):
    billing_account = serializers.SlugRelatedField(slug_field="number", queryset=BillingAccount.objects.all())
    purpose = serializers.ChoiceField(choices=["interim", "final"], default="interim")
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class CreditSerializer(StrictSerializer):
    amount = MoneyField(required=False, allow_null=True)
    reason = serializers.CharField(max_length=500)


class AllocateSerializer(StrictSerializer):
    transfer = serializers.PrimaryKeyRelatedField(queryset=Transfer.objects.filter(kind="payment"))
    amount = MoneyField(required=False, allow_null=True)


class InvoiceViewSet(RecordViewSet):
    """Invoices and credit notes. POST invoices one account for a period (idempotent per account
    and period); POST …/issue, …/credit, …/allocate; GET …/pdf downloads the document."""

    queryset = (Invoice.objects.select_related("billing_account", "cycle", "credited_invoice")
                .prefetch_related("lines").order_by("-invoice_date", "-number"))
    serializer_class = InvoiceSerializer
    write_serializer_class = InvoiceCreateSerializer
    filterset_fields = ["state", "kind", "period", "number", "billing_account__number", "cycle__code", "customer"]

    def create_service(*, actor, billing_account, period, issue=None):
        return services.generate_invoice(actor=actor, billing_account=billing_account, period=period, issue=issue)

    def _body(self, request, cls):
        body = cls(data=request.data)
        body.is_valid(raise_exception=True)
        return body.validated_data

    @extend_schema(request=None, responses=InvoiceSerializer)
    @action(detail=True, methods=["post"], required_permission="billing.issue_invoice")
    def issue(self, request, pk=None):
        return Response(InvoiceSerializer(services.issue_invoice(self.get_object(), actor=request.user)).data)

    @extend_schema(request=BillNowSerializer, responses={201: InvoiceSerializer})
    @action(detail=False, methods=["post"], url_path="bill-now", required_permission="billing.issue_invoice")
    def bill_now(self, request):
        """An interim invoice (what is due so far) or a final one (everything not yet invoiced),
        issued at once; the next regular invoice starts where it ended. 409 nothing_to_invoice."""
        data = self._body(request, BillNowSerializer)
        invoice = services.bill_now(actor=request.user, billing_account=data["billing_account"],
                                    purpose=data["purpose"], reason=data["reason"])
        return Response(InvoiceSerializer(invoice).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CreditSerializer, responses={201: InvoiceSerializer})
    @action(detail=True, methods=["post"], required_permission="billing.credit_invoice")
    def credit(self, request, pk=None):
        data = self._body(request, CreditSerializer)
        note = services.credit_invoice(self.get_object(), actor=request.user, amount=data.get("amount"),
                                       reason=data["reason"])
        return Response(InvoiceSerializer(note).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AllocateSerializer, responses={200: {"type": "object"}})
    @action(detail=True, methods=["post"], required_permission="billing.allocate_payment")
    def allocate(self, request, pk=None):
        data = self._body(request, AllocateSerializer)
        allocation = services.allocate_payment(actor=request.user, invoice=self.get_object(),
                                               transfer=data["transfer"], amount=data.get("amount"))
        return Response({"invoice": str(allocation.invoice_id), "transfer": str(allocation.transfer_id),
                         "amount": f"{allocation.amount:f}"})

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], required_permission="billing.view_invoice")
    def pdf(self, request, pk=None):
        from .documents import invoice_pdf

        invoice = self.get_object()
        response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice.number or invoice.pk}.pdf"'
        return response


class PendingItemSerializer(StrictModelSerializer):
    billing_account = serializers.SlugRelatedField(slug_field="number", queryset=BillingAccount.objects.all())
    amount = MoneyField()

    class Meta:
        model = PendingItem
        fields = ["id", "billing_account", "kind", "description", "amount", "service_type", "day", "added_by",
                  "created_at"]
        read_only_fields = ["added_by", "created_at"]
        extra_kwargs = {"day": {"required": False}}


class PendingItemViewSet(RecordViewSet):
    """One-time fees, adjustments and discounts waiting for the account's next invoice."""

    queryset = PendingItem.objects.select_related("billing_account").order_by("-day")
    serializer_class = PendingItemSerializer
    filterset_fields = ["billing_account__number", "kind"]

    def create_service(*, actor, **data):
        return services.add_pending_item(actor=actor, **data)


class BillRunSerializer(serializers.ModelSerializer):
    cycle = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = BillRun
        fields = ["id", "cycle", "period", "dry_run", "status", "jobs", "accounts", "done", "invoiced", "skipped",
                  "summary", "error", "started_at", "finished_at", "actor"]


class BillRunCreateSerializer(StrictSerializer):
    cycle = serializers.SlugRelatedField(slug_field="code", queryset=BillCycle.objects.all(), required=False,
                                         allow_null=True, help_text="Left out (or null): every live cycle.")
    period = PeriodField()
    dry_run = serializers.BooleanField(required=False, default=False)


class RefusedRunSerializer(serializers.Serializer):
    cycle = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class QueuedRunsSerializer(serializers.Serializer):
    """The answer to a POST without a cycle: a run per live cycle, and the cycles refused."""

    period = serializers.CharField()
    dry_run = serializers.BooleanField()
    queued = BillRunSerializer(many=True, source="runs")
    refused = RefusedRunSerializer(many=True)


class BillRunViewSet(RecordViewSet):
    """Bill runs. POST queues a run for the workers (locked per cycle and period; 409 run_in_progress).
    Without `cycle`, one run per live cycle: 201 with the runs queued and the cycles refused with their
    reason (a run already in progress, the period not closed); 409 when none could be queued."""

    queryset = BillRun.objects.select_related("cycle").order_by("-started_at")
    serializer_class = BillRunSerializer
    write_serializer_class = BillRunCreateSerializer
    filterset_fields = ["status", "period", "cycle__code", "dry_run"]

    def create_service(*, actor, cycle, period, dry_run=False):
        return billrun.enqueue(actor=actor, cycle=cycle, period=period, dry_run=dry_run)[0]

    @extend_schema(request=BillRunCreateSerializer, responses={201: PolymorphicProxySerializer(
        component_name="BillRunQueued", serializers=[BillRunSerializer, QueuedRunsSerializer],
        resource_type_field_name=None)})
    def create(self, request, *args, **kwargs):
        body = BillRunCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if data.get("cycle") is not None:
            return super().create(request, *args, **kwargs)
        queued = billrun.enqueue_all(actor=request.user, period=data["period"], dry_run=data["dry_run"])
        return Response(QueuedRunsSerializer(queued).data, status=status.HTTP_201_CREATED)


class DocumentTemplateSerializer(StrictModelSerializer):
    class Meta:
        model = DocumentTemplate
        fields = ["id", "kind", "language", "body", "note", "archived_at", "created_at", "updated_at"]
        read_only_fields = ["archived_at", "created_at", "updated_at"]
        validators = []


class DocumentTemplateViewSet(RecordViewSet):
    """The operator's HTML templates for invoices, statements and receipts, per language."""

    queryset = DocumentTemplate.objects.order_by("kind", "language")
    serializer_class = DocumentTemplateSerializer
    filterset_fields = ["kind", "language"]

    def create_service(*, actor, **data):
        return services.create_template(actor=actor, **data)

    def update_service(obj, *, actor, **data):
        return services.update_template(obj, actor=actor, **data)

    def archive_service(obj, *, actor, reason=""):
        return services.archive_template(obj, actor=actor, reason=reason)


class DunningPolicySerializer(StrictModelSerializer):
    class Meta:
        model = DunningPolicy
        fields = ["id", "code", "name", "customer_kind", "is_default", "reevaluate_days", "archived_at", "created_at"]
        read_only_fields = ["archived_at", "created_at"]


class DunningPolicyViewSet(RecordViewSet):
    queryset = DunningPolicy.objects.order_by("code")
    serializer_class = DunningPolicySerializer
    filterset_fields = ["code", "customer_kind", "is_default"]

    def create_service(*, actor, **data):
        return dunning.create_policy(actor=actor, **data)

    def update_service(obj, *, actor, **data):
        return dunning.update_policy(obj, actor=actor, **data)

    def archive_service(obj, *, actor, reason=""):
        return dunning.archive_policy(obj, actor=actor, reason=reason)


class DunningStepSerializer(StrictModelSerializer):
    policy = serializers.SlugRelatedField(slug_field="code", queryset=DunningPolicy.objects.all())
    min_amount_overdue = MoneyField(required=False)
    late_fee = MoneyField(required=False)

    class Meta:
        model = DunningStep
        fields = ["id", "policy", "position", "name", "min_days_overdue", "min_amount_overdue", "min_unpaid_invoices",
                  "action", "template", "late_fee"]
        validators = []


class DunningStepViewSet(RecordViewSet):
    queryset = DunningStep.objects.select_related("policy").order_by("policy__code", "position")
    serializer_class = DunningStepSerializer
    filterset_fields = ["policy__code", "action"]

    def create_service(*, actor, **data):
        return dunning.create_step(actor=actor, **data)

    def update_service(obj, *, actor, **data):
        return dunning.update_step(obj, actor=actor, **data)


class DunningAssignmentSerializer(StrictModelSerializer):
    billing_account = serializers.SlugRelatedField(slug_field="number", queryset=BillingAccount.objects.all())
    policy = serializers.SlugRelatedField(slug_field="code", queryset=DunningPolicy.objects.all())

    class Meta:
        model = DunningAssignment
        fields = ["id", "billing_account", "policy", "assigned_at"]
        read_only_fields = ["assigned_at"]
        validators = []

    def get_fields(self):
        fields = super().get_fields()
        fields["billing_account"].validators = []  # moving an account to another policy is the service's job
        return fields


class DunningAssignmentViewSet(RecordViewSet):
    """An account's own dunning policy (else its customer kind's default); POST sets or moves it."""

    queryset = DunningAssignment.objects.select_related("billing_account", "policy").order_by("assigned_at")
    serializer_class = DunningAssignmentSerializer
    filterset_fields = ["billing_account__number", "policy__code"]

    def create_service(*, actor, billing_account, policy):
        return dunning.assign_policy(actor=actor, billing_account=billing_account, policy=policy)


class DunningActionSerializer(StrictModelSerializer):
    billing_account = serializers.SlugRelatedField(slug_field="number", read_only=True)
    step = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = DunningAction
        fields = ["id", "billing_account", "step", "action", "taken_at", "days_overdue", "amount_overdue",
                  "unpaid_invoices", "detail", "cleared_at", "actor"]


class DunningActionViewSet(RecordViewSet):
    """Every dunning step taken (and cleared) on an account."""

    queryset = DunningAction.objects.select_related("billing_account", "step").order_by("-taken_at")
    serializer_class = DunningActionSerializer
    filterset_fields = ["billing_account__number", "action"]


class CheckView(APIView):
    """Revenue assurance for a period (`?period=YYYY-MM`, default the last closed one; `&cycle=CODE`)."""

    required_permission = "billing.view_invoice"

    @extend_schema(parameters=[OpenApiParameter("period", str), OpenApiParameter("cycle", str)],
                   responses={200: {"type": "object"}})
    def get(self, request):
        from .check import check

        period = request.query_params.get("period")
        if not period:
            cycle = BillCycle.objects.filter(archived_at__isnull=True).order_by("code").first()
            period = services.last_closed_period(cycle, today()) if cycle else f"{today():%Y-%m}"
        return Response(check(period=period, cycle=request.query_params.get("cycle") or None))


def _pdf(data: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class StatementView(APIView):
    """The statement of account as PDF (`?start=YYYY-MM-DD&end=YYYY-MM-DD`, default this month)."""

    required_permission = "billing.view_invoice"

    @extend_schema(parameters=[OpenApiParameter("start", str), OpenApiParameter("end", str)],
                   responses={(200, "application/pdf"): OpenApiTypes.BINARY})
    def get(self, request, account):
        import datetime as dt

        from tarifa.kernel.errors import NotFound, ValidationFailed

        from .documents import statement_pdf

        found = BillingAccount.objects.select_related("customer").filter(pk=account).first()
        if found is None:
            raise NotFound("No such billing account.", code="account_not_found")
        try:
            end = dt.date.fromisoformat(request.query_params["end"]) if request.query_params.get("end") else today()
            start = (dt.date.fromisoformat(request.query_params["start"]) if request.query_params.get("start")
                     else end.replace(day=1))
        except ValueError:
            raise ValidationFailed("start and end are YYYY-MM-DD.", code="invalid_date",
                                   fields={"start": ["YYYY-MM-DD."], "end": ["YYYY-MM-DD."]}) from None
        return _pdf(statement_pdf(found, start, end), f"statement-{found.number}-{end}.pdf")


class ReceiptView(APIView):
    """The receipt of a payment (a ledger transfer of kind payment to a customer's account) as PDF."""

    required_permission = "billing.view_invoice"

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY})
    def get(self, request, payment):
        from tarifa.kernel.errors import NotFound

        from .documents import receipt_pdf

        transfer = Transfer.objects.filter(pk=payment).first()
        if transfer is None:
            raise NotFound("No such payment.", code="transfer_not_found")
        return _pdf(receipt_pdf(transfer), f"receipt-{transfer.pk}.pdf")


def _sample_payment():
    payment = Transfer.objects.filter(kind="payment", credit_account__billing_account__isnull=False).first()
    return {"payment": payment.pk}


router.register("bill-cycles", BillCycleViewSet, basename="billcycle")
router.register("bill-cycle-assignments", AssignmentViewSet, basename="billcycleassignment")
router.register("invoices", InvoiceViewSet, basename="invoice")
router.register("pending-items", PendingItemViewSet, basename="pendingitem")
router.register("bill-runs", BillRunViewSet, basename="billrun")
router.register("document-templates", DocumentTemplateViewSet, basename="documenttemplate")
router.register("dunning-policies", DunningPolicyViewSet, basename="dunningpolicy")
router.register("dunning-steps", DunningStepViewSet, basename="dunningstep")
router.register("dunning-assignments", DunningAssignmentViewSet, basename="dunningassignment")
router.register("dunning-actions", DunningActionViewSet, basename="dunningaction")
register_endpoint("billing/check/", CheckView.as_view(), "billing-check", "billing.view_invoice")
register_endpoint("billing/statement/<uuid:account>/", StatementView.as_view(), "billing-statement",
                  "billing.view_invoice", sample=lambda: {"account": BillingAccount.objects.first().pk})
register_endpoint("billing/receipt/<uuid:payment>/", ReceiptView.as_view(), "billing-receipt", "billing.view_invoice",
                  sample=_sample_payment)
