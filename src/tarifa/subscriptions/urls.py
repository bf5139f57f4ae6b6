from decimal import Decimal

from django.shortcuts import render
from django.urls import path

from tarifa.kernel.clock import today
from tarifa.kernel.money import format_money
from tarifa.web.views import PermissionRequiredView

from .forms import ChargeForm
from .models import ChargeRun


class ChargeView(PermissionRequiredView):
    """Run the fee charging for a day (what the daily job and `tarifa billing charge` do).

    Two steps: the day submitted shows a preview (what the run would charge and suspend,
    computed by the run itself in a transaction rolled back) with a warning for a future
    day; only the confirmation (`confirmed=1`) runs it."""

    permission = "subscriptions.charge_fees"

    def context(self, form, result=None, preview=None):
        return {"form": form, "result": result, "preview": preview,
                "runs": ChargeRun.objects.order_by("-started_at")[:20]}

    def get(self, request):
        return render(request, "subscriptions/charge.html", self.context(ChargeForm(initial={"as_of": today()})))

    def post(self, request):
        from . import daily

        form = ChargeForm(request.POST)
        if not form.is_valid():
            return render(request, "subscriptions/charge.html", self.context(form), status=400)
        as_of = form.cleaned_data["as_of"]
        if request.POST.get("confirmed") != "1":
            preview = daily.preview(as_of=as_of, actor=request.user)
            preview["total_lines"] = [format_money(Decimal(v), cur) for cur, v in preview["totals_exact"].items()]
            return render(request, "subscriptions/charge.html", self.context(form, preview=preview))
        result = daily.run(as_of=as_of, actor=request.user.get_username())
        return render(request, "subscriptions/charge.html", self.context(form, result))


urlpatterns = [path("charge/", ChargeView.as_view(), name="charge")]
