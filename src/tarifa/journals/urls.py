"""The reconciliation page (`tarifa federation reconcile` in the browser)."""

from django.shortcuts import render
from django.urls import path

from tarifa.kernel.errors import DomainError
from tarifa.web.views import PermissionRequiredView

from . import selectors, services
from .forms import ReconcileForm


class ReconcileView(PermissionRequiredView):
    permission = "journals.reconcile"

    def get(self, request):
        return render(request, "journals/reconcile.html", {"form": ReconcileForm(), "is_centre": selectors.is_centre(),
                                                           "open": selectors.open_mismatches().filter(
                                                               node=selectors.own_code()).count()})

    def post(self, request):
        form = ReconcileForm(request.POST)
        report, error = None, None
        if form.is_valid():
            try:
                report = services.reconcile(form.cleaned_data["date"], actor=request.user)
            except DomainError as exc:
                error = exc.message if hasattr(exc, "message") else str(exc)
        return render(request, "journals/reconcile.html", {"form": form, "report": report, "error": error,
                                                           "is_centre": selectors.is_centre()},
                      status=200 if form.is_valid() and error is None else 400)


urlpatterns = [path("reconcile/", ReconcileView.as_view(), name="reconcile")]
