"""Step handlers: what runs when a ticket enters a step.

A handler kind is a function registered under a name:

    from tarifa.tickets.handlers import handler, HandlerFailed

    @handler("reserve_device", phase="post", label="Reserve a device", fields=["model"])
    def reserve_device(call):
        ...                     # call.ticket (locked), call.params, call.data, call.actor, call.transition
        return {"device": "SN-1"}   # JSON-able: kept in the ticket's flow history

- `phase="pre"`: runs before the ticket moves; returning `{"veto": "reason"}` (or raising
  `Veto("reason")`) refuses the move (422 `vetoed`), nothing changes.
- `phase="post"`: runs after the move, in the same transaction. Raising anything (a
  `DomainError` from a service, `HandlerFailed`) rolls the move back; the failure is then
  recorded on the ticket. Work that reaches outside Tarifa (a network element) must not be
  done here: emit an event or defer a job (`call_adapter` below), which runs after commit.
- `phase="any"`: usable in both (scripts).

`fields` names the parameters the kind reads (shown in the flow editor). A module that
adds kinds (inventory's `reserve_device`, say) is imported by its app's `ready()`.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from tarifa.kernel.errors import DomainError


class Veto(DomainError):
    code = "vetoed"
    status = 422


class HandlerFailed(DomainError):
    code = "handler_failed"
    status = 422


@dataclass
class HandlerCall:
    ticket: object
    params: dict
    data: dict  # the data entered with this move
    actor: object
    transition: object | None
    step: object  # the step being entered
    phase: str = "post"
    script_results: list = field(default_factory=list)  # runs to keep if the move rolls back


@dataclass
class HandlerKind:
    name: str
    func: Callable
    phase: str  # pre | post | any
    label: str
    fields: list[str] = field(default_factory=list)


HANDLERS: dict[str, HandlerKind] = {}


def handler(name: str, *, phase: str, label: str | None = None, fields=()):
    if phase not in ("pre", "post", "any"):
        raise ValueError(f"handler {name}: phase is pre, post or any")

    def register(func):
        HANDLERS[name] = HandlerKind(name=name, func=func, phase=phase, label=label or name.replace("_", " "),
                                     fields=list(fields))
        return func

    return register


def kind_choices(phase: str | None = None) -> list[tuple[str, str]]:
    return [(k.name, k.label) for k in sorted(HANDLERS.values(), key=lambda k: k.label)
            if phase is None or k.phase in (phase, "any")]


def get(name: str) -> HandlerKind:
    try:
        return HANDLERS[name]
    except KeyError:
        raise HandlerFailed(f"Unknown handler kind {name!r}.", code="unknown_handler") from None


# --- helpers -------------------------------------------------------------------------------------

def _values(call) -> dict:
    """Everything known about the request: the ticket's parameters, data collected so far, this move's data."""
    return {**(call.ticket.parameters or {}), **(call.ticket.data or {}), **(call.data or {})}


def _account(ticket):
    if ticket.billing_account_id:
        return ticket.billing_account
    account = ticket.customer.billing_accounts.filter(status="active", archived_at__isnull=True) \
        .order_by("number").first()
    if account is None:
        raise HandlerFailed(f"Customer {ticket.customer.number} has no open billing account.", code="no_account")
    return account


def _subscription(call):
    if call.ticket.subscription_id is None:
        raise HandlerFailed("The ticket names no subscription.", code="no_subscription")
    return call.ticket.subscription


def _date(value, name):
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise HandlerFailed(f"{name}: {value!r} is not a date (YYYY-MM-DD).", code="invalid_date") from None


# --- pre-handlers --------------------------------------------------------------------------------

@handler("require_account", phase="pre", label="Require an open billing account")
def require_account(call):
    try:
        _account(call.ticket)
    except HandlerFailed as exc:
        return {"veto": exc.message}
    return {"ok": True}


@handler("require_values", phase="pre", label="Require values", fields=["names"])
def require_values(call):
    """Veto unless each of `names` (a list, or comma-separated) has a value in the ticket's
    parameters or data collected so far."""
    names = call.params.get("names") or []
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    values = _values(call)
    missing = [n for n in names if values.get(n) in (None, "")]
    if missing:
        return {"veto": f"Missing: {', '.join(missing)}."}
    return {"ok": True}


@handler("require_balance", phase="pre", label="Require a balance of at least", fields=["amount"])
def require_balance(call):
    from tarifa.kernel.money import parse_amount

    account = _account(call.ticket)
    need = parse_amount(str(call.params.get("amount", "0")))
    balance = account.balance
    if balance < need:
        return {"veto": f"The balance of {account.number} is below {need.normalize():f} {account.currency}."}
    return {"ok": True}


# --- post-handlers -------------------------------------------------------------------------------

@handler("activate_subscription", phase="post", label="Activate the requested tariff")
def activate_subscription(call):
    """Create the subscription of the ticket's requested tariff with its parameters and
    identifiers (from the ticket's parameters and the data collected) and activate it. Exactly
    once: a ticket that already names an active subscription is left as it is."""
    from tarifa.subscriptions import services as subs
    from tarifa.subscriptions.models import IDENTIFIERS

    ticket = call.ticket
    if ticket.subscription_id and ticket.subscription.status != "pending":
        return {"subscription": ticket.subscription.number, "already": ticket.subscription.status}
    if ticket.subscription_id:
        sub = subs.activate_subscription(ticket.subscription, actor=call.actor, reason=f"ticket {ticket.number}")
        return {"subscription": sub.number, "status": sub.status}
    if ticket.requested_tariff_id is None:
        raise HandlerFailed("The ticket has no requested tariff.", code="no_tariff")
    tariff = ticket.requested_tariff
    values = _values(call)
    codes = set(tariff.parameters.values_list("code", flat=True))
    identifiers = {k: str(v) for k, v in values.items() if k in IDENTIFIERS and v not in (None, "")}
    params = {k: v for k, v in values.items() if k in codes and v not in (None, "")}
    sub = subs.create_subscription(actor=call.actor, billing_account=_account(ticket), tariff=tariff,
                                   parameters=params, note=f"ticket {ticket.number}", activate=True, **identifiers)
    ticket.subscription = sub
    ticket.save(update_fields=["subscription"])
    return {"subscription": sub.number, "status": sub.status}


@handler("change_tariff", phase="post", label="Change the tariff", fields=["effective_field"])
def change_tariff(call):
    """Move the ticket's subscription to the requested tariff, from the date in the data field
    named by `effective_field` (default `effective`; empty: today)."""
    from tarifa.subscriptions import services as subs

    ticket = call.ticket
    sub = _subscription(call)
    if ticket.requested_tariff_id is None:
        raise HandlerFailed("The ticket has no requested tariff.", code="no_tariff")
    values = _values(call)
    effective = _date(values.get(call.params.get("effective_field") or "effective"), "effective")
    codes = set(ticket.requested_tariff.parameters.values_list("code", flat=True))
    params = {k: v for k, v in values.items() if k in codes and v not in (None, "")}
    sub = subs.change_tariff(sub, actor=call.actor, tariff=ticket.requested_tariff, effective=effective,
                             parameters=params or None, reason=f"ticket {ticket.number}")
    return {"subscription": sub.number, "tariff": ticket.requested_tariff.code,
            "effective": str(effective or "today")}


@handler("terminate_subscription", phase="post", label="Terminate the subscription")
def terminate_subscription(call):
    from tarifa.subscriptions import services as subs

    sub = _subscription(call)
    if sub.status == "terminated":
        return {"subscription": sub.number, "already": "terminated"}
    sub = subs.terminate(sub, actor=call.actor, reason=f"ticket {call.ticket.number}")
    return {"subscription": sub.number, "status": sub.status}


@handler("suspend_subscription", phase="post", label="Suspend the subscription", fields=["cause"])
def suspend_subscription(call):
    from tarifa.subscriptions import services as subs

    sub = _subscription(call)
    sub = subs.suspend(sub, actor=call.actor, cause=call.params.get("cause") or "customer_request",
                       reason=f"ticket {call.ticket.number}")
    return {"subscription": sub.number, "status": sub.status}


@handler("resume_subscription", phase="post", label="Resume the subscription", fields=["cause"])
def resume_subscription(call):
    from tarifa.subscriptions import services as subs

    sub = _subscription(call)
    sub = subs.resume(sub, actor=call.actor, cause=call.params.get("cause") or "customer_request",
                      reason=f"ticket {call.ticket.number}")
    return {"subscription": sub.number, "status": sub.status}


@handler("notify", phase="post", label="Send a notification", fields=["message", "to"])
def notify(call):
    """Announce the move: the event `ticket.notification` (customer notifications subscribe to
    it), and a comment on the ticket, visible to the customer when `to` is "customer"."""
    from tarifa.kernel import events

    from . import services

    ticket = call.ticket
    message = str(call.params.get("message") or f"Ticket {ticket.number} is now at “{call.step.name}”.")
    to = call.params.get("to") or "staff"
    services.add_comment(ticket=ticket, text=message, internal=to != "customer", actor="system:tickets")
    events.emit("ticket.notification", obj=ticket, payload={"ticket": ticket.number, "to": to, "message": message,
                                                            "customer": str(ticket.customer_id)})
    return {"notified": to}


@handler("open_child_ticket", phase="post", label="Open a child ticket", fields=["ticket_type", "title"])
def open_child_ticket(call):
    from . import services
    from .models import TicketType

    ticket = call.ticket
    code = call.params.get("ticket_type")
    ttype = TicketType.objects.filter(code=code, archived_at__isnull=True).first()
    if ttype is None:
        raise HandlerFailed(f"No ticket type {code!r}.", code="unknown_ticket_type")
    child = services.open_ticket(actor=call.actor, ticket_type=ttype, customer=ticket.customer,
                                 title=call.params.get("title") or f"{ttype.name} for {ticket.number}",
                                 billing_account=ticket.billing_account, subscription=ticket.subscription,
                                 requested_tariff=ticket.requested_tariff, parameters=ticket.parameters,
                                 parent=ticket)
    return {"child": child.number}


@handler("call_adapter", phase="post", label="Call a network adapter (job)", fields=["adapter", "operation"])
def call_adapter(call):
    """Reach outside through the job queue: the event `ticket.adapter_call` is written in this
    transaction and handled by a job after commit (integrations subscribe to it)."""
    from tarifa.kernel import events

    ticket = call.ticket
    event = events.emit("ticket.adapter_call", obj=ticket, payload={
        "ticket": ticket.number, "adapter": call.params.get("adapter", ""),
        "operation": call.params.get("operation", ""), "data": _values(call)})
    return {"queued": str(event.id)}


# --- scripts -------------------------------------------------------------------------------------

def script_context(call) -> dict:
    """What a script sees of the ticket: plain JSON, no model objects."""
    t = call.ticket
    account = t.billing_account if t.billing_account_id else t.customer.billing_accounts.filter(
        status="active", archived_at__isnull=True).order_by("number").first()
    return {
        "ticket": {"number": t.number, "type": t.ticket_type.code, "step": t.step.code, "title": t.title,
                   "priority": t.priority, "parameters": t.parameters, "data": t.data,
                   "requested_tariff": t.requested_tariff.code if t.requested_tariff_id else None,
                   "subscription": t.subscription.number if t.subscription_id else None,
                   "account": account.number if account is not None else None,
                   "customer": t.customer.number},
        "customer": {"number": t.customer.number, "name": t.customer.display_name, "kind": t.customer.kind},
        "move": {"to": call.step.code, "data": call.data or {},
                 "from": call.transition.from_step.code if call.transition else None},
        "phase": call.phase,
    }


@handler("script", phase="any", label="Run a script", fields=["script"])
def run_script_handler(call):
    """Run the operator's script (`script`: the code of a Script, see docs/scripts.md) as the
    person moving the ticket. As a pre-handler it vetoes by returning {"veto": "reason"}; a
    script that fails (raises, runs out of its budget) fails the move, which is rolled back and
    the failure recorded. The functions it calls run in the move's transaction."""
    try:
        from tarifa.scripts.services import run_script
    except ImportError:
        raise HandlerFailed("Scripts are not installed.", code="scripts_unavailable") from None
    code = call.params.get("script")
    if not code:
        raise HandlerFailed("The handler names no script.", code="no_script")
    result = run_script(script=code, context=script_context(call), actor=call.actor, dry_run=False,
                        purpose=f"{call.ticket.number} {call.phase}-handler of {call.step.code}")
    call.script_results.append(result)
    if not result.ok:
        raise HandlerFailed(f"Script {code} failed ({result.outcome}): {result.error}", code="script_failed")
    value = result.value
    if isinstance(value, dict) and value.get("veto"):
        return {"veto": str(value["veto"]), "script": code}
    return {"script": code, "value": value}
