"""Tickets: the only write path.

`advance()` is the heart: atomic and exactly-once. It locks the ticket row, compares the
step the request moves *from* with the ticket's step (`stale_step`, 409), checks the
transition is in the flow, the resolution (backward moves) and the step's required data,
runs the target step's pre-handlers (a veto: 422 `vetoed`, nothing changes), moves the
ticket, runs the post-handlers in the same transaction (a failure rolls the move back and is
recorded on the ticket afterwards, in its own transaction), and when the step is automatic
moves on by itself. Every move is a `FlowEntry` with the data, handler results and the time
spent at the step left.
"""

import datetime as dt
import logging

from django.db import transaction

from tarifa.audit import services as recorded
from tarifa.kernel.clock import now
from tarifa.kernel.errors import Conflict, DomainError, NotFound, PermissionDenied, ValidationFailed
from tarifa.kernel.numbering import next_number

from . import handlers as kinds
from .models import (Comment, FlowEntry, Step, StepField, StepHandler, Ticket, TicketAttachment, TicketType,
                     Transition)
from .selectors import may_view, may_work

log = logging.getLogger(__name__)
MAX_AUTOMATIC_HOPS = 20


def _label(actor) -> str:
    return recorded.actor_label(actor)[:150]


def _is_person(actor) -> bool:
    return hasattr(actor, "has_perm")


def _require(actor, perm: str):
    if _is_person(actor) and not actor.has_perm(perm):
        raise PermissionDenied(f"You may not do this ({perm}).")


def _due(step, since):
    return since + dt.timedelta(minutes=step.sla_minutes) if step.sla_minutes else None


# --- flow configuration --------------------------------------------------------------------------

@transaction.atomic
def create_ticket_type(*, actor, code, name, description="", customer_visible=False) -> TicketType:
    return recorded.create(TicketType, actor=actor, code=code, name=name, description=description,
                           customer_visible=customer_visible)


@transaction.atomic
def update_ticket_type(ttype, *, actor, **changes) -> TicketType:
    return recorded.update(ttype, actor=actor, **changes)


@transaction.atomic
def archive_ticket_type(ttype, *, actor, reason="") -> TicketType:
    return recorded.archive(ttype, actor=actor, reason=reason)


def _check_automatic_loops(ticket_type):
    """Refuse a flow where automatic steps lead round to each other (a ticket would never stop)."""
    steps = Step.objects.filter(ticket_type=ticket_type, automatic=True, final=False, archived_at__isnull=True)
    for start in steps:
        passed, step = [], start
        while step is not None and step.automatic and not step.final and step.archived_at is None:
            if step.code in passed:
                path = " → ".join((*passed[passed.index(step.code):], step.code))
                raise ValidationFailed(f"Automatic steps would loop: {path}. Make one of them a manual step or "
                                       f"change its forward transition.", code="automatic_loop",
                                       fields={"automatic": [f"Loops: {path}."]})
            passed.append(step.code)
            onward = _onward(step)
            step = onward.to_step if onward is not None else None


def _check_step_unique(ticket_type, code, exclude=None):
    qs = Step.objects.filter(ticket_type=ticket_type, code=code)
    if exclude is not None:
        qs = qs.exclude(pk=exclude.pk)
    if qs.exists():
        raise Conflict(f"The flow {ticket_type.code} already has a step {code}.", code="duplicate_step",
                       fields={"code": ["Already used in this flow."]})


@transaction.atomic
def create_step(*, actor, ticket_type, code, name, order=10, final=False, automatic=False, roles=(), branch="",
                sla_minutes=None, escalate_to_user=None, escalate_to_role=None, notify_on_escalation=True) -> Step:
    _check_step_unique(ticket_type, code)
    step = recorded.create(Step, actor=actor, ticket_type=ticket_type, code=code, name=name, order=order,
                           final=final, automatic=automatic, branch=branch, sla_minutes=sla_minutes,
                           escalate_to_user=escalate_to_user, escalate_to_role=escalate_to_role,
                           notify_on_escalation=notify_on_escalation)
    if roles:
        step.roles.set(roles)
    _check_automatic_loops(ticket_type)
    return step


