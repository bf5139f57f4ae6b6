"""Interbranch pages: taking a payment for another branch's subscriber, finding a subscriber anywhere in the
federation and their card."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _

from tarifa.kernel.errors import DomainError
from tarifa.web.forms import apply_domain_error
from tarifa.web.views import PermissionRequiredView

from . import selectors, services
from .forms import ForeignPaymentForm


class TakePaymentView(PermissionRequiredView):
    permission = "interbranch.add_foreignpayment"

    def get(self, request):
        initial = {"account": request.GET.get("account", "")} if request.GET.get("account") else None
        return render(request, "interbranch/take_payment.html", {"form": ForeignPaymentForm(initial=initial)})

    def post(self, request):
        form = ForeignPaymentForm(request.POST)
        if form.is_valid():
            try:
                fp = services.take_foreign_payment(actor=request.user, **form.cleaned_data)
            except DomainError as exc:
                apply_domain_error(form, exc)
            else:
                messages.success(request, _("Payment %(n)s taken for %(a)s: it goes to branch %(b)s.")
                                 % {"n": fp.number, "a": fp.account_number, "b": fp.owner_branch})
                return redirect("interbranch:foreignpayment_detail", fp.pk)
        return render(request, "interbranch/take_payment.html", {"form": form}, status=400)


class SearchView(PermissionRequiredView):
    permission = "interbranch.view_subscribercard"

    def get(self, request):
        return render(request, "interbranch/search.html",
                      {"found": selectors.search_federation(request.GET.get("q", "")[:100])})


class CardView(PermissionRequiredView):
    permission = "interbranch.view_subscribercard"

    def get(self, request, branch, number):
        from tarifa.federation import selectors as federation

        view = selectors.foreign_card(branch, number)
        if view["not_found"] and not view["card"]:
            status = 404
        else:
            status = 200
        return render(request, "interbranch/card.html", {
            "view": view, "own": view["branch"] == federation.own_code(),
            "can_pay": request.user.has_perm("interbranch.add_foreignpayment")}, status=status)


urlpatterns = [
    path("take-payment/", TakePaymentView.as_view(), name="take_payment"),
    path("search/", SearchView.as_view(), name="search"),
    path("card/<str:branch>/<str:number>/", CardView.as_view(), name="card"),
]
