"""Payments pages beyond the generic screens: the cashier's page, printable receipts, voucher
generation (codes shown once) and redemption."""

import base64
import io

from django.conf import settings
from django.contrib import messages
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _

from tarifa.crm.selectors import search_customers
from tarifa.kernel.errors import DomainError
from tarifa.kernel.money import parse_amount
from tarifa.ledger.models import BillingAccount
from tarifa.web.csvexport import SafeWriter
from tarifa.web.forms import apply_domain_error
from tarifa.web.middleware import client_ip
from tarifa.web.views import PermissionRequiredView

from . import selectors, services
from .forms import CashPaymentForm, CloseShiftForm, GenerateVouchersForm, OpenShiftForm, RedeemVoucherForm
from .models import Channel, Payment
from .test_provider import HostedCheckoutView

MAX_RESULTS = 20


def find_accounts(query: str, currency: str):
    """Open accounts in `currency` of the customers matching `query` (name, number, phone, …) or
    the account whose number it is."""
    query = (query or "").strip()
    if not query:
        return []
    customers = search_customers(query).order_by().values("pk")
    return list(BillingAccount.objects.filter(status=BillingAccount.Status.ACTIVE, currency=currency)
                .filter(Q(customer__in=customers) | Q(number__iexact=query))
                .select_related("customer", "ledger_account").order_by("customer__number", "number")[:MAX_RESULTS])


class CashierView(PermissionRequiredView):
    """Open a shift → find the customer → take cash → see the new balance → close with the cash counted."""

    permission = "payments.operate_cash_desk"
    template = "payments/cashier.html"

    def context(self, request, shift, **extra):
        query = request.GET.get("q", "").strip()
        context = {"shift": shift, "query": query, "results": [], "open_form": None, "close_form": None}
        if shift is None:
            context["open_form"] = extra.pop("open_form", None) or OpenShiftForm(user=request.user)
        else:
            context["summary"] = selectors.shift_summary(shift)
            context["expected_now"] = services.expected_cash(shift)
            context["close_form"] = extra.pop("close_form", None) or CloseShiftForm()
            if query:
                context["results"] = [(a, CashPaymentForm(initial={"account": a.number}, prefix=f"a{i}"))
                                      for i, a in enumerate(find_accounts(query, shift.currency))]
        paid = request.GET.get("paid")
        if paid:
            payment = selectors.payments_for(request.user).filter(pk=paid).select_related(
                "billing_account__ledger_account", "billing_account__customer").first() if _is_uuid(paid) else None
            if payment is not None:
                context["paid"] = payment
                context["new_balance"] = payment.billing_account.ledger_account.balance
        closed = request.GET.get("closed")
        if closed and _is_uuid(closed):
            context["closed"] = selectors.shifts_for(request.user).filter(pk=closed).first()
        context.update(extra)
        return context

    def get(self, request):
        shift = services.open_shift_of(request.user)
        return render(request, self.template, self.context(request, shift))

    def post(self, request):
        shift = services.open_shift_of(request.user)
        action = request.POST.get("action")
        if action == "open" and shift is None:
            form = OpenShiftForm(request.POST, user=request.user)
            if form.is_valid():
                try:
                    services.open_shift(actor=request.user, desk=form.cleaned_data["desk"],
                                        opening_float=form.cleaned_data["opening_float"])
                    return redirect("payments:cashier")
                except DomainError as exc:
                    apply_domain_error(form, exc)
            return render(request, self.template, self.context(request, None, open_form=form), status=400)
        if shift is None:
            messages.error(request, _("Open a shift first."))
            return redirect("payments:cashier")
        if action == "pay":
            prefix = request.POST.get("prefix", "")
            form = CashPaymentForm(request.POST, prefix=prefix or None)
            if form.is_valid():
                try:
                    payment = services.accept_payment(
                        actor=request.user, account=form.cleaned_data["account"], amount=form.cleaned_data["amount"],
                        channel=Channel.CASH, shift=shift, payer=form.cleaned_data.get("payer", ""),
                        idempotency_key=form.cleaned_data["idempotency_key"])
                    return redirect(f"{reverse('payments:cashier')}?paid={payment.pk}")
                except DomainError as exc:
                    messages.error(request, exc.message)
            else:
                messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
            return redirect(f"{reverse('payments:cashier')}?q={request.POST.get('q', '')}")
        if action == "close":
            form = CloseShiftForm(request.POST)
            if form.is_valid() and request.POST.get("confirmed") != "1":
                # A confirmation step first: what closing will do, with the figures, then "Confirm".
                try:
                    counted = parse_amount(form.cleaned_data["counted_cash"], field="counted_cash")
                except DomainError as exc:
                    apply_domain_error(form, exc)
                else:
                    expected = services.expected_cash(shift)
                    confirm = {"counted": counted, "expected": expected, "difference": counted - expected,
                               "note": form.cleaned_data.get("note", "")}
                    return render(request, self.template, self.context(request, shift, close_form=form,
                                                                       confirm_close=confirm))
            elif form.is_valid():
                try:
                    closed = services.close_shift(shift, actor=request.user, **form.cleaned_data)
                    return redirect(f"{reverse('payments:cashier')}?closed={closed.pk}")
                except DomainError as exc:
                    apply_domain_error(form, exc)
            return render(request, self.template, self.context(request, shift, close_form=form), status=400)
        return redirect("payments:cashier")


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


