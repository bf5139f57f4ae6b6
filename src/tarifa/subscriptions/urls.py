from django.shortcuts import render
from django.urls import path

from tarifa.kernel.clock import today
from tarifa.web.views import PermissionRequiredView

from .forms import ChargeForm
from .models import ChargeRun


class ChargeView(PermissionRequiredView):
    """Run the fee charging for a day (what the daily job and `tarifa billing charge` do)."""

    permission = "subscriptions.charge_fees"

    def context(self, form, result=None):
        return {"form": form, "result": result, "runs": ChargeRun.objects.order_by("-started_at")[:20]}

    def get(self, request):
        return render(request, "subscriptions/charge.html", self.context(ChargeForm(initial={"as_of": today()})))

    def post(self, request):
        from .daily import run

        form = ChargeForm(request.POST)
        result = None
        if form.is_valid():
            result = run(as_of=form.cleaned_data["as_of"], actor=request.user.get_username())
        return render(request, "subscriptions/charge.html", self.context(form, result), status=200 if result else 400)


urlpatterns = [path("charge/", ChargeView.as_view(), name="charge")]
