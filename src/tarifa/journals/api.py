from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.web.api import RecordViewSet, StrictSerializer, register_endpoint, router

from . import selectors, services
from .models import JournalEntry, Mismatch


class JournalEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = JournalEntry
        fields = ["id", "branch", "seq", "kind", "reference", "amount", "currency", "counterparty", "payment",
                  "occurred_at", "recorded_at", "sealed_at", "prev_hash", "hash", "details"]
        read_only_fields = fields


class JournalEntryViewSet(RecordViewSet):
    """This branch's payment journal (read-only: entries are written by payments and interbranch)."""

    queryset = JournalEntry.objects.all()
    serializer_class = JournalEntrySerializer
    filterset_fields = ["kind", "currency", "counterparty", "seq"]
    search_fields = ["reference"]

    def get_queryset(self):
        return JournalEntry.objects.filter(branch=selectors.own_code()).order_by("-recorded_at")


class MismatchSerializer(serializers.ModelSerializer):
    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Mismatch
        fields = ["id", "date", "code", "branch", "counterparty", "reference", "details", "status", "assignee",
                  "resolution", "reported_by", "found_at", "last_found_at", "resolved_at"]


class AssignSerializer(StrictSerializer):
    assignee = serializers.SlugRelatedField(slug_field="username",
                                            queryset=MismatchSerializer.Meta.model._meta.get_field(
                                                "assignee").related_model.objects.filter(is_active=True))


class ResolveSerializer(StrictSerializer):
    resolution = serializers.CharField(max_length=2000)


class MismatchViewSet(RecordViewSet):
    """Reconciliation findings: work items (assign, resolve). At the centre its own; at a branch the centre's
    reports concerning it."""

    queryset = Mismatch.objects.all()
    serializer_class = MismatchSerializer
    filterset_fields = ["status", "code", "branch", "counterparty", "date"]
    search_fields = ["reference"]

    def get_queryset(self):
        return Mismatch.objects.filter(node=selectors.own_code()).select_related("assignee").order_by("-date", "branch")

    @extend_schema(request=AssignSerializer, responses=MismatchSerializer)
    @action(detail=True, methods=["post"], required_permission="journals.change_mismatch")
    def assign(self, request, pk=None):
        body = AssignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        item = services.assign_mismatch(self.get_object(), actor=request.user, **body.validated_data)
        return Response(MismatchSerializer(item).data)

    @extend_schema(request=ResolveSerializer, responses=MismatchSerializer)
    @action(detail=True, methods=["post"], required_permission="journals.change_mismatch")
    def resolve(self, request, pk=None):
        body = ResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        item = services.resolve_mismatch(self.get_object(), actor=request.user, **body.validated_data)
        return Response(MismatchSerializer(item).data)


class ReconcileRequestSerializer(StrictSerializer):
    date = serializers.DateField()


class ReconcileReportSerializer(serializers.Serializer):
    date = serializers.CharField()
    ok = serializers.BooleanField()
    found = serializers.IntegerField()
    mismatches = serializers.ListField(child=serializers.DictField())
    branches = serializers.DictField()


class ReconcileAPI(APIView):
    """Reconcile the branches' payment journals for a day (centre only): the report, as the command prints it."""

    required_permission = "journals.reconcile"

    @extend_schema(request=ReconcileRequestSerializer, responses=ReconcileReportSerializer)
    def post(self, request):
        body = ReconcileRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(services.reconcile(body.validated_data["date"], actor=request.user))


router.register("journals/entries", JournalEntryViewSet, basename="journalentry")
router.register("journals/mismatches", MismatchViewSet, basename="mismatch")
register_endpoint("journals/reconcile/", ReconcileAPI.as_view(), "journals-reconcile", "journals.reconcile")
