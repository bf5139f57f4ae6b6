"""The shell's own screens and endpoints: the audit trail (audit sits below the shell)."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from tarifa.audit.models import AuditEvent

from .api import RecordViewSet, router
from .registry import ModelScreens, register

register(ModelScreens(
    model=AuditEvent, area="Administration",
    columns=["at", "actor_label", "action", "object_type", "object_repr", "ip", "channel"],
    filterset_fields=["action", "object_type", "channel"], search_fields=["object_repr", "actor_label", "object_id"],
    ordering=["-at"], menu_label=_("Audit trail"),
))


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
