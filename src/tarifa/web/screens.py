"""The shell's own screens and endpoints: the audit trail (audit sits below the shell)."""

from django.apps import apps
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from tarifa.audit.models import AuditEvent

from .api import RecordViewSet, router
from .registry import ModelScreens, register, screens_for

def _object_type(event):
    model = _model(event)
    return capfirst(model._meta.verbose_name) if model is not None else event.object_type


def _model(event):
    try:
        return apps.get_model(event.object_type)
    except (LookupError, ValueError):
        return None


def _object_link(event):
    """The changed record by its name, linked to its page (never its UUID)."""
    model = _model(event)
    url = None
    if model is not None and (s := screens_for(model)) is not None:
        try:
            url = reverse(s.url_name("detail"), args=[event.object_id])
        except NoReverseMatch:
            url = None
    text = event.object_repr or _("(unnamed)")
    return format_html('<a href="{}">{}</a>', url, text) if url else text


def _changes(event):
    """The field changes in words and units (web/timeline.py), as a before/after table."""
    from django.utils.html import format_html_join

    from .timeline import entries

    changes = entries([event])[0].changes
    if not changes:
        return ""
    rows = format_html_join("", "<tr><td>{}</td><td class=\"muted\">{}</td><td>{}</td></tr>",
                            ((c.label, c.old, c.new) for c in changes))
    return format_html('<table class="inner"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead>'
                       '<tbody>{}</tbody></table>', _("Field"), _("Before"), _("After"), rows)


register(ModelScreens(
    model=AuditEvent, area="Administration",
    columns=["at", "actor_label", "action", "object_type", "object_repr", "ip", "channel"],
    filterset_fields=["action", "object_type", "channel"], search_fields=["object_repr", "actor_label", "object_id"],
    ordering=["-at"], menu_label=_("Audit trail"),
    detail_fields=["at", "actor_label", "action", "object_type", "object_id", "message", "changes", "ip", "channel",
                   "request_id"],
    formats={"object_type": _object_type, "object_id": _object_link, "changes": _changes},
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
