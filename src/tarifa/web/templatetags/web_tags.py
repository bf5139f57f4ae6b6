"""Tags of the UI shell's templates: {% timeline history object as entries %}."""

from django import template

from tarifa.web import timeline as _timeline

register = template.Library()


@register.simple_tag
def timeline(events, obj=None):
    """Readable timeline entries for audit events (web/timeline.py)."""
    return _timeline.entries(list(events), obj)
