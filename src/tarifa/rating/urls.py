"""Rating's own pages: cost calculator, CGRateS import/export, prefix upload, usage import, re-rating."""

import csv
import io
import tempfile
import zipfile
from pathlib import Path

from django.contrib import messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _

from tarifa.kernel.errors import DomainError
from tarifa.web.forms import apply_domain_error
from tarifa.web.views import PermissionRequiredView

from . import engine, services, usage
from .cgrates_io import export_rows, import_directory
from .forms import CalculatorForm, CgratesImportForm, PrefixUploadForm, RerateForm, UsageImportForm
from .models import RatingTenant, UsageBatch


class CalculatorView(PermissionRequiredView):
    """Price one call with a tenant's current plan; htmx swaps in the cost and its spans."""

    permission = "rating.calculate"

    def get(self, request):
        initial = {"answer_time": "2019-03-11T09:00:00Z"}
        initial.update({k: v for k, v in request.GET.items() if k in CalculatorForm.base_fields})
        return render(request, "rating/calculator.html", {"form": CalculatorForm(initial=initial)})

    def post(self, request):
        from .api import calculate

        form = CalculatorForm(request.POST)
        result = error = None
        if form.is_valid():
            data = dict(form.cleaned_data)
            data["tenant"] = data["tenant"].code
            try:
                result = calculate(data)
            except engine.RatingError as exc:
                error = {"code": exc.code, "message": exc.message}
            except DomainError as exc:
                apply_domain_error(form, exc)
        template = "rating/_cost.html" if request.htmx else "rating/calculator.html"
        return render(request, template, {"form": form, "result": result, "error": error},
                      status=200 if form.is_valid() else 400)


class CgratesView(PermissionRequiredView):
    """Import a CGRateS classic directory (its CSV files, or a .zip of them); export a tenant's plan."""

    permission = "rating.import_plan"

    def context(self, request, form, summary=None):
        return {"form": form, "summary": summary, "tenants": RatingTenant.objects.filter(archived_at__isnull=True),
                "can_export": request.user.has_perm("rating.export_plan")}

    def get(self, request):
        code = request.GET.get("export")
        if code:
            if not request.user.has_perm("rating.export_plan"):
                raise DjangoPermissionDenied("rating.export_plan")
            tenant = RatingTenant.objects.filter(code=code, archived_at__isnull=True).first()
            if tenant is None:
                messages.error(request, _("No such tenant."))
                return redirect("rating:cgrates")
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for name, rows in export_rows(tenant).items():
                    text = io.StringIO()
                    csv.writer(text, lineterminator="\n").writerows(rows)
                    archive.writestr(name, text.getvalue())
            response = HttpResponse(buffer.getvalue(), content_type="application/zip")
            response["Content-Disposition"] = f'attachment; filename="tariffplan-{tenant.code}.zip"'
            return response
        return render(request, "rating/cgrates.html", self.context(request, CgratesImportForm()))

    def post(self, request):
        from .engine.cgrates_csv import FILES

        form = CgratesImportForm(request.POST, request.FILES)
        summary = None
        if form.is_valid():
            with tempfile.TemporaryDirectory(prefix="tarifa-cgrates-") as tmp:
                for upload in request.FILES.getlist("files"):
                    data = upload.read()
                    if upload.name.endswith(".zip"):
                        try:
                            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                                for member in archive.namelist():
                                    if Path(member).name in FILES:
                                        Path(tmp, Path(member).name).write_bytes(archive.read(member))
                        except zipfile.BadZipFile:
                            form.add_error("files", _("Not a zip file."))
                    elif Path(upload.name).name in FILES:
                        Path(tmp, Path(upload.name).name).write_bytes(data)
                    else:
                        form.add_error("files", _("Unexpected file %(name)s.") % {"name": upload.name})
                if not form.errors:
                    try:
                        summary = import_directory(tmp, tenant=form.cleaned_data["tenant"] or None,
                                                   actor=request.user)
                        messages.success(request, _("Tariff plan imported."))
                    except DomainError as exc:
                        apply_domain_error(form, exc)
        return render(request, "rating/cgrates.html", self.context(request, form, summary),
                      status=200 if summary else 400)