@transaction.atomic
def update_step(step, *, actor, roles=None, **changes) -> Step:
    if "code" in changes:
        _check_step_unique(step.ticket_type, changes["code"], exclude=step)
    changes.pop("ticket_type", None)
    step = recorded.update(step, actor=actor, **changes)
    if roles is not None:
        before = sorted(r.name for r in step.roles.all())
        step.roles.set(roles)
        after = sorted(r.name for r in step.roles.all())
        if before != after:
            recorded.record(step, actor=actor, action="update", changes={"roles": [before, after]})
    _check_automatic_loops(step.ticket_type)
    return step


@transaction.atomic
def archive_step(step, *, actor, reason="") -> Step:
    if step.tickets.filter(closed_at__isnull=True).exists():
        raise Conflict("Open tickets are at this step: move them first.", code="step_in_use")
    step = recorded.archive(step, actor=actor, reason=reason)
    _check_automatic_loops(step.ticket_type)
    return step


@transaction.atomic
def add_field(*, actor, step, name, label, kind="text", required=False, choices="", order=10) -> StepField:
    if StepField.objects.filter(step=step, name=name).exists():
        raise Conflict(f"The step already collects {name}.", code="duplicate_field",
                       fields={"name": ["Already used at this step."]})
    return recorded.create(StepField, actor=actor, step=step, name=name, label=label, kind=kind, required=required,
                           choices=choices, order=order)


@transaction.atomic
def update_field(field, *, actor, **changes) -> StepField:
    changes.pop("step", None)
    return recorded.update(field, actor=actor, **changes)


@transaction.atomic
def remove_field(field, *, actor, reason="") -> StepField:
    recorded.record(field, actor=actor, action="delete", message=reason)
    field.delete()
    return field


def _check_transition(ticket_type, from_step, to_step):
    if from_step.ticket_type_id != ticket_type.pk or to_step.ticket_type_id != ticket_type.pk:
        raise ValidationFailed("Both steps must belong to the ticket type's flow.", code="foreign_step",
                               fields={"to_step": ["Another flow's step."]})
    if from_step.pk == to_step.pk:
        raise ValidationFailed("A transition joins two different steps.", code="same_step",
                               fields={"to_step": ["The same step."]})


@transaction.atomic
def create_transition(*, actor, ticket_type=None, from_step, to_step, direction="forward",
                      requires_resolution=False, label="") -> Transition:
    ticket_type = ticket_type or from_step.ticket_type
    _check_transition(ticket_type, from_step, to_step)
    if Transition.objects.filter(from_step=from_step, to_step=to_step).exists():
        raise Conflict("This transition exists.", code="duplicate_transition",
                       fields={"to_step": ["Already a transition."]})
    tr = recorded.create(Transition, actor=actor, ticket_type=ticket_type, from_step=from_step, to_step=to_step,
                         direction=direction, requires_resolution=requires_resolution, label=label)
    _check_automatic_loops(ticket_type)
    return tr


@transaction.atomic
def update_transition(tr, *, actor, **changes) -> Transition:
    changes.pop("ticket_type", None)
    tr = recorded.update(tr, actor=actor, **changes)
    _check_transition(tr.ticket_type, tr.from_step, tr.to_step)
    _check_automatic_loops(tr.ticket_type)
    return tr


@transaction.atomic
def remove_transition(tr, *, actor, reason="") -> Transition:
    recorded.record(tr, actor=actor, action="delete", message=reason)
    tr.delete()
    _check_automatic_loops(tr.ticket_type)
    return tr


