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

Other pages take panels the same way: `register_panel(..., page="subscription")` puts one on the
subscription's page (its template gets the subscription as `object`; `context_func(request,
subscription)`), for apps above subscriptions (network sessions, say).
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
    page: str = "customer"
    show: Callable | None = None  # show(record) -> bool: only on some records' pages


_panels: dict[str, Panel] = {}


def register_panel(title: str, template: str, context_func: Callable | None = None, permission: str | None = None,
                   *, key: str | None = None, order: int = 100, page: str = "customer",
                   show: Callable | None = None) -> Panel:
    """Add a panel to the customer page. Registering the same `key` (default: the
    template name) again replaces the panel, so module reloads do not duplicate it."""
    panel = Panel(key=key or template, title=str(title), template=template, context_func=context_func,
                  permission=permission, order=order, page=page, show=show)
    _panels[panel.key] = panel
    return panel


def unregister_panel(key: str) -> None:
    _panels.pop(key, None)


def all_panels(page: str = "customer") -> list[Panel]:
    return sorted((p for p in _panels.values() if p.page == page), key=lambda p: (p.order, p.title))


def panels_for(request, customer, page: str = "customer") -> list[tuple[Panel, SafeString]]:
    """The panels of `page` that `request.user` may see, each rendered to HTML (`customer` is the
    page's record: a customer, or the subscription of the subscription page)."""
    rendered = []
    for panel in all_panels(page):
        if panel.permission and not request.user.has_perm(panel.permission):
            continue
        if panel.show is not None and not panel.show(customer):
            continue
        context = {page: customer, "object": customer, "panel": panel}
        if panel.context_func is not None:
            context.update(panel.context_func(request, customer) or {})
        rendered.append((panel, render_to_string(panel.template, context, request=request)))
    return rendered
