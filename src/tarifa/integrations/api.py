from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from tarifa.web.api import RecordViewSet, StrictModelSerializer, router

from . import services
from .models import Notification, NotificationTemplate, OutboxMessage


class TemplateSerializer(StrictModelSerializer):
    class Meta:
        model = NotificationTemplate
        fields = ["id", "event", "channel", "language", "subject", "body", "active"]
        validators = []


class NotificationSerializer(serializers.ModelSerializer):
    customer = serializers.SlugRelatedField(slug_field="number", read_only=True)

    class Meta:
        model = Notification
        fields = ["id", "customer", "event", "source_event", "channel", "recipient", "language", "subject", "body",
                  "status", "attempts", "next_attempt_at", "sent_at", "last_error", "provider_id", "created_at"]


class NotificationTemplateViewSet(RecordViewSet):
    queryset = NotificationTemplate.objects.order_by("event", "channel", "language")
    serializer_class = TemplateSerializer
    filterset_fields = ["event", "channel", "language", "active"]
    create_service = services.create_template
    update_service = services.update_template


class NotificationViewSet(RecordViewSet):
    """The delivery log; POST …/resend sends a sent or failed notification again."""

    queryset = Notification.objects.select_related("customer").order_by("-created_at")
    serializer_class = NotificationSerializer
    filterset_fields = ["status", "event", "channel", "customer__number"]

    @extend_schema(request=None, responses=NotificationSerializer)
    @action(detail=True, methods=["post"], required_permission="integrations.resend_notification")
    def resend(self, request, pk=None):
        return Response(NotificationSerializer(services.resend(self.get_object(), actor=request.user)).data)


class OutboxMessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = OutboxMessage
        fields = ["id", "created_at", "channel", "recipient", "subject", "body", "attachments", "notification"]
        read_only_fields = fields


class OutboxMessageViewSet(RecordViewSet):
    """The local outbox: messages kept instead of sent (no SMTP host / SMS gateway configured)."""

    queryset = OutboxMessage.objects.order_by("-created_at")
    serializer_class = OutboxMessageSerializer
    filterset_fields = ["channel", "recipient", "notification"]
    http_method_names = ["get", "head", "options"]


router.register("notification-templates", NotificationTemplateViewSet, basename="notificationtemplate")
router.register("notifications", NotificationViewSet, basename="notification")
router.register("outbox", OutboxMessageViewSet, basename="outboxmessage")
