from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from tarifa.web.dashboard import widget
from tarifa.web.registry import Action, ModelScreens, register

from . import services
from .forms import TemplateForm
from .models import Notification, NotificationTemplate, OutboxMessage

register(ModelScreens(
    model=NotificationTemplate, area="Operations", columns=["event", "channel", "language", "subject", "active"],
    form_class=TemplateForm, create=services.create_template, update=services.update_template,
    # A language the demo templates do not have yet (one template per event, channel and language).
    form_sample=lambda view, obj, user: {"language": "de", "subject": "Ihr Guthaben"} if view == "add" else {},
    filterset_fields=["event", "channel", "language", "active"], search_fields=["subject", "body"],
    ordering=["event", "channel", "language"],
))

register(ModelScreens(
    model=Notification, area="Operations",
    columns=["created_at", "customer__number", "event", "channel", "recipient", "status", "attempts", "sent_at"],
    filterset_fields=["status", "event", "channel"], search_fields=["recipient", "customer__number", "subject"],
    ordering=["-created_at"], menu_label=_("Notification log"),
    actions=[Action("resend", _("Send again"), "integrations.resend_notification",
                    lambda note, *, actor: services.resend(note, actor=actor),
                    available=lambda note: note.status in ("sent", "failed", "retrying", "outbox"))],
))

register(ModelScreens(
    model=OutboxMessage, area="Operations", menu_label=_("Local outbox"),
    columns=["created_at", "channel", "recipient", "subject", "notification__status"],
    filterset_fields=["channel"], search_fields=["recipient", "subject", "body"], ordering=["-created_at"],
    detail_fields=["created_at", "channel", "recipient", "subject", "body", "attachments", "notification"],
    detail_template="integrations/outboxmessage_detail.html",
))


@widget("integrations.view_notification")
def failed_notifications(request):
    """Failed deliveries (after their last retry): the operator's alert that mail or SMS is broken."""
    count = Notification.objects.filter(status=Notification.Status.FAILED).count()
    return {"label": _("Notifications failed"), "value": count, "alert": count > 0,
            "url": reverse("integrations:notification_list") + "?status=failed"}


@widget("integrations.view_outboxmessage")
def outbox_messages(request):
    return {"label": _("Local outbox (not sent)"), "value": OutboxMessage.objects.count(),
            "url": reverse("integrations:outboxmessage_list")}
