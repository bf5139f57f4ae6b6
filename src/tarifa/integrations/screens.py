from django.utils.translation import gettext_lazy as _

from tarifa.web.registry import Action, ModelScreens, register

from . import services
from .forms import TemplateForm
from .models import Notification, NotificationTemplate

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
                    available=lambda note: note.status in ("sent", "failed", "retrying"))],
))
