from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from tarifa.web.dashboard import widget
from tarifa.web.registry import ModelScreens, Page, register, register_page

from . import selectors, services
from .forms import NumberRangeForm
from .models import NumberRange, Release

AREA = "Administration"


def _release_context(request, release):
    return {"release_changes": release.changes, "release_counts": release.counts}


register(ModelScreens(
    model=Release, area=AREA, columns=["number", "effective_date", "published_at", "applied_at", "origin"],
    ordering=["-number"], filterset_fields=["origin"], menu=False,
    detail_fields=["number", "format_version", "effective_date", "centre", "published_at", "published_by", "note",
                   "applied_at", "origin", "content_hash", "key_id"],
    detail_template="releases/release_detail.html", detail_context=_release_context,
))

register(ModelScreens(
    model=NumberRange, area="Catalog", columns=["kind", "first", "last", "assigned_branch", "note"],
    form_class=NumberRangeForm, create=services.create_number_range, update=services.update_number_range,
    archive=services.archive_number_range, ordering=["kind", "first"], filterset_fields=["kind", "assigned_branch"],
    search_fields=["first", "last", "assigned_branch"],
    form_sample=lambda view, obj, user: {"kind": "phone_number", "first": "790000000", "last": "790009999",
                                         "assigned_branch": "B3"} if view == "add" else {},
))

register_page(Page("releases:overview", _("Reference releases"), AREA, "releases.view_release"))
register_page(Page("releases:publish", _("Publish a reference release"), AREA, "releases.publish_release",
                   menu=False))


@widget("releases.view_release")
def release_in_force(request):
    """The reference release in force (a branch: applied from the centre; the centre: published last)."""
    from tarifa.federation import selectors as federation

    if not federation.enabled():
        return {"label": _("Reference release"), "value": _("standalone"), "url": reverse("releases:overview")}
    status = selectors.status()
    detail = (_("effective %(day)s, since %(at)s") % {"day": status["effective_date"], "at": status["applied_at"][:16]}
              if status["number"] else _("none yet"))
    return {"label": _("Reference release"), "value": status["number"] or "—", "detail": detail,
            "alert": bool(status["refused"]), "url": reverse("releases:overview")}
