"""Ledger pages beyond the generic screens: the invariant check (`tarifa ledger check`)."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _

from tarifa.web import background
from tarifa.web.views import PermissionRequiredView

from . import tasks  # noqa: F401  (registers the "ledger.check" background task)


class LedgerCheckView(PermissionRequiredView):
    """The invariant check reads every transfer (minutes on millions): "Run the check" starts it
    as a background task and opens its page (progress, then the report). This page shows the
    last report and a check under way."""

    permission = "ledger.view_ledgeraccount"

    def get(self, request):
        last = background.latest("ledger.check")
        return render(request, "ledger/check.html", {
            "last": last, "result": last.result if last else None, "under_way": background.running("ledger.check")})

    def post(self, request):
        task = background.running("ledger.check")
        if task is not None and background.can_see(request.user, task):
            messages.info(request, _("A ledger check is already under way: here it is."))
        else:
            task = background.start("ledger.check", actor=request.user)
        return redirect("web:task", pk=task.pk)


urlpatterns = [path("check/", LedgerCheckView.as_view(), name="check")]
