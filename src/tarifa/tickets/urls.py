from django.contrib import messages
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _

from tarifa.kernel.errors import DomainError
from tarifa.web.views import PermissionRequiredView

from . import selectors, services
from .forms import RegistrationForm
from .models import TicketAttachment


class TicketFormView(PermissionRequiredView):
    """A form posted from the ticket page (a GET goes back to the page), on a ticket the user may see."""

    def get(self, request, pk):
        return redirect("tickets:ticket_detail", pk=pk)

    def visible_ticket(self, request, pk):
        ticket = selectors.visible_tickets(request.user).filter(pk=pk).first()
        if ticket is None:
            raise Http404("No such ticket")
        return ticket


class AdvanceView(TicketFormView):
    """POST a move from the ticket page: from, to, resolution and the step's fields (data_<name>)."""

    permission = "tickets.advance_ticket"

    def post(self, request, pk):
        ticket = self.visible_ticket(request, pk)
        data = {k[5:]: v for k, v in request.POST.items() if k.startswith("data_") and v.strip()}
        try:
            ticket = services.advance(ticket, actor=request.user, from_step=request.POST.get("from", ""),
                                      to_step=request.POST.get("to", ""),
                                      resolution=request.POST.get("resolution", ""), data=data)
        except DomainError as exc:
            messages.error(request, exc.message)
            for field, errors in (exc.fields or {}).items():
                messages.error(request, f"{field.removeprefix('data.')}: {'; '.join(map(str, errors))}")
        else:
            messages.success(request, _("Ticket %(n)s is now at “%(s)s”.") % {"n": ticket.number, "s": ticket.step.name})
            if not selectors.may_work(request.user, ticket.step):
                return redirect("tickets:queues")
        return redirect("tickets:ticket_detail", pk=pk)


class WatchView(TicketFormView):
    """POST from the ticket page: the user watches the ticket (`watching=1`) or stops (`watching=0`)."""

    permission = "tickets.view_ticket"

    def post(self, request, pk):
        ticket = self.visible_ticket(request, pk)
        watching = request.POST.get("watching", "1") not in ("0", "false", "")
        try:
            services.watch(ticket, actor=request.user, watching=watching)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("You watch ticket %(n)s: you are e-mailed when it moves or is commented on.")
                             % {"n": ticket.number} if watching
                             else _("You no longer watch ticket %(n)s.") % {"n": ticket.number})
        return redirect("tickets:ticket_detail", pk=pk)


class QueuesView(PermissionRequiredView):
    """The steps whose queue the user works, with their open and overdue tickets, and "my tickets"."""

    permission = "tickets.view_ticket"

    def get(self, request):
        from django.db.models import Count, Q

        from tarifa.kernel.clock import now

        at = now()
        steps = (selectors.workable_steps(request.user).filter(archived_at__isnull=True, final=False)
                 .select_related("ticket_type")
                 .annotate(open=Count("tickets", filter=Q(tickets__closed_at__isnull=True), distinct=True),
                           late=Count("tickets", filter=Q(tickets__closed_at__isnull=True, tickets__due_at__lt=at),
                                      distinct=True))
                 .order_by("ticket_type__name", "order"))
        visible = selectors.visible_tickets(request.user).select_related("ticket_type", "step", "customer")
        return render(request, "tickets/queues.html", {
            "steps": steps,
            "mine": visible.filter(assignee=request.user, closed_at__isnull=True).order_by("due_at"),
            "overdue": selectors.overdue(visible).order_by("due_at")[:100],
            "list_url": reverse("tickets:ticket_list"),
        })


class RegisterView(PermissionRequiredView):
    """Front office: register customer → default account → activation tickets, on one screen."""

    permission = "tickets.add_ticket"

    def get(self, request):
        return render(request, "tickets/register.html", {"form": RegistrationForm()})

    def post(self, request):
        form = RegistrationForm(request.POST)
        if form.is_valid():
            d = form.cleaned_data
            if d["kind"] == "organization":
                customer = {"kind": "organization", "legal_name": d["legal_name"], "tax_id": d["tax_id"]}
            else:
                customer = {"kind": "individual", "first_name": d["first_name"], "last_name": d["last_name"]}
            customer["contacts"] = ([{"kind": "email", "value": d["email"], "is_preferred": True}] if d["email"] else []) \
                + ([{"kind": "phone", "value": d["phone"], "is_preferred": True}] if d["phone"] else [])
            customer["addresses"] = [{"kind": "service", "line1": d["line1"], "city": d["city"],
                                      "country": d["country"].upper()}]
            try:
                person, tickets = services.register_customer(
                    actor=request.user, customer=customer, payment_mode=d["payment_mode"], tariffs=list(d["tariffs"]),
                    parameters={"login": d["login"]} if d["login"] else {})
            except DomainError as exc:
                form.add_error(None, exc.message)
                for field, errors in (exc.fields or {}).items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                messages.success(request, _("Customer %(c)s registered; tickets opened: %(t)s.") % {
                    "c": person.number, "t": ", ".join(t.number for t in tickets) or "—"})
                return redirect("crm:customer_detail", pk=person.pk)
        return render(request, "tickets/register.html", {"form": form}, status=400)


class AttachmentDownloadView(PermissionRequiredView):
    permission = "tickets.view_ticketattachment"

    def get(self, request, pk):
        att = TicketAttachment.objects.filter(pk=pk, ticket__in=selectors.visible_tickets(request.user)).first()
        if att is None:
            raise Http404("No such attachment")
        try:
            handle = att.file.open("rb")
        except FileNotFoundError:
            raise Http404("The stored file is missing") from None
        return FileResponse(handle, as_attachment=True, filename=att.filename, content_type=att.content_type)


urlpatterns = [
    path("ticket/<uuid:pk>/advance/", AdvanceView.as_view(), name="advance"),
    path("ticket/<uuid:pk>/watch/", WatchView.as_view(), name="watch"),
    path("queues/", QueuesView.as_view(), name="queues"),
    path("register/", RegisterView.as_view(), name="register"),
    path("attachment/<uuid:pk>/download/", AttachmentDownloadView.as_view(), name="attachment_download"),
]

