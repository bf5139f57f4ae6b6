"""Reads other apps (portal, reports, the dashboard) may use.

The step's queue decides who sees and moves a ticket: a user works a step when they hold
`tickets.all_queues` (or are a superuser), or when the step names no roles or they hold one
of them — and, for a step bound to a branch, they belong to that branch.
"""

from django.db.models import Q, QuerySet

from tarifa.kernel.clock import now

from .models import FlowEntry, Step, Ticket, Transition

ALL_QUEUES = "tickets.all_queues"


def _sees_all(user) -> bool:
    return bool(getattr(user, "is_superuser", False)) or user.has_perm(ALL_QUEUES)


def may_work(user, step) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if _sees_all(user):
        return True
    if step.branch and step.branch != getattr(user, "branch", None):
        return False
    role_ids = set(step.roles.values_list("pk", flat=True))
    return not role_ids or bool(role_ids & set(user.roles.values_list("pk", flat=True)))


def may_view(user, ticket) -> bool:
    """Whether `user` may see `ticket` (and so watch it): tickets.view_ticket and its step's queue."""
    if user is None or not getattr(user, "is_active", False) or not user.has_perm("tickets.view_ticket"):
        return False
    return may_work(user, ticket.step)


def workable_steps(user) -> QuerySet:
    """The steps whose queue `user` is in."""
    steps = Step.objects.all()
    if _sees_all(user):
        return steps
    branch_ok = Q(branch="") | Q(branch=getattr(user, "branch", ""))
    role_ok = Q(roles__isnull=True) | Q(roles__in=user.roles.all())
    return steps.filter(branch_ok & role_ok).distinct()


def visible_tickets(user, queryset=None) -> QuerySet:
    """Tickets at a step `user` works (closed tickets: at a final step they work, or theirs)."""
    qs = queryset if queryset is not None else Ticket.objects.all()
    if _sees_all(user):
        return qs
    return qs.filter(Q(step__in=workable_steps(user)))


def tickets_for_customer(customer, visible_to_customer=True) -> QuerySet:
    """A customer's tickets, newest first. `visible_to_customer`: what the portal may show
    (every ticket; the portal shows only their customer-visible comments and files)."""
    return Ticket.objects.filter(customer=customer).select_related("ticket_type", "step").order_by("-created_at")


def customer_comments(ticket) -> QuerySet:
    return ticket.comments.filter(internal=False).order_by("created_at")


def customer_attachments(ticket) -> QuerySet:
    return ticket.attachments.filter(customer_visible=True)


def overdue(queryset=None, at=None) -> QuerySet:
    qs = queryset if queryset is not None else Ticket.objects.all()
    return qs.filter(closed_at__isnull=True, due_at__lt=at or now())


def overdue_count(user) -> int:
    """Open tickets past their SLA at the steps `user` works (the dashboard's figure)."""
    return overdue(visible_tickets(user)).count()


def transitions_of(ticket) -> list[Transition]:
    if ticket.closed_at is not None:
        return []
    return list(Transition.objects.filter(from_step=ticket.step_id, to_step__archived_at__isnull=True)
                .select_related("to_step").prefetch_related("from_step__fields")
                .order_by("direction", "to_step__order"))


def transition_info(ticket) -> list[dict]:
    """The moves open from the ticket's step, as the API shows them."""
    fields = [field_info(f) for f in ticket.step.fields.all()]
    return [{"to": t.to_step.code, "name": t.to_step.name, "label": t.label or t.to_step.name,
             "direction": t.direction, "requires_resolution": t.needs_resolution,
             "fields": fields if t.direction == Transition.Direction.FORWARD else []}
            for t in transitions_of(ticket)]


def field_info(f) -> dict:
    return {"name": f.name, "label": f.label, "kind": f.kind, "required": f.required, "choices": f.choice_list()}


def history(ticket) -> QuerySet:
    return FlowEntry.objects.filter(ticket=ticket).select_related("from_step", "to_step").order_by("at")


def changed_by_tickets(subscription) -> QuerySet:
    """Tickets that changed a subscription (named it)."""
    return Ticket.objects.filter(subscription=subscription).select_related("ticket_type", "step").order_by("-created_at")


def tickets_for_invoice(invoice) -> QuerySet:
    """Tickets that changed what an invoice bills: those naming a subscription on its lines, opened by
    the invoice's date."""
    subscriptions = invoice.lines.exclude(subscription=None).values("subscription_id")
    return (Ticket.objects.filter(subscription_id__in=subscriptions, created_at__date__lte=invoice.invoice_date)
            .select_related("ticket_type", "step")
            .order_by("-created_at"))
