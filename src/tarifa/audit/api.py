from rest_framework import serializers

from tarifa.web.api import RecordViewSet, router

from .models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "at", "object_type", "object_id", "object_repr", "action", "actor_label", "request_id", "ip",
                  "channel", "changes", "message", "branch"]


class AuditEventViewSet(RecordViewSet):
    """The audit trail; filter by `object_type` and `object_id` for one record's history."""

    queryset = AuditEvent.objects.order_by("-at", "-id")
    serializer_class = AuditEventSerializer
    filterset_fields = ["object_type", "object_id", "action", "actor_label", "channel"]


router.register("audit-events", AuditEventViewSet, basename="auditevent")
