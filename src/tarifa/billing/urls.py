import datetime as dt
import uuid

from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path

from tarifa.kernel.clock import today
from tarifa.kernel.errors import DomainError
from tarifa.web.views import PermissionRequiredView

from .forms import CheckForm
from .models import BillCycle, BillRun, Invoice


def pdf_response(pdf: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def error_response(exc: DomainError):
    return HttpResponse(exc.message, status=exc.status, content_type="text/plain; charset=utf-8")


class InvoicePdfView(PermissionRequiredView):
    permission = "billing.view_invoice"

    def get(self, request, pk):
        from .documents import invoice_pdf

        invoice = get_object_or_404(Invoice, pk=pk)
        try:
            pdf = invoice_pdf(invoice)
        except DomainError as exc:
            return error_response(exc)
        return pdf_response(pdf, f"{invoice.number or 'draft-' + str(invoice.pk)}.pdf")


class StatementPdfView(PermissionRequiredView):
    permission = "billing.view_invoice"

    def get(self, request, pk):
        from tarifa.ledger.models import BillingAccount

        from .documents import statement_pdf

        account = get_object_or_404(BillingAccount, pk=pk)
        try:
            end = dt.date.fromisoformat(request.GET["end"]) if request.GET.get("end") else today()
            start = dt.date.fromisoformat(request.GET["start"]) if request.GET.get("start") else end.replace(day=1)
        except ValueError:
            return HttpResponse("start and end are YYYY-MM-DD", status=400)
        try:
            return pdf_response(statement_pdf(account, start, end), f"statement-{account.number}-{end}.pdf")
        except DomainError as exc:
            return error_response(exc)


class ReceiptPdfView(PermissionRequiredView):
    permission = "billing.view_invoice"

    def get(self, request, pk):
        from tarifa.ledger.models import Transfer

        from .documents import receipt_pdf

        transfer = get_object_or_404(Transfer, pk=pk)
        try:
            return pdf_response(receipt_pdf(transfer), f"receipt-{transfer.pk}.pdf")
        except DomainError as exc:
            return error_response(exc)


class RunProgressView(PermissionRequiredView):
    """The live progress fragment of a bill run (polled by htmx every second while it runs)."""

    permission = "billing.view_billrun"

    def get(self, request, pk):
        run = get_object_or_404(BillRun.objects.select_related("cycle"), pk=pk)
        if request.GET.get("format") == "json":
            return JsonResponse({"status": run.status, "accounts": run.accounts, "done": run.done,
                                 "invoiced": run.invoiced, "skipped": run.skipped, "percent": run.percent})
        return render(request, "billing/_run_progress.html", {"run": run})


class QueuedRunsView(PermissionRequiredView):
    """The runs queued together (`?run=<id>&run=<id>`, a bill run for all cycles): each with its
    live progress and a link to its page."""

    permission = "billing.view_billrun"

    def get(self, request):
        ids = []
        for value in request.GET.getlist("run"):
            try:
                ids.append(uuid.UUID(value))
            except ValueError:
                continue
        runs = BillRun.objects.select_related("cycle").filter(pk__in=ids).order_by("cycle__code")
        return render(request, "billing/billrun_queued.html", {"runs": runs})


class CheckView(PermissionRequiredView):
    """Revenue assurance: the checks of `tarifa billing check`, for a period."""

    permission = "billing.view_invoice"

    def get(self, request):
        from . import services
        from .check import check

        cycle = BillCycle.objects.filter(archived_at__isnull=True).order_by("code").first()
        default = services.last_closed_period(cycle, today()) if cycle else f"{today():%Y-%m}"
        form = CheckForm(request.GET or None, initial={"period": default})
        result = None
        if form.is_bound and form.is_valid():
            c = form.cleaned_data["cycle"]
            result = check(period=form.cleaned_data["period"], cycle=c.code if c else None)
        return render(request, "billing/check.html", {"form": form, "result": result})


urlpatterns = [
    path("invoice/<uuid:pk>/pdf/", InvoicePdfView.as_view(), name="invoice_pdf"),
    path("account/<uuid:pk>/statement/", StatementPdfView.as_view(), name="statement_pdf"),
    path("payment/<uuid:pk>/receipt/", ReceiptPdfView.as_view(), name="receipt_pdf"),
    path("billrun/<uuid:pk>/progress/", RunProgressView.as_view(), name="billrun_progress"),
    path("billrun/queued/", QueuedRunsView.as_view(), name="billrun_queued"),
    path("check/", CheckView.as_view(), name="check"),
]
