from .navigation import menu_for


def navigation(request):
    """The menu by the operator's jobs (web/navigation.py), only the entries the user may open; the
    group holding the current page is marked open."""
    user = getattr(request, "user", None)
    groups = menu_for(user)
    path = getattr(request, "path", "")
    best = None
    for group in groups:
        for _section, entries in group["sections"]:
            for _label, url in entries:
                if path.startswith(url) and (best is None or len(url) > best[1]):
                    best = (group, len(url))
    for group in groups:
        group["open"] = best is not None and group is best[0]
    return {"nav_groups": groups}
