"""REST API: /ticket-types/ (flows with steps, transitions, fields, handlers) and /tickets/
(list filtered by the caller's step queues; detail with `step` and `transitions`; advance,
comments, attachments)."""

from django.db import transaction
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from tarifa.catalog.models import Tariff
from tarifa.crm.models import Customer
from tarifa.kernel.errors import PermissionDenied
from tarifa.ledger.models import BillingAccount
from tarifa.subscriptions.models import Subscription
from tarifa.web.api import RecordViewSet, StrictModelSerializer, StrictSerializer, router
from tarifa.web.idempotency import idempotent
from tarifa.web.parsers import FormParser, JSONParser, MultiPartParser

from . import handlers as kinds
from . import selectors, services
from .filters import TicketFilter
from .models import Comment, FlowEntry, Step, StepField, StepHandler, Ticket, TicketAttachment, TicketType, Transition

# --- flows ---------------------------------------------------------------------------------------


class StepFieldSerializer(serializers.ModelSerializer):
    choices = serializers.SerializerMethodField()

    class Meta:
        model = StepField
        fields = ["name", "label", "kind", "required", "choices"]

    def get_choices(self, f) -> list[str]:
        return f.choice_list()


class StepHandlerSerializer(serializers.ModelSerializer):
    class Meta:
        model = StepHandler
        fields = ["phase", "kind", "parameters", "order", "enabled"]


class FlowStepSerializer(serializers.ModelSerializer):
    fields = StepFieldSerializer(many=True, read_only=True)
    handlers = StepHandlerSerializer(many=True, read_only=True)
    roles = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = Step
        fields = ["code", "name", "order", "final", "automatic", "roles", "branch", "sla_minutes", "fields",
                  "handlers"]
        nested_parts = ["fields", "handlers"]


class FlowTransitionSerializer(serializers.ModelSerializer):
    from_step = serializers.SlugRelatedField(slug_field="code", read_only=True)
    to_step = serializers.SlugRelatedField(slug_field="code", read_only=True)
    requires_resolution = serializers.BooleanField(source="needs_resolution", read_only=True)

    class Meta:
        model = Transition
        fields = ["from_step", "to_step", "direction", "requires_resolution", "label"]


class TicketTypeSerializer(StrictModelSerializer):
    steps = serializers.SerializerMethodField()
    transitions = FlowTransitionSerializer(many=True, read_only=True)

    class Meta:
        model = TicketType
        fields = ["id", "code", "name", "description", "customer_visible", "steps", "transitions", "archived_at"]
        read_only_fields = ["archived_at"]
        nested_parts = ["steps", "transitions"]

    @extend_schema_field(FlowStepSerializer(many=True))
    def get_steps(self, ttype) -> list[dict]:
        steps = ttype.steps.filter(archived_at__isnull=True).prefetch_related("fields", "handlers", "roles")
        return FlowStepSerializer(steps, many=True).data


class TicketTypeViewSet(RecordViewSet):
    """Ticket types and their flows. Flows are edited in the UI's flow editor; here they are read."""

    queryset = TicketType.objects.prefetch_related("transitions__from_step", "transitions__to_step").order_by("name")
    serializer_class = TicketTypeSerializer
    filterset_fields = ["code", "customer_visible"]
    search_fields = ["code", "name"]

    def create_service(*, actor, **data):
        return services.create_ticket_type(actor=actor, **data)

    def update_service(ttype, *, actor, **data):
        return services.update_ticket_type(ttype, actor=actor, **data)

    def archive_service(ttype, *, actor, reason=""):
        return services.archive_ticket_type(ttype, actor=actor, reason=reason)


router.register("ticket-types", TicketTypeViewSet, basename="tickettype")


# --- tickets -------------------------------------------------------------------------------------

class TransitionInfoSerializer(StrictSerializer):
    to = serializers.CharField()
    name = serializers.CharField()
    label = serializers.CharField()
    direction = serializers.ChoiceField(choices=Transition.Direction.choices)
    requires_resolution = serializers.BooleanField()
    fields = StepFieldSerializer(many=True)


class FlowEntrySerializer(serializers.ModelSerializer):
    from_step = serializers.SlugRelatedField(slug_field="code", read_only=True)
    to_step = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = FlowEntry
        fields = ["kind", "at", "actor", "from_step", "to_step", "resolution", "data", "results", "error",
                  "seconds_at_step"]


