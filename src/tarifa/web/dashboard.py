"""Dashboard widgets (tiles): apps add theirs with `@widget` (a dict: label, value, and optionally detail,
chart — safe SVG markup —, url, alert); each is shown only with its permission
(and only to users holding identity.view_dashboard: the page itself is open to everyone logged in)."""

from collections.abc import Callable

_widgets: list[tuple[str | None, Callable]] = []


def widget(permission: str | None = None):
    def register(func):
        _widgets.append((permission, func))
        return func

    return register


def widgets(request) -> list[dict]:
    return [func(request) for perm, func in _widgets if perm is None or request.user.has_perm(perm)]