def _check_handler(kind, phase, parameters):
    known = kinds.HANDLERS.get(kind)
    if known is None:
        raise ValidationFailed(f"Unknown handler kind {kind!r}.", code="unknown_handler",
                               fields={"kind": ["Unknown kind."]})
    if known.phase not in (phase, "any"):
        raise ValidationFailed(f"{known.label} is a {known.phase}-handler.", code="wrong_phase",
                               fields={"phase": [f"This kind runs {known.phase}."]})
    if not isinstance(parameters, dict):
        raise ValidationFailed("Parameters are an object.", code="invalid_parameters",
                               fields={"parameters": ["An object of names and values."]})


@transaction.atomic
def add_handler(*, actor, step, kind, phase="post", parameters=None, order=10, enabled=True) -> StepHandler:
    parameters = parameters or {}
    _check_handler(kind, phase, parameters)
    return recorded.create(StepHandler, actor=actor, step=step, kind=kind, phase=phase, parameters=parameters,
                           order=order, enabled=enabled)


@transaction.atomic
def update_handler(h, *, actor, **changes) -> StepHandler:
    changes.pop("step", None)
    _check_handler(changes.get("kind", h.kind), changes.get("phase", h.phase),
                   changes.get("parameters", h.parameters) or {})
    return recorded.update(h, actor=actor, **changes)


@transaction.atomic
def remove_handler(h, *, actor, reason="") -> StepHandler:
    recorded.record(h, actor=actor, action="delete", message=reason)
    h.delete()
    return h


# --- tickets -------------------------------------------------------------------------------------

@transaction.atomic
def open_ticket(*, actor, ticket_type, customer, title="", description="", billing_account=None, subscription=None,
                requested_tariff=None, parameters=None, priority=Ticket.Priority.NORMAL, assignee=None,
                parent=None, watchers=()) -> Ticket:
    """A new ticket of `ticket_type` at its first step, with due time from that step's SLA.

    Errors: type_archived, no_steps, customer_closed (409), foreign_account / foreign_subscription."""
    if ticket_type.archived_at is not None:
        raise DomainError("The ticket type is archived.", code="type_archived", fields={"ticket_type": ["Archived."]})
    first = ticket_type.first_step()
    if first is None:
        raise DomainError(f"The flow {ticket_type.code} has no steps.", code="no_steps",
                          fields={"ticket_type": ["No steps."]})
    if customer.status != "active" or customer.archived_at is not None:
        raise DomainError(f"Customer {customer.number} is closed.", code="customer_closed", status=409,
                          fields={"customer": ["Closed."]})
    if billing_account is not None and billing_account.customer_id != customer.pk:
        raise ValidationFailed("The account belongs to another customer.", code="foreign_account",
                               fields={"billing_account": ["Another customer's account."]})
    if subscription is not None:
        if subscription.billing_account.customer_id != customer.pk:
            raise ValidationFailed("The subscription belongs to another customer.", code="foreign_subscription",
                                   fields={"subscription": ["Another customer's subscription."]})
        billing_account = billing_account or subscription.billing_account
    if parameters is not None and not isinstance(parameters, dict):
        raise ValidationFailed("Parameters are an object.", code="invalid_parameters",
                               fields={"parameters": ["An object of names and values."]})
    at = now()
    title = title or (f"{ticket_type.name}: {requested_tariff.name}" if requested_tariff else ticket_type.name)
    ticket = recorded.create(Ticket, actor=actor, number=next_number("T"), ticket_type=ticket_type,
                             title=title[:200], description=description, customer=customer,
                             billing_account=billing_account, subscription=subscription,
                             requested_tariff=requested_tariff, parameters=parameters or {}, step=first,
                             step_entered_at=at, assignee=assignee, priority=priority or Ticket.Priority.NORMAL,
                             due_at=_due(first, at), parent=parent, opened_by=_label(actor))
    if watchers:
        ticket.watchers.set(watchers)
    FlowEntry.objects.create(ticket=ticket, kind=FlowEntry.Kind.OPENED, at=at, actor=_label(actor), to_step=first)
    return ticket


