"""Operator screens: tickets (queues per step, "my tickets", the ticket page with its move forms,
history, comments and files), the flow editor (ticket types, steps, fields, transitions,
handlers: registry screens), the front office's registration, the customer page's panel and a
dashboard figure for overdue tickets."""

import uuid

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from tarifa.crm.panels import register_panel
from tarifa.web.dashboard import widget
from tarifa.web.registry import Action, ModelScreens, Page, register, register_page

from . import selectors, services
from .filters import TicketScreenFilter
from .forms import (AssignForm, CommentForm, StepFieldForm, StepForm, StepHandlerForm, TicketAttachmentForm,
                    TicketForm, TicketTypeForm, TransitionForm)
from .models import Comment, Step, StepField, StepHandler, Ticket, TicketAttachment, TicketType, Transition

FLOW = "Tickets"


def _tickets(request):
    qs = Ticket.objects.select_related("ticket_type", "step", "customer", "assignee")
    return selectors.visible_tickets(request.user, qs) if request is not None else qs


def _ticket_context(request, ticket):
    user = request.user
    transitions = selectors.transitions_of(ticket) if user.has_perm("tickets.advance_ticket") \
        and selectors.may_work(user, ticket.step) else []
    fields = list(ticket.step.fields.all())
    return {
        "ticket": ticket,
        "transitions": transitions,
        "step_fields": fields,
        "flow": selectors.history(ticket),
        "comments": ticket.comments.order_by("created_at") if user.has_perm("tickets.view_comment") else None,
        "attachments": ticket.attachments.all() if user.has_perm("tickets.view_ticketattachment") else None,
        "children": ticket.children.all(),
        "watchers": ticket.watchers.order_by("username"),
        "watching": ticket.watchers.filter(pk=user.pk).exists(),
        "may_watch": selectors.may_view(user, ticket),
    }


def _on_ticket(service):
    def handler(ticket, *, actor, **data):
        service(ticket, actor=actor, **data)
        return ticket

    return handler


def _sample_file(*args):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return {"file": SimpleUploadedFile("suite-report.txt", b"the technician's report", "text/plain")}


def _comment(ticket, *, actor, text, internal=False):
    services.add_comment(ticket=ticket, actor=actor, text=text, internal=internal)
    return ticket


def _create_ticket(*, actor, **data):
    return services.open_ticket(actor=actor, **data)


register(ModelScreens(
    model=Ticket, area=FLOW, menu_label=_("Tickets"),
    columns=["number", "title", "ticket_type", "customer", "step", "assignee", "priority", "due_at", "created_at"],
    form_class=TicketForm, create=_create_ticket, update=services.update_ticket,
    filterset=TicketScreenFilter,
    search_fields=["number", "title", "customer__number", "customer__last_name", "customer__legal_name"],
    queryset=_tickets, ordering=["-created_at"],
    detail_fields=["number", "ticket_type", "title", "description", "customer", "billing_account", "subscription",
                   "requested_tariff", "parameters", "step", "step_entered_at", "assignee", "priority", "due_at",
                   "escalated_at", "closed_at", "data", "parent", "last_error", "opened_by", "created_at"],
    detail_template="tickets/ticket_detail.html", detail_context=_ticket_context,
    editable=lambda t: t.closed_at is None,
    form_sample=lambda view, obj, user: {"title": "Suite ticket"},
    actions=[
        Action("comment", _("Comment"), "tickets.add_comment",
               _comment,
               form_class=CommentForm),
        Action("attach-file", _("Attach file"), "tickets.add_ticketattachment",
               _on_ticket(services.attach_file), form_class=TicketAttachmentForm, form_sample=_sample_file),
        Action("assign", _("Assign"), "tickets.change_ticket",
               lambda t, *, actor, assignee=None: services.assign(t, actor=actor, assignee=assignee),
               form_class=AssignForm, available=lambda t: t.closed_at is None,
               form_sample=lambda obj, user: {"assignee": str(user.pk)}),
    ],
))

register(ModelScreens(
    model=TicketType, area=FLOW, menu_label=_("Ticket types and flows"),
    columns=["code", "name", "customer_visible", "created_at"],
    form_class=TicketTypeForm, create=services.create_ticket_type, update=services.update_ticket_type,
    archive=services.archive_ticket_type, search_fields=["code", "name"], ordering=["name"],
    detail_template="tickets/tickettype_detail.html",
    detail_context=lambda request, t: {
        "steps": t.steps.filter(archived_at__isnull=True).prefetch_related("fields", "handlers", "roles"),
        "transitions": t.transitions.select_related("from_step", "to_step")},
))


def _create_step(*, actor, roles=(), **data):
    return services.create_step(actor=actor, roles=list(roles), **data)


def _update_step(step, *, actor, roles=None, **data):
    return services.update_step(step, actor=actor, roles=list(roles) if roles is not None else None, **data)


