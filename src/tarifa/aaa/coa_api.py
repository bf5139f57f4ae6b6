"""REST API of the CoA side (imported by api.py): `POST /api/v1/aaa/sessions/{id}/disconnect/`,
`/api/v1/aaa/coa-log/` (one row per transmission), `/api/v1/aaa/reconciliations/` (runs with
their findings)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.kernel.errors import DomainError, NotFound
from tarifa.web.api import RecordViewSet, register_endpoint, router

from . import coa_services
from .coa_models import CoaAttempt, ReconciliationRun
from .models import FinishedSession, Session


class CoaAttemptSerializer(serializers.ModelSerializer):
    nas_name = serializers.CharField(source="nas.name", read_only=True)
    error_cause_text = serializers.CharField(read_only=True)

    class Meta:
        model = CoaAttempt
        fields = ["id", "request_id", "at", "kind", "reason", "nas", "nas_name", "session_id", "acct_session_id",
                  "login", "subscription", "attributes", "granted", "attempt", "outcome", "error_cause",
                  "error_cause_text", "detail", "elapsed_ms", "actor"]


class CoaAttemptViewSet(RecordViewSet):
    """The CoA/DM log: every CoA-Request and Disconnect-Request transmission and its outcome (ACK,
    NAK with the Error-Cause, no answer); the attempts of one request share `request_id`."""

    queryset = CoaAttempt.objects.select_related("nas").order_by("-at")
    serializer_class = CoaAttemptSerializer
    filterset_fields = ["login", "nas", "subscription", "kind", "reason", "outcome", "session_id", "request_id"]


class ReconciliationRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReconciliationRun
        fields = ["id", "started_at", "finished_at", "trigger", "checked", "differences", "disconnected", "changed",
                  "failed", "findings"]


class ReconciliationRunViewSet(RecordViewSet):
    """Reconciliation runs: open sessions compared with the subscriptions' states, every difference
    found and what was done (`tarifa aaa reconcile`, and every five minutes)."""

    queryset = ReconciliationRun.objects.order_by("-started_at")
    serializer_class = ReconciliationRunSerializer


class AttemptOutSerializer(serializers.Serializer):
    attempt = serializers.IntegerField()
    at = serializers.DateTimeField()
    outcome = serializers.CharField()
    error_cause = serializers.IntegerField(allow_null=True)
    error_cause_text = serializers.CharField()
    elapsed_ms = serializers.IntegerField()
    detail = serializers.CharField()


class DisconnectResultSerializer(serializers.Serializer):
    session = serializers.UUIDField()
    outcome = serializers.CharField(help_text="ack, nak, timeout or error: the last attempt's.")
    attempts = AttemptOutSerializer(many=True)


class SessionDisconnectView(APIView):
    """Send a Disconnect-Request for an open session to its NAS and answer how it ended (the session
    closes when the NAS's Accounting Stop arrives). 409 `session_closed` for a finished session."""

    required_permission = "aaa.change_session"

    @extend_schema(request=None, responses={200: DisconnectResultSerializer})
    def post(self, request, pk):
        session = Session.objects.filter(pk=pk).first()
        if session is None:
            if FinishedSession.objects.filter(pk=pk).exists():
                raise DomainError("The session has already ended.", code="session_closed", status=409)
            raise NotFound("No such session.")
        result = coa_services.disconnect_session(session, actor=request.user)
        return Response({"session": str(session.pk), "outcome": result.outcome,
                         "attempts": [{"attempt": a.number, "at": a.at, "outcome": a.outcome,
                                       "error_cause": a.error_cause, "error_cause_text": a.error_cause_text,
                                       "elapsed_ms": int(a.elapsed_ms), "detail": a.detail}
                                      for a in result.attempts]})


router.register("aaa/coa-log", CoaAttemptViewSet, basename="aaa-coaattempt")
router.register("aaa/reconciliations", ReconciliationRunViewSet, basename="aaa-reconciliationrun")
register_endpoint("aaa/sessions/<uuid:pk>/disconnect/", SessionDisconnectView.as_view(), "aaa-session-disconnect",
                  "aaa.change_session")
