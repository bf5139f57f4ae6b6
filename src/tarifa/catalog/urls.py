import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils.translation import gettext as _

from tarifa.kernel.clock import today
from tarifa.kernel.errors import DomainError
from tarifa.web.forms import apply_domain_error
from tarifa.web.views import PermissionRequiredView

from .exchange import export_catalog, import_catalog
from .forms import CatalogImportForm


class CatalogExchangeView(PermissionRequiredView):
    """Download the catalog file; upload one to import (catalog.import_catalog)."""

    permission = "catalog.export_catalog"

    def context(self, request, form, stats=None):
        return {"form": form, "stats": stats, "can_import": request.user.has_perm("catalog.import_catalog")}

    def get(self, request):
        if request.GET.get("download"):
            body = json.dumps(export_catalog(), indent=2, ensure_ascii=False)
            response = HttpResponse(body, content_type="application/json; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="catalog-{today()}.json"'
            return response
        return render(request, "catalog/exchange.html", self.context(request, CatalogImportForm()))

    def post(self, request):
        if not request.user.has_perm("catalog.import_catalog"):
            raise DjangoPermissionDenied("catalog.import_catalog")
        form = CatalogImportForm(request.POST, request.FILES)
        stats = None
        if form.is_valid():
            try:
                data = json.loads(form.cleaned_data["file"].read().decode("utf-8-sig"))
                stats = import_catalog(data, actor=request.user)
                messages.success(request, _("Catalog imported."))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                form.add_error("file", _("Not a JSON file: %(error)s") % {"error": exc})
            except DomainError as exc:
                apply_domain_error(form, exc)
        return render(request, "catalog/exchange.html", self.context(request, form, stats),
                      status=200 if form.is_valid() and not form.errors else 400)


urlpatterns = [path("exchange/", CatalogExchangeView.as_view(), name="exchange")]