def _clean_data(fields, data: dict, *, enforce_required: bool) -> dict:
    """The move's data checked against the step's declared fields: unknown names, missing
    required values, numbers, dates and choices are field errors."""
    data = dict(data or {})
    declared = {f.name: f for f in fields}
    errors, clean = {}, {}
    for name in data:
        if name not in declared:
            errors[name] = ["Not a field of this step."]
    for name, f in declared.items():
        value = data.get(name)
        if isinstance(value, str):
            value = value.strip()
        if value in (None, ""):
            if f.required and enforce_required:
                errors[name] = ["Required."]
            continue
        if isinstance(value, (dict, list)):
            errors[name] = ["A single value."]
            continue
        text = str(value)
        if f.kind == StepField.Kind.NUMBER:
            try:
                from decimal import Decimal, InvalidOperation

                number = Decimal(text)
                if not number.is_finite():
                    raise InvalidOperation
                clean[name] = text
            except (InvalidOperation, ValueError):
                errors[name] = ["A number."]
        elif f.kind == StepField.Kind.DATE:
            try:
                clean[name] = dt.date.fromisoformat(text).isoformat()
            except ValueError:
                errors[name] = ["A date, YYYY-MM-DD."]
        elif f.kind == StepField.Kind.CHOICE:
            if text not in f.choice_list():
                errors[name] = [f"One of: {', '.join(f.choice_list())}."]
            clean[name] = text
        else:
            if len(text) > 500:
                errors[name] = ["At most 500 characters."]
            clean[name] = text
    if errors:
        raise ValidationFailed("Step data: " + "; ".join(f"{k}: {v[0]}" for k, v in errors.items()),
                               code="invalid_data", fields={f"data.{k}": v for k, v in errors.items()})
    return clean


def _run(handlers_, phase, *, ticket, step, transition, data, actor) -> list[dict]:
    results = []
    for h in handlers_:
        kind = kinds.get(h.kind)
        call = kinds.HandlerCall(ticket=ticket, params=h.parameters or {}, data=data, actor=actor,
                                 transition=transition, step=step, phase=phase)
        try:
            result = kind.func(call)
        except kinds.Veto as exc:
            result = {"veto": exc.message}
        except DomainError as exc:
            failure = kinds.HandlerFailed(f"{kind.label}: {exc.message}", code="handler_failed", fields=exc.fields)
            failure.script_results = call.script_results
            raise failure from exc
        except Exception as exc:  # noqa: BLE001 — any failure of a handler fails the move
            log.exception("ticket %s: handler %s failed", ticket.number, h.kind)
            failure = kinds.HandlerFailed(f"{kind.label}: {exc}", code="handler_failed")
            failure.script_results = call.script_results
            raise failure from exc
        result = result if isinstance(result, dict) else {"value": result}
        results.append({"kind": h.kind, "phase": phase, **result})
        if phase == "pre" and result.get("veto"):
            veto = kinds.Veto(f"{kind.label}: {result['veto']}", fields={"to": [str(result["veto"])]})
            veto.script_results = call.script_results
            raise veto
    return results


