"""Ledger pages beyond the generic screens: the invariant check (`tarifa ledger check`)."""

from django.shortcuts import render
from django.urls import path

from tarifa.web.views import PermissionRequiredView


class LedgerCheckView(PermissionRequiredView):
    """Runs the invariant check on request (`?run=1`): on a large ledger it reads every transfer."""

    permission = "ledger.view_ledgeraccount"

    def get(self, request):
        from .selectors import check_ledger

        result = check_ledger() if request.GET.get("run") else None
        return render(request, "ledger/check.html", {"result": result})


urlpatterns = [path("check/", LedgerCheckView.as_view(), name="check")]
