"""Panels on the customer page, contributed by apps above crm.

crm must not import the apps that depend on it (ledger, subscriptions, inventory,
tickets…), yet the customer page is where the operator sees all of them. So those apps
register a panel here, usually at import time in their `screens.py`:

    from tarifa.crm.panels import register_panel

    register_panel("Billing accounts", "ledger/customer_accounts_panel.html",
                   context_func=lambda request, customer: {"accounts": accounts_of(customer)},
                   permission="ledger.view_billingaccount", order=10)

The customer page renders each panel the user may see, in `order`, with the template's
context holding `customer`, `request`, `panel` and whatever `context_func` returned.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.template.loader import render_to_string
from django.utils.safestring import SafeString


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    template: str
    context_func: Callable | None = None  # context_func(request, customer) -> dict
    permission: str | None = None
    order: int = 100


_panels: dict[str, Panel] = {}


def register_panel(title: str, template: str, context_func: Callable | None = None, permission: str | None = None,
                   *, key: str | None = None, order: int = 100) -> Panel:
    """Add a panel to the customer page. Registering the same `key` (default: the
    template name) again replaces the panel, so module reloads do not duplicate it."""
    panel = Panel(key=key or template, title=str(title), template=template, context_func=context_func,
                  permission=permission, order=order)
    _panels[panel.key] = panel
    return panel


def unregister_panel(key: str) -> None:
    _panels.pop(key, None)


def all_panels() -> list[Panel]:
    return sorted(_panels.values(), key=lambda p: (p.order, p.title))


def panels_for(request, customer) -> list[tuple[Panel, SafeString]]:
    """The panels `request.user` may see, each rendered to HTML."""
    rendered = []
    for panel in all_panels():
        if panel.permission and not request.user.has_perm(panel.permission):
            continue
        context = {"customer": customer, "panel": panel}
        if panel.context_func is not None:
            context.update(panel.context_func(request, customer) or {})
        rendered.append((panel, render_to_string(panel.template, context, request=request)))
    return rendered