class TicketSerializer(StrictModelSerializer):
    ticket_type = serializers.SlugRelatedField(slug_field="code", queryset=TicketType.objects.all())
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all())
    billing_account = serializers.SlugRelatedField(slug_field="number", queryset=BillingAccount.objects.all(),
                                                   required=False, allow_null=True)
    subscription = serializers.SlugRelatedField(slug_field="number", queryset=Subscription.objects.all(),
                                                required=False, allow_null=True)
    requested_tariff = serializers.SlugRelatedField(slug_field="code", queryset=Tariff.objects.all(),
                                                    required=False, allow_null=True)
    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True)
    step = serializers.SlugRelatedField(slug_field="code", read_only=True)
    step_name = serializers.CharField(source="step.name", read_only=True)
    overdue = serializers.BooleanField(source="is_overdue", read_only=True)
    parent = serializers.SlugRelatedField(slug_field="number", read_only=True)
    transitions = serializers.SerializerMethodField()
    history = serializers.SerializerMethodField()
    watchers = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    watching = serializers.SerializerMethodField()

    class Meta:
        model = Ticket
        fields = ["id", "number", "ticket_type", "title", "description", "customer", "billing_account",
                  "subscription", "requested_tariff", "parameters", "step", "step_name", "step_entered_at",
                  "assignee", "priority", "due_at", "overdue", "escalated_at", "closed_at", "data", "parent",
                  "last_error", "transitions", "history", "watchers", "watching", "created_at", "updated_at"]
        read_only_fields = ["number", "step_entered_at", "due_at", "escalated_at", "closed_at", "data",
                            "last_error", "created_at", "updated_at"]
        nested_parts = ["transitions", "history"]

    @extend_schema_field(TransitionInfoSerializer(many=True))
    def get_transitions(self, ticket) -> list[dict]:
        return selectors.transition_info(ticket)

    @extend_schema_field(FlowEntrySerializer(many=True))
    def get_history(self, ticket) -> list[dict]:
        return FlowEntrySerializer(selectors.history(ticket), many=True).data

    def get_watching(self, ticket) -> bool:
        """Whether the caller watches the ticket."""
        request = self.context.get("request")
        user_id = getattr(getattr(request, "user", None), "pk", None)
        return user_id is not None and any(w.pk == user_id for w in ticket.watchers.all())


class TicketUpdateSerializer(StrictModelSerializer):
    requested_tariff = serializers.SlugRelatedField(slug_field="code", queryset=Tariff.objects.all(),
                                                    required=False, allow_null=True)

    class Meta:
        model = Ticket
        fields = ["title", "description", "priority", "requested_tariff", "parameters"]


class AdvanceSerializer(StrictSerializer):
    # "from" is a Python keyword: declared below.
    to = serializers.CharField(max_length=40)
    resolution = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    data = serializers.DictField(required=False, default=dict)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.CharField(max_length=40)
        return fields


class TicketCommentSerializer(StrictModelSerializer):
    class Meta:
        model = Comment
        fields = ["id", "text", "internal", "author_label", "created_at"]
        read_only_fields = ["author_label", "created_at"]


class TicketAttachmentSerializer(StrictModelSerializer):
    file = serializers.FileField(write_only=True)

    class Meta:
        model = TicketAttachment
        fields = ["id", "file", "filename", "content_type", "size", "sha256", "description", "customer_visible",
                  "uploaded_by", "created_at"]
        read_only_fields = ["filename", "content_type", "size", "sha256", "uploaded_by", "created_at"]