def _move(ticket, *, actor, transition, resolution, data, hop=0, passed=()) -> Ticket:
    """The move itself, inside the caller's transaction, the ticket row locked."""
    target = transition.to_step
    step_handlers = list(target.handlers.filter(enabled=True).order_by("order", "created_at"))
    pre = [h for h in step_handlers if h.phase == StepHandler.Phase.PRE]
    post = [h for h in step_handlers if h.phase == StepHandler.Phase.POST]
    results = _run(pre, "pre", ticket=ticket, step=target, transition=transition, data=data, actor=actor)
    at = now()
    left = transition.from_step
    seconds = max(0, int((at - ticket.step_entered_at).total_seconds()))
    ticket.step = target
    ticket.step_entered_at = at
    ticket.due_at = None if target.final else _due(target, at)
    ticket.escalated_at = None
    ticket.closed_at = at if target.final else None
    ticket.last_error = ""
    if data:
        ticket.data = {**(ticket.data or {}), **data}
    ticket.updated_at = at
    ticket.save(update_fields=["step", "step_entered_at", "due_at", "escalated_at", "closed_at", "last_error",
                               "data", "updated_at"])
    results += _run(post, "post", ticket=ticket, step=target, transition=transition, data=data, actor=actor)
    FlowEntry.objects.create(ticket=ticket, kind=FlowEntry.Kind.MOVED, at=at, actor=_label(actor), from_step=left,
                             to_step=target, resolution=resolution or "", data=data or {}, results=results,
                             seconds_at_step=seconds)
    recorded.record(ticket, actor=actor, action="advance",
                    message=f"{left.name} → {target.name}" + (f": {resolution}" if resolution else ""))
    if target.automatic and not target.final:
        onward = _onward(target)
        if onward is not None:
            passed = (*passed, target.code)  # the automatic steps this request went through
            if onward.to_step.code in passed or hop >= MAX_AUTOMATIC_HOPS:
                path = " → ".join((*passed, onward.to_step.code))
                raise kinds.HandlerFailed(f"Automatic steps loop: {path}. Make one of them a manual step or "
                                          f"change its forward transition.", code="automatic_loop")
            ticket = _move(ticket, actor=actor, transition=onward, resolution="automatic", data={}, hop=hop + 1,
                           passed=passed)
    return ticket


def _onward(step):
    """The forward transition an automatic step moves tickets along: its first (by the target's order)."""
    return (step.transitions_out.filter(direction=Transition.Direction.FORWARD, to_step__archived_at__isnull=True)
            .select_related("from_step", "to_step").order_by("to_step__order", "created_at").first())


def _lock(ticket) -> Ticket:
    # The row alone first: a FOR UPDATE over joins re-checked after a concurrent update can lose
    # the row under READ COMMITTED. Then read it, with its references, under the lock.
    if not Ticket.objects.select_for_update().filter(pk=ticket.pk).values_list("pk", flat=True):
        raise NotFound("No such ticket.")
    return Ticket.objects.select_related("step", "ticket_type", "customer", "billing_account", "subscription",
                                         "requested_tariff").get(pk=ticket.pk)


def _step_code(value):
    return value.code if isinstance(value, Step) else str(value or "")


def advance(ticket, *, actor, from_step, to_step, resolution="", data=None) -> Ticket:
    """Move `ticket` from the step `from_step` (a code) to `to_step`; see the module docstring.

    Errors: stale_step (409: the ticket is no longer at `from_step`), closed (409),
    not_in_flow, resolution_required, invalid_data, vetoed (422), handler_failed (422, the
    move rolled back; recorded on the ticket unless the caller holds an outer transaction,
    who then calls `record_failure(exc)` after rolling back), permission_denied (the actor
    may not work the ticket's step)."""
    outer = transaction.get_connection().in_atomic_block
    try:
        with transaction.atomic():
            return _advance(ticket, actor=actor, from_step=_step_code(from_step), to_step=_step_code(to_step),
                            resolution=(resolution or "").strip(), data=data)
    except (kinds.HandlerFailed, kinds.Veto) as exc:
        exc.ticket_id = ticket.pk
        exc.actor_label = _label(actor)
        exc.move = (_step_code(from_step), _step_code(to_step), data)
        if not outer:
            record_failure(exc)
        raise