class ReceiptView(PermissionRequiredView):
    """A printable receipt (the browser prints it; `@media print` hides the buttons)."""

    permission = "payments.view_payment"

    def get(self, request, pk):
        payment = (selectors.payments_for(request.user).select_related("billing_account__customer")
                   .filter(pk=pk).first())
        if payment is None:
            raise Http404("No such payment")
        return render(request, "payments/receipt.html", {
            "payment": payment, "customer": payment.billing_account.customer,
            "operator": settings.TARIFA_BRANCH_NAME, "branch": settings.TARIFA_BRANCH_CODE})


def cards_csv(cards) -> str:
    buffer = io.StringIO()
    writer = SafeWriter(buffer)
    writer.writerow(["serial", "code"])
    writer.writerows(cards)
    return buffer.getvalue()


class GenerateVouchersView(PermissionRequiredView):
    """Generate a batch; its codes are on this one page (and its CSV link), never stored or shown again."""

    permission = "payments.add_voucherbatch"

    def get(self, request):
        return render(request, "payments/voucher_generate.html", {"form": GenerateVouchersForm()})

    def post(self, request):
        form = GenerateVouchersForm(request.POST)
        if form.is_valid():
            try:
                batch, cards = services.generate_batch(actor=request.user, **form.cleaned_data)
            except DomainError as exc:
                apply_domain_error(form, exc)
            else:
                data = base64.b64encode(cards_csv(cards).encode()).decode()
                response = render(request, "payments/voucher_codes.html", {
                    "batch": batch, "cards": cards, "csv_href": f"data:text/csv;base64,{data}"})
                response["Cache-Control"] = "no-store"
                return response
        return render(request, "payments/voucher_generate.html", {"form": form}, status=400)


class RedeemVoucherView(PermissionRequiredView):
    permission = "payments.redeem_voucher"

    def get(self, request):
        return render(request, "payments/voucher_redeem.html", {"form": RedeemVoucherForm()})

    def post(self, request):
        form = RedeemVoucherForm(request.POST)
        if form.is_valid():
            try:
                payment = services.redeem_voucher(actor=request.user, account=form.cleaned_data["account"],
                                                  code=form.cleaned_data["code"], ip=client_ip(request))
                payment = Payment.objects.select_related("billing_account__ledger_account").get(pk=payment.pk)
                messages.success(request, _("Voucher redeemed: payment %(number)s of %(amount)s %(currency)s; the "
                                            "balance of %(account)s is now %(balance)s.") % {
                    "number": payment.number, "amount": f"{payment.amount:.2f}", "currency": payment.currency,
                    "account": payment.billing_account.number,
                    "balance": f"{payment.billing_account.ledger_account.balance:.2f}"})
                return redirect("payments:voucher_redeem")
            except DomainError as exc:
                form.add_error(None, exc.message)
        return render(request, "payments/voucher_redeem.html", {"form": form}, status=400)


urlpatterns = [
    path("cashier/", CashierView.as_view(), name="cashier"),
    path("payment/<uuid:pk>/receipt/", ReceiptView.as_view(), name="payment_receipt"),
    path("vouchers/generate/", GenerateVouchersView.as_view(), name="voucher_generate"),
    path("vouchers/redeem/", RedeemVoucherView.as_view(), name="voucher_redeem"),
    # The built-in TEST card provider's hosted page (not a staff page: the signed link is the key).
    path("test-card-provider/checkout/", HostedCheckoutView.as_view(), name="test_provider_checkout"),
]
