from .models import AuditEvent


def history(obj):
    """The object's audit trail, newest first."""
    return AuditEvent.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk)).select_related("actor")