class PrefixUploadView(PermissionRequiredView):
    """Upload a prefix table (destination, prefix[, name]) into a tenant."""

    permission = "rating.add_destinationprefix"

    def get(self, request):
        return render(request, "rating/prefix_upload.html", {"form": PrefixUploadForm()})

    def post(self, request):
        form = PrefixUploadForm(request.POST, request.FILES)
        stats = None
        if form.is_valid():
            try:
                text = form.cleaned_data["file"].read().decode("utf-8-sig")
            except UnicodeDecodeError:
                form.add_error("file", _("The file is not UTF-8 text."))
                text = None
            if text is not None:
                rows = []
                for line_no, row in enumerate(csv.reader(io.StringIO(text)), start=1):
                    if not row or not any(c.strip() for c in row):
                        continue
                    first = row[0].strip().lower()
                    if first.startswith("#") or (line_no == 1 and first in ("destination", "destination_code", "id")):
                        continue
                    rows.append((line_no, row))
                try:
                    stats = services.upload_prefixes(actor=request.user, tenant=form.cleaned_data["tenant"], rows=rows,
                                                     replace=form.cleaned_data["replace"])
                    messages.success(request, _("Prefix table loaded."))
                except DomainError as exc:
                    apply_domain_error(form, exc)
                    for problem in exc.fields.get("file", []):
                        form.add_error(None, problem)
        return render(request, "rating/prefix_upload.html", {"form": form, "stats": stats},
                      status=200 if stats else 400)


class UsageImportView(PermissionRequiredView):
    """Import a usage file through the same pipeline as `tarifa usage import`."""

    permission = "rating.add_usagebatch"
    max_upload_setting = "TARIFA_MAX_USAGE_FILE_BYTES"  # checked before the body is read

    def context(self, form, batch=None):
        return {"form": form, "batch": batch, "recent": UsageBatch.objects.order_by("-started_at")[:10]}

    def get(self, request):
        return render(request, "rating/usage_import.html", self.context(UsageImportForm()))

    def post(self, request):
        form = UsageImportForm(request.POST, request.FILES)
        batch = None
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                batch = usage.import_file(upload.file, format=form.cleaned_data["format"], actor=request.user,
                                          file_name=upload.name, file_size=upload.size,
                                          source=form.cleaned_data["source"], parallel=False)
                messages.success(request, _("Imported: %(read)s read, %(rated)s rated, %(rejected)s rejected, "
                                            "%(dup)s duplicates (%(again)s reprocessed).")
                                 % {"read": batch.read, "rated": batch.rated, "rejected": batch.rejected,
                                    "dup": batch.duplicates, "again": batch.reprocessed})
                return redirect("rating:usagebatch_detail", batch.pk)
            except DomainError as exc:
                apply_domain_error(form, exc)
        return render(request, "rating/usage_import.html", self.context(form, batch), status=400)


class RerateView(PermissionRequiredView):
    permission = "rating.rerate_usage"

    def get(self, request):
        return render(request, "rating/rerate.html", {"form": RerateForm()})

    def post(self, request):
        from tarifa.ledger.models import BillingAccount

        form = RerateForm(request.POST)
        if form.is_valid():
            account = None
            number = form.cleaned_data["billing_account"].strip()
            if number:
                account = BillingAccount.objects.filter(number=number).first()
                if account is None:
                    form.add_error("billing_account", _("No such billing account."))
            if not form.errors:
                try:
                    run = usage.rerate(actor=request.user, date_from=form.cleaned_data["date_from"],
                                       date_to=form.cleaned_data["date_to"], billing_account=account)
                    messages.success(request, _("Re-rated: %(n)s records priced, %(c)s changed.")
                                     % {"n": run.records, "c": run.changed})
                    return redirect("rating:reraterun_detail", run.pk)
                except DomainError as exc:
                    apply_domain_error(form, exc)
        return render(request, "rating/rerate.html", {"form": form}, status=400)


urlpatterns = [
    path("calculator/", CalculatorView.as_view(), name="calculator"),
    path("cgrates/", CgratesView.as_view(), name="cgrates"),
    path("prefix-upload/", PrefixUploadView.as_view(), name="prefix_upload"),
    path("usage-import/", UsageImportView.as_view(), name="usage_import"),
    path("rerate/", RerateView.as_view(), name="rerate"),
]