class TicketViewSet(RecordViewSet):
    """Tickets at the steps whose queue the caller works. Filters: `customer`, `type`, `step`,
    `assignee` (username or `me`), `overdue`, `open`, `watched` (by the caller). `POST …/watch/` and
    `…/unwatch/` make the caller a watcher (e-mailed when the ticket moves or is commented on by
    someone else) or not. `POST …/advance/` moves a ticket:
    `{"from", "to", "resolution", "data"}` → 200 the ticket; 409 `stale_step` when it is no longer
    at `from`; 422 `vetoed` with the pre-handler's reason; 422 `handler_failed` (rolled back, recorded)."""

    queryset = Ticket.objects.select_related("ticket_type", "step", "customer", "billing_account", "subscription",
                                             "requested_tariff", "assignee", "parent").prefetch_related("watchers").order_by("-created_at")
    serializer_class = TicketSerializer
    filterset_class = TicketFilter
    search_fields = ["number", "title", "customer__number"]
    ordering_fields = ["number", "created_at", "due_at", "priority"]

    def get_queryset(self):
        return selectors.visible_tickets(self.request.user, super().get_queryset())

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return TicketUpdateSerializer
        return TicketSerializer

    def create_service(*, actor, **data):
        return services.open_ticket(actor=actor, **data)

    def update_service(ticket, *, actor, **data):
        return services.update_ticket(ticket, actor=actor, **data)

    def _ticket(self, pk):
        try:
            return self.get_queryset().get(pk=pk)
        except (Ticket.DoesNotExist, ValueError):
            raise Http404 from None

    def _read(self, pk):
        # After a move the ticket may be at a step the caller does not work: they still get its new state.
        ticket = super().get_queryset().get(pk=pk)
        return Response(TicketSerializer(ticket, context=self.get_serializer_context()).data)

    @idempotent(required=False)
    def _advance(self, request, pk=None):
        ticket = self._ticket(pk)
        body = AdvanceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = body.validated_data
        services.advance(ticket, actor=request.user, from_step=values["from"], to_step=values["to"],
                         resolution=values.get("resolution", ""), data=values.get("data") or {})
        return self._read(pk)

    @extend_schema(request=AdvanceSerializer, responses={200: TicketSerializer})
    @action(detail=True, methods=["post"], required_permission="tickets.advance_ticket")
    def advance(self, request, pk=None):
        try:
            return self._advance(request, pk)
        except (kinds.HandlerFailed, kinds.Veto) as exc:
            # The Idempotency-Key's transaction rolled back with the move: record it now.
            if not transaction.get_connection().in_atomic_block:
                services.record_failure(exc)
            raise

    advance.idempotency_key_required = False

    def _watch(self, request, pk, watching):
        ticket = self._ticket(pk)
        services.watch(ticket, actor=request.user, watching=watching)
        return self._read(pk)

    @extend_schema(request=None, responses={200: TicketSerializer})
    @action(detail=True, methods=["post"], required_permission="tickets.view_ticket")
    def watch(self, request, pk=None):
        """The caller watches the ticket (no body; watching twice is no change): they are e-mailed when
        it moves to another step or someone else comments on it. Answers the ticket (`watching`: true)."""
        return self._watch(request, pk, True)

    @extend_schema(request=None, responses={200: TicketSerializer})
    @action(detail=True, methods=["post"], required_permission="tickets.view_ticket")
    def unwatch(self, request, pk=None):
        """The caller stops watching the ticket (no body). Answers the ticket (`watching`: false)."""
        return self._watch(request, pk, False)

    @extend_schema(request=TicketCommentSerializer, responses={200: TicketCommentSerializer(many=True),
                                                          201: TicketCommentSerializer})
    @action(detail=True, methods=["get", "post"], required_permission="tickets.view_comment", pagination_class=None)
    def comments(self, request, pk=None):
        """GET: the ticket's comments (internal and customer-visible); POST `{"text", "internal"}`
        (needs tickets.add_comment)."""
        ticket = self._ticket(pk)
        if request.method == "POST":
            if not request.user.has_perm("tickets.add_comment"):
                raise PermissionDenied("You may not comment on tickets (tickets.add_comment).")
            body = TicketCommentSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            comment = services.add_comment(ticket=ticket, actor=request.user, text=body.validated_data["text"],
                                           internal=body.validated_data.get("internal", True))
            return Response(TicketCommentSerializer(comment).data, status=status.HTTP_201_CREATED)
        return Response(TicketCommentSerializer(ticket.comments.order_by("created_at"), many=True).data)

    @extend_schema(request=TicketAttachmentSerializer, responses={200: TicketAttachmentSerializer(many=True),
                                                             201: TicketAttachmentSerializer})
    @action(detail=True, methods=["get", "post"], required_permission="tickets.view_ticketattachment", pagination_class=None,
            parser_classes=[MultiPartParser, FormParser, JSONParser])
    def attachments(self, request, pk=None):
        """GET: the ticket's files; POST multipart `file`, `description`, `customer_visible`
        (needs tickets.add_ticketattachment)."""
        ticket = self._ticket(pk)
        if request.method == "POST":
            if not request.user.has_perm("tickets.add_ticketattachment"):
                raise PermissionDenied("You may not attach files (tickets.add_ticketattachment).")
            body = TicketAttachmentSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            att = services.attach_file(ticket, actor=request.user, file=body.validated_data["file"],
                                       description=body.validated_data.get("description", ""),
                                       customer_visible=body.validated_data.get("customer_visible", False))
            return Response(TicketAttachmentSerializer(att).data, status=status.HTTP_201_CREATED)
        return Response(TicketAttachmentSerializer(ticket.attachments.all(), many=True).data)


router.register("tickets", TicketViewSet, basename="ticket")
