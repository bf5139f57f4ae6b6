from tarifa.web.registry import ModelScreens, register

from .models import AuditEvent

register(ModelScreens(
    model=AuditEvent, area="Administration", columns=["at", "actor_label", "action", "object_type", "object_repr", "ip", "channel"],
    filterset_fields=["action", "object_type", "channel"], search_fields=["object_repr", "actor_label", "object_id"],
    ordering=["-at"], menu_label="Audit trail",
))