register(ModelScreens(
    model=Step, area=FLOW, menu=False,
    columns=["ticket_type", "order", "code", "name", "final", "automatic", "branch", "sla_minutes"],
    form_class=StepForm, create=_create_step, update=_update_step, archive=services.archive_step,
    filterset_fields=["ticket_type", "final"], search_fields=["code", "name"],
    ordering=["ticket_type__name", "order"],
    form_sample=lambda view, obj, user: {"code": f"suite-{uuid.uuid4().hex[:6]}"} if view == "add" else {},
))

register(ModelScreens(
    model=StepField, area=FLOW, menu=False,
    columns=["step", "order", "name", "label", "kind", "required"],
    form_class=StepFieldForm, create=services.add_field, update=services.update_field, archive=services.remove_field,
    filterset_fields=["kind"], search_fields=["name", "label"], ordering=["step", "order"],
    form_sample=lambda view, obj, user: {"name": f"suite_{uuid.uuid4().hex[:6]}"} if view == "add" else {},
))


def _free_pair():
    """Two steps of one flow not yet joined (the form-submission suite's transition)."""
    for a in Step.objects.filter(archived_at__isnull=True):
        for b in Step.objects.filter(ticket_type=a.ticket_type_id, archived_at__isnull=True).exclude(pk=a.pk):
            if not Transition.objects.filter(from_step=a, to_step=b).exists():
                return {"from_step": str(a.pk), "to_step": str(b.pk)}
    return {}


register(ModelScreens(
    model=Transition, area=FLOW, menu=False,
    columns=["ticket_type", "from_step", "to_step", "direction", "requires_resolution", "label"],
    form_class=TransitionForm, create=services.create_transition, update=services.update_transition,
    archive=services.remove_transition, filterset_fields=["ticket_type", "direction"], search_fields=["label"],
    ordering=["ticket_type", "from_step__order"],
    form_sample=lambda view, obj, user: _free_pair() if view == "add" else {},
))

register(ModelScreens(
    model=StepHandler, area=FLOW, menu=False,
    columns=["step", "phase", "order", "kind", "enabled"],
    form_class=StepHandlerForm, create=services.add_handler, update=services.update_handler,
    archive=services.remove_handler, filterset_fields=["phase", "kind", "enabled"], search_fields=["kind"],
    ordering=["step", "phase", "order"],
    form_sample=lambda view, obj, user: {"phase": "post", "kind": "notify", "parameters": "to=staff"},
))

register(ModelScreens(
    model=Comment, area=FLOW, menu=False,
    columns=["created_at", "ticket", "author_label", "internal", "text"],
    queryset=lambda request: Comment.objects.filter(ticket__in=_tickets(request)).select_related("ticket"),
    filterset_fields=["internal"], search_fields=["text", "ticket__number"], ordering=["-created_at"],
))

register(ModelScreens(
    model=TicketAttachment, area=FLOW, menu=False,
    columns=["filename", "content_type", "size", "ticket", "customer_visible", "created_at"],
    queryset=lambda request: TicketAttachment.objects.filter(ticket__in=_tickets(request)).select_related("ticket"),
    filterset_fields=["content_type"], search_fields=["filename", "description", "ticket__number"],
    ordering=["-created_at"],
    detail_fields=["filename", "description", "content_type", "size", "sha256", "ticket", "customer_visible",
                   "uploaded_by", "created_at"],
    detail_template="tickets/attachment_detail.html",
))

register_page(Page("tickets:queues", _("Ticket queues"), FLOW, "tickets.view_ticket"))
register_page(Page("tickets:register", _("Register a customer"), "Customers", "tickets.add_ticket"))


def _panel_context(request, customer):
    tickets = selectors.visible_tickets(request.user, selectors.tickets_for_customer(customer))
    return {"tickets": tickets[:50], "can_add": request.user.has_perm("tickets.add_ticket")}


register_panel(_("Tickets"), "tickets/customer_panel.html", context_func=_panel_context,
               permission="tickets.view_ticket", key="tickets", order=40)

# The subscription's and the invoice's pages link to the tickets that changed them.
register_panel(_("Tickets"), "tickets/customer_panel.html", page="subscription", key="tickets-subscription",
               permission="tickets.view_ticket", order=40,
               context_func=lambda request, sub: {
                   "tickets": selectors.visible_tickets(request.user, selectors.changed_by_tickets(sub))[:50]})
register_panel(_("Tickets"), "tickets/customer_panel.html", page="invoice", key="tickets-invoice",
               permission="tickets.view_ticket", order=40,
               context_func=lambda request, invoice: {
                   "tickets": selectors.visible_tickets(request.user, selectors.tickets_for_invoice(invoice))[:50]})


@widget("tickets.view_ticket")
def overdue_tickets(request):
    count = selectors.overdue_count(request.user)
    return {"label": _("Overdue tickets"), "value": count, "alert": count > 0,
            "url": reverse("tickets:queues") + "#overdue"}