def _advance(ticket, *, actor, from_step, to_step, resolution, data):
    _require(actor, "tickets.advance_ticket")
    ticket = _lock(ticket)
    if ticket.step.code != from_step:
        raise Conflict(f"Ticket {ticket.number} is at {ticket.step.code}, not {from_step}.", code="stale_step",
                       fields={"from": [f"The ticket is at {ticket.step.code}."]})
    if _is_person(actor) and not may_work(actor, ticket.step):
        raise PermissionDenied(f"You do not work the step {ticket.step.name}.", code="step_forbidden")
    if ticket.closed_at is not None:
        raise Conflict(f"Ticket {ticket.number} is closed.", code="closed")
    transition = Transition.objects.select_related("from_step", "to_step").filter(
        from_step=ticket.step, to_step__code=to_step, to_step__archived_at__isnull=True).first()
    if transition is None:
        raise ValidationFailed(f"The flow has no move from {from_step} to {to_step}.", code="not_in_flow",
                               fields={"to": ["Not a transition from this step."]})
    if transition.needs_resolution and not resolution:
        raise ValidationFailed("Say why (a resolution is required for this move).", code="resolution_required",
                               fields={"resolution": ["Required."]})
    forward = transition.direction == Transition.Direction.FORWARD
    clean = _clean_data(list(ticket.step.fields.all()), data or {}, enforce_required=forward)
    left = ticket.step
    ticket = _move(ticket, actor=actor, transition=transition, resolution=resolution, data=clean)
    _tell_watchers("ticket.moved", ticket, actor=actor, steps=[left, ticket.step], from_step=left.code,
                   from_name=left.name, to_step=ticket.step.code, to_name=ticket.step.name, resolution=resolution,
                   closed=ticket.closed_at is not None)
    return ticket


def record_failure(exc) -> None:
    """Write a refused move (a veto, a failed handler) to the ticket's history, in a
    transaction of its own after the move rolled back."""
    ticket_id = getattr(exc, "ticket_id", None)
    if ticket_id is None or getattr(exc, "recorded", False):
        return
    exc.recorded = True
    for result in getattr(exc, "script_results", None) or []:
        result.keep()  # the script's run log entry rolled back with the move: keep it
    from_code, to_code, data = getattr(exc, "move", ("", "", None))
    vetoed = isinstance(exc, kinds.Veto)
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().filter(pk=ticket_id).first()
        if ticket is None:
            return
        steps = {s.code: s for s in Step.objects.filter(ticket_type=ticket.ticket_type_id, code__in=[from_code, to_code])}
        FlowEntry.objects.create(ticket=ticket, kind=FlowEntry.Kind.VETOED if vetoed else FlowEntry.Kind.FAILED,
                                 actor=getattr(exc, "actor_label", ""), from_step=steps.get(from_code),
                                 to_step=steps.get(to_code), data=data if isinstance(data, dict) else {},
                                 error=exc.message[:2000])
        if not vetoed:
            Ticket.objects.filter(pk=ticket.pk).update(last_error=exc.message[:2000], updated_at=now())


@transaction.atomic
def update_ticket(ticket, *, actor, **changes) -> Ticket:
    """Title, description, priority, requested tariff and parameters of an open ticket."""
    ticket = _lock(ticket)
    if ticket.closed_at is not None:
        raise Conflict("The ticket is closed.", code="closed")
    allowed = {"title", "description", "priority", "requested_tariff", "parameters", "billing_account"}
    unknown = set(changes) - allowed - {"assignee"}
    if unknown:
        raise ValidationFailed(f"Cannot change {', '.join(sorted(unknown))}.", code="not_changeable")
    assignee = changes.pop("assignee", ticket.assignee)
    ticket = recorded.update(ticket, actor=actor, **changes)
    if assignee != ticket.assignee:
        ticket = assign(ticket, actor=actor, assignee=assignee)
    return ticket


@transaction.atomic
def assign(ticket, *, actor, assignee=None) -> Ticket:
    ticket = _lock(ticket)
    if assignee is not None and not may_work(assignee, ticket.step):
        raise ValidationFailed(f"{assignee} does not work the step {ticket.step.name}.", code="not_in_queue",
                               fields={"assignee": ["Not in this step's queue."]})
    before = ticket.assignee
    ticket = recorded.update(ticket, actor=actor, action="assign", assignee=assignee)
    FlowEntry.objects.create(ticket=ticket, kind=FlowEntry.Kind.ASSIGNED, actor=_label(actor),
                             from_step=ticket.step, to_step=ticket.step,
                             resolution=f"{before or '—'} → {assignee or '—'}")
    return ticket


