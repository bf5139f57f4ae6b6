from django.urls import NoReverseMatch, reverse
from django.utils.text import capfirst

from . import registry


def navigation(request):
    """Menu entries grouped by area, only those the user may open."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_areas": []}
    areas: dict[str, list] = {}
    for s in registry.all_screens():
        if s.menu and user.has_perm(s.perm("view")):
            areas.setdefault(s.area, []).append((capfirst(str(s.menu_label or s.verbose_name_plural)), s.url("list")))
    for page in registry.all_pages():
        if page.menu and (page.permission is None or user.has_perm(page.permission)):
            try:
                areas.setdefault(page.area, []).append((page.label, reverse(page.name)))
            except NoReverseMatch:
                continue
    order = {a: i for i, a in enumerate(registry.AREAS)}
    return {"nav_areas": sorted(areas.items(), key=lambda kv: order.get(kv[0], 99))}