def watch(ticket, *, actor, user=None, watching=True) -> Ticket:
    """`user` (default: the actor) watches the ticket, or stops (`watching=False`): watchers are
    e-mailed when it moves to another step or is commented on (by someone else). Anyone who may
    see the ticket may watch it; adding or removing someone else needs tickets.change_ticket, and
    they too must be able to see it. Watching twice changes nothing (and records nothing).

    Errors: permission_denied, cannot_view (the user may not see the ticket)."""
    with transaction.atomic():
        user = user if user is not None else actor
        ticket = _lock(ticket)  # its step as it is now decides who may see it
        if _is_person(actor) and not may_view(actor, ticket):
            raise PermissionDenied(f"You may not see ticket {ticket.number}.")
        if not _is_person(user) or not getattr(user, "pk", None):
            raise ValidationFailed("Only a user may watch a ticket.", code="not_a_user",
                                   fields={"user": ["Not a user."]})
        if _is_person(actor) and user.pk != actor.pk:
            _require(actor, "tickets.change_ticket")
        if watching and not may_view(user, ticket):
            raise ValidationFailed(f"{user} may not see ticket {ticket.number}.", code="cannot_view",
                                   fields={"user": ["May not see this ticket."]})
        already = ticket.watchers.filter(pk=user.pk).exists()
        if already != bool(watching):
            (ticket.watchers.add if watching else ticket.watchers.remove)(user)
            recorded.record(ticket, actor=actor, action="watch" if watching else "unwatch", message=str(user))
        return ticket


def _audience(ticket, *, actor, steps, perm="tickets.view_ticket") -> list[str]:
    """The ids of the ticket's watchers to tell about what `actor` did: those who may see it at
    one of `steps` (and hold `perm`), never the actor themselves."""
    actor_pk = getattr(actor, "pk", None) if _is_person(actor) else None
    told = []
    for user in ticket.watchers.filter(is_active=True).order_by("username"):
        if user.pk == actor_pk or not user.has_perm("tickets.view_ticket") or not user.has_perm(perm):
            continue
        if any(may_work(user, step) for step in steps):
            told.append(str(user.pk))
    return told


def _tell_watchers(name, ticket, *, actor, steps, perm="tickets.view_ticket", **payload):
    """Emit `name` (`ticket.moved`, `ticket.commented`) for the watchers to tell, when there are
    any; integrations e-mails them."""
    from tarifa.kernel import events

    watchers = _audience(ticket, actor=actor, steps=steps, perm=perm)
    if watchers:
        events.emit(name, obj=ticket, payload={
            "ticket": ticket.number, "ticket_id": str(ticket.pk), "title": ticket.title, "actor": _label(actor),
            "actor_id": str(getattr(actor, "pk", "") or "") if _is_person(actor) else "", "watchers": watchers,
            **payload})


@transaction.atomic
def add_comment(*, ticket, text, internal=True, actor) -> Comment:
    """A comment; `internal=False` makes it visible to the customer (portal)."""
    text = (text or "").strip()
    if not text:
        raise ValidationFailed("Write something.", code="empty", fields={"text": ["Required."]})
    user = actor if _is_person(actor) and getattr(actor, "pk", None) else None
    comment = recorded.create(Comment, actor=actor, ticket=ticket, text=text[:10000], internal=bool(internal),
                              author=user, author_label=_label(actor))
    _tell_watchers("ticket.commented", ticket, actor=actor, steps=[ticket.step], perm="tickets.view_comment",
                   text=comment.text, internal=comment.internal)
    return comment


@transaction.atomic
def attach_file(ticket, *, actor, file, description="", customer_visible=False) -> TicketAttachment:
    """Keep an uploaded file on the ticket; its type is judged by content (crm.files)."""
    from tarifa.crm.files import ALLOWED_TYPES, claimed_type, clean_filename, sniff

    sniffed = sniff(file.chunks())
    filename = clean_filename(getattr(file, "name", ""))
    claimed = claimed_type(filename)
    if sniffed.content_type not in ALLOWED_TYPES or (claimed and claimed != sniffed.content_type):
        raise ValidationFailed("Only PDF, PNG, JPEG, TIFF and plain text files are kept, and the name must match "
                               "the content.", code="file_type", fields={"file": ["Not an accepted file."]})
    file.seek(0)
    att = TicketAttachment(ticket=ticket, filename=filename, content_type=sniffed.content_type, size=sniffed.size,
                           sha256=sniffed.sha256, description=description, uploaded_by=_label(actor),
                           customer_visible=bool(customer_visible))
    att.file.save(att.id.hex, file, save=False)
    att.save(force_insert=True)
    recorded.record(att, actor=actor, action="create", message=filename)
    return att


# --- SLA -----------------------------------------------------------------------------------------

def escalate_overdue(*, actor="system:sla", at=None) -> int:
    """Escalate every open ticket past its due time not yet escalated at its step: reassign
    to the step's escalation user, announce to the escalation role (an internal comment and
    the event `ticket.escalated`), one flow entry. Each ticket in its own transaction;
    returns how many were escalated."""
    from tarifa.kernel import events

    at = at or now()
    count = 0
    ids = list(Ticket.objects.filter(closed_at__isnull=True, escalated_at__isnull=True, due_at__lt=at)
               .values_list("pk", flat=True))
    for pk in ids:
        with transaction.atomic():
            ticket = Ticket.objects.select_for_update().filter(
                pk=pk, closed_at__isnull=True, escalated_at__isnull=True, due_at__lt=at).first()
            if ticket is None:
                continue
            step = ticket.step
            before = ticket.assignee
            if step.escalate_to_user_id and step.escalate_to_user_id != ticket.assignee_id:
                ticket.assignee = step.escalate_to_user
            ticket.escalated_at = at
            ticket.save(update_fields=["assignee", "escalated_at"])
            late = at - ticket.due_at
            note = (f"Overdue at “{step.name}” by {int(late.total_seconds() // 60)} min"
                    + (f"; reassigned from {before or '—'} to {ticket.assignee}" if ticket.assignee != before else "")
                    + (f"; announced to {step.escalate_to_role}" if step.escalate_to_role_id else "") + ".")
            FlowEntry.objects.create(ticket=ticket, kind=FlowEntry.Kind.ESCALATED, at=at, actor=_label(actor),
                                     from_step=step, to_step=step, resolution=note)
            recorded.record(ticket, actor=actor, action="escalate", message=note)
            if step.notify_on_escalation:
                Comment.objects.create(ticket=ticket, text=note, internal=True, author_label=_label(actor))
                events.emit("ticket.escalated", obj=ticket, payload={
                    "ticket": ticket.number, "step": step.code, "assignee": str(ticket.assignee or ""),
                    "assignee_id": str(ticket.assignee_id or ""), "role": str(step.escalate_to_role or ""),
                    "role_id": str(step.escalate_to_role_id or ""), "message": note})
            count += 1
    return count


# --- the front office's registration -------------------------------------------------------------

@transaction.atomic
def register_customer(*, actor, customer: dict, payment_mode="prepaid", tariffs=(), parameters=None,
                      ticket_type=None):
    """Register a customer with their default billing account and open one activation ticket
    (`ticket_type`, default the type `activation`) per requested tariff, in one transaction.
    Returns (customer, tickets). Errors: crm's and the ledger's, no_activation_type."""
    from tarifa.ledger import services as ledger

    _require(actor, "tickets.add_ticket")
    if tariffs and ticket_type is None:
        ticket_type = TicketType.objects.filter(code="activation", archived_at__isnull=True).first()
        if ticket_type is None:
            raise DomainError("There is no ticket type “activation”.", code="no_activation_type")
    person = ledger.register_customer(actor=actor, payment_mode=payment_mode, **customer)
    account = person.billing_accounts.filter(status="active").order_by("number").first()
    tickets = [open_ticket(actor=actor, ticket_type=ticket_type, customer=person, billing_account=account,
                           requested_tariff=tariff, parameters=dict(parameters or {}))
               for tariff in tariffs]
    return person, tickets
