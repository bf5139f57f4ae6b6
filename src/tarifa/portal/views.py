"""The customer's pages at /portal/. Every page is a `PortalView`: it resolves the portal session
(never the staff session), takes every record through `Scope` (404 for anything not the
user's), binds the audit context (channel `portal`) and the user's language."""

import datetime as dt
import uuid

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import View

from tarifa.billing import documents
from tarifa.billing.models import Invoice
from tarifa.crm.models import Customer
from tarifa.kernel.clock import today
from tarifa.kernel.errors import DomainError
from tarifa.kernel.periods import parse_period
from tarifa.payments.models import CardCheckout
from tarifa.subscriptions.models import Subscription, Suspension
from tarifa.web.middleware import client_ip
from tarifa.web.pagination import paginate
from tarifa.web.views import PermissionRequiredView

from . import auth, forms, helpdesk, network, services
from .models import LANGUAGES
from .scope import Scope
from .templatetags.portal import pdate

SORTS = {  # ?sort= values a list accepts (anything else is ignored), per list
    "invoices": {"date": "invoice_date", "-date": "-invoice_date", "due": "due_date", "-due": "-due_date",
                 "total": "total", "-total": "-total", "number": "number", "-number": "-number"},
    "payments": {"date": "received_at", "-date": "-received_at", "amount": "amount", "-amount": "-amount"},
}


def _error(request, exc: DomainError):
    messages.error(request, _(exc.message) if isinstance(exc.message, str) else exc.message)


class PortalView(View):
    """Base of every portal page. `anonymous = True`: the sign-in pages; `right`: a Scope right."""

    anonymous = False
    right: str | None = None
    template = None
    read_only_ok = False  # a POST the read-only staff view may make (leave, sign out)

    def dispatch(self, request, *args, **kwargs):
        auth.load(request)
        user = auth.user_of(request)
        request.portal_user = user
        lang = user.language if user is not None else request.portal_session.get(auth.LANG_KEY, "en")
        with translation.override(lang if lang in dict(LANGUAGES) else "en"), \
                services.client_context(client_ip(request)):
            if user is None and not self.anonymous:
                response = redirect_to_login(request.get_full_path(), reverse("portal:login"))
            else:
                request.scope = Scope(user) if user is not None else None
                try:
                    if user is not None and self.right:
                        request.scope.require(self.right)
                    if user is not None and user.read_only and request.method not in ("GET", "HEAD") \
                            and not self.read_only_ok:
                        raise DjangoPermissionDenied("read-only")
                    response = super().dispatch(request, *args, **kwargs)
                except DjangoPermissionDenied:
                    response = render(request, "portal/read_only.html", {}, status=403)
                if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                    response.render()
        return auth.save(request, response)

    def render(self, request, context=None, template=None, status=200):
        context = dict(context or {})
        context.setdefault("portal_user", request.portal_user)
        context.setdefault("scope", getattr(request, "scope", None))
        context.setdefault("languages", LANGUAGES)
        context.setdefault("help_available", helpdesk.available())
        return render(request, template or self.template, context, status=status)


def _safe_next(request, default="portal:home"):
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target.startswith("/portal/") and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return reverse(default)


# Signing in --------------------------------------------------------------------------------------

class LoginView(PortalView):
    anonymous = True
    template = "portal/login.html"

    def get(self, request):
        if request.portal_user is not None:
            return redirect("portal:home")
        return self.render(request, {"form": forms.LoginForm(), "next": request.GET.get("next", "")})

    def post(self, request):
        form = forms.LoginForm(request.POST)
        status = 200
        otp_needed = False
        if form.is_valid():
            try:
                user = services.authenticate(login=form.cleaned_data["login"], password=form.cleaned_data["password"],
                                             otp=form.cleaned_data["otp"] or None, ip=client_ip(request) or None)
            except services.OtpRequired:
                otp_needed = True
                form.add_error("otp", _("Enter the code from your authenticator app."))
            except DomainError as exc:
                status = 429 if exc.status == 429 else 200
                form.add_error(None, _("Too many attempts. Please wait a few minutes and try again.")
                               if exc.status == 429 else _("Wrong login or password."))
            else:
                auth.login(request, user)
                return HttpResponseRedirect(_safe_next(request))
        return self.render(request, {"form": form, "otp_needed": otp_needed, "next": request.POST.get("next", "")},
                           status=status)


class LogoutView(PortalView):
    anonymous = True
    read_only_ok = True

    def post(self, request):
        auth.logout(request)
        return redirect("portal:login")


class LanguageView(PortalView):
    anonymous = True
    read_only_ok = True

    def post(self, request):
        lang = request.POST.get("language", "en")
        if lang in dict(LANGUAGES):
            request.portal_session[auth.LANG_KEY] = lang
            user = request.portal_user
            if user is not None and not user.read_only and user.language != lang:
                services.update_preferences(user, actor=user, language=lang, notify_email=user.notify_email,
                                            notify_sms=user.notify_sms)
        return HttpResponseRedirect(_safe_next(request))


class RegisterView(PortalView):
    anonymous = True
    template = "portal/register.html"

    def get(self, request):
        return self.render(request, {"form": forms.RegisterForm(), "step": 1})

    def post(self, request):
        if "code" in request.POST:
            form = forms.CodePasswordForm(request.POST)
            if form.is_valid():
                try:
                    user = services.complete_registration(contact=form.cleaned_data["contact"],
                                                          code=form.cleaned_data["code"],
                                                          password=form.cleaned_data["password"],
                                                          ip=client_ip(request) or None,
                                                          language=translation.get_language())
                except DomainError as exc:
                    form.add_error("password" if exc.code == "weak_password" else None,
                                   _("Too many attempts. Please wait a few minutes and try again.")
                                   if exc.status == 429 else _(exc.message))
                else:
                    auth.login(request, user)
                    messages.success(request, _("Welcome! Your portal login is ready."))
                    return redirect("portal:home")
            return self.render(request, {"form": form, "step": 2}, status=200)
        form = forms.RegisterForm(request.POST)
        if form.is_valid():
            try:
                services.request_registration(customer_number=form.cleaned_data["customer_number"],
                                              contact=form.cleaned_data["contact"], ip=client_ip(request) or None)
            except DomainError as exc:
                form.add_error(None, _("Too many attempts. Please wait a few minutes and try again.")
                               if exc.status == 429 else _(exc.message))
                return self.render(request, {"form": form, "step": 1}, status=429 if exc.status == 429 else 200)
            messages.info(request, _("If the customer number and the address match our records, we have sent a "
                                     "one-time code there. It is valid for 15 minutes."))
            return self.render(request, {"form": forms.CodePasswordForm(initial={"contact": form.cleaned_data["contact"]}),
                                         "step": 2})
        return self.render(request, {"form": form, "step": 1})


class ResetView(PortalView):
    anonymous = True
    template = "portal/reset.html"

    def get(self, request):
        return self.render(request, {"form": forms.ResetForm(), "step": 1})

    def post(self, request):
        if "code" in request.POST:
            form = forms.CodePasswordForm(request.POST)
            if form.is_valid():
                try:
                    services.complete_password_reset(login=form.cleaned_data["contact"], code=form.cleaned_data["code"],
                                                     password=form.cleaned_data["password"],
                                                     ip=client_ip(request) or None)
                except DomainError as exc:
                    form.add_error(None, _("Too many attempts. Please wait a few minutes and try again.")
                                   if exc.status == 429 else _(exc.message))
                else:
                    messages.success(request, _("Your password is changed. Sign in with it."))
                    return redirect("portal:login")
            return self.render(request, {"form": form, "step": 2})
        form = forms.ResetForm(request.POST)
        if form.is_valid():
            try:
                services.request_password_reset(login=form.cleaned_data["login"], ip=client_ip(request) or None)
            except DomainError as exc:
                form.add_error(None, _("Too many attempts. Please wait a few minutes and try again."))
                return self.render(request, {"form": form, "step": 1}, status=429 if exc.status == 429 else 200)
            messages.info(request, _("If this login exists, we have sent a one-time code to its e-mail address or "
                                     "phone. It is valid for 15 minutes."))
            return self.render(request, {"form": forms.CodePasswordForm(initial={"contact": form.cleaned_data["login"]}),
                                         "step": 2})
        return self.render(request, {"form": form, "step": 1})


# Home ---------------------------------------------------------------------------------------------

def suspension_reason(sub) -> str:
    causes = {Suspension.Cause.BALANCE: _("not enough money on the account"),
              Suspension.Cause.DUNNING: _("unpaid invoices"),
              Suspension.Cause.CUSTOMER_REQUEST: _("paused at your request"),
              Suspension.Cause.FRAUD: _("blocked by the operator"),
              Suspension.Cause.OPERATOR: _("suspended by the operator")} if hasattr(Suspension.Cause, "FRAUD") else {}
    texts = []
    for s in sub.suspensions.filter(ended_at__isnull=True):
        text = causes.get(s.cause) or {
            "balance": _("not enough money on the account"), "dunning": _("unpaid invoices"),
            "customer_request": _("paused at your request")}.get(s.cause) or s.get_cause_display()
        if s.planned_end:
            text = _("%(text)s until %(day)s") % {"text": text, "day": pdate(s.planned_end)}
        texts.append(str(text))
    return "; ".join(texts)


def next_charge(sub):
    """(amount, day): the next recurring fee of a live subscription and when it is charged."""
    if sub.status not in (Subscription.Status.ACTIVE, Subscription.Status.SUSPENDED):
        return None
    day = today()
    version = sub.tariff.version_on(day)
    if version is None or not version.recurring_fee:
        return None
    if sub.tariff.period == "day":
        return version.recurring_fee, day + dt.timedelta(days=1)
    nxt = (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    if sub.tariff.proration == "none":
        return version.recurring_fee, nxt
    return version.recurring_fee, nxt


class HomeView(PortalView):
    template = "portal/home.html"

    def get(self, request):
        scope = request.scope
        accounts = list(scope.accounts())
        subs = list(scope.subscriptions().exclude(status=Subscription.Status.TERMINATED).order_by("number"))
        for sub in subs:
            sub.reason = suspension_reason(sub) if sub.status == Subscription.Status.SUSPENDED else ""
            sub.next = next_charge(sub)
        for account in accounts:
            funds = services.account_funds(account)
            account.funds = funds
        open_invoices = list(scope.invoices().filter(kind=Invoice.Kind.INVOICE, state__in=[
            Invoice.State.ISSUED, Invoice.State.PARTIALLY_PAID, Invoice.State.OVERDUE]).order_by("due_date")[:10])
        payments = list(scope.payments().order_by("-received_at")[:5])
        notices = []
        portal_settings = services.current_settings()
        if portal_settings.notice:
            notices.append(portal_settings.notice)
        if any(s.status == Subscription.Status.SUSPENDED for s in subs):
            notices.append(_("Some of your services are suspended: see below why."))
        if any(i.state == Invoice.State.OVERDUE for i in open_invoices):
            notices.append(_("You have overdue invoices."))
        return self.render(request, {"accounts": accounts, "subscriptions": subs, "open_invoices": open_invoices,
                                     "payments": payments, "notices": notices})


# Pay ----------------------------------------------------------------------------------------------

class PayView(PortalView):
    right = "money"
    template = "portal/pay.html"

    def context(self, request, **forms_):
        accounts = [a for a in request.scope.accounts() if a.is_active]
        gateway = services.card_gateway()
        ctx = {"accounts": accounts, "gateway": gateway,
               "topup": forms_.get("topup") or forms.TopUpForm(accounts=accounts),
               "voucher": forms_.get("voucher") or forms.VoucherForm(accounts=accounts),
               "promise": forms_.get("promise") or forms.PromiseForm(accounts=accounts),
               "promise_offered": services.current_settings().promised_payment}
        for account in accounts:
            account.funds = services.account_funds(account)
        return ctx

    def get(self, request):
        return self.render(request, self.context(request))

    def post(self, request):
        accounts = [a for a in request.scope.accounts() if a.is_active]
        what = request.POST.get("what")
        user = request.portal_user
        if what == "card":
            form = forms.TopUpForm(request.POST, accounts=accounts)
            if form.is_valid():
                account = request.scope.get("account", form.cleaned_data["account"])
                gateway = services.card_gateway()
                if gateway is None:
                    form.add_error(None, _("Card payments are not available."))
                else:
                    key = request.POST.get("key") or uuid.uuid4().hex
                    try:
                        checkout = services.start_top_up(
                            user, account=account, amount=form.cleaned_data["amount"], gateway=gateway,
                            notify_url=request.build_absolute_uri(reverse("api:payments-gateway-webhook",
                                                                          args=[gateway.code])),
                            return_url=request.build_absolute_uri(reverse("portal:pay_return", args=[account.pk])),
                            idempotency_key=key)
                    except DomainError as exc:
                        form.add_error("amount" if "amount" in (exc.fields or {}) else None, _(exc.message))
                    else:
                        return HttpResponseRedirect(checkout.redirect_url)
            return self.render(request, self.context(request, topup=form))
        if what == "voucher":
            form = forms.VoucherForm(request.POST, accounts=accounts)
            if form.is_valid():
                account = request.scope.get("account", form.cleaned_data["account"])
                try:
                    payment = services.redeem_voucher(user, account=account, code=form.cleaned_data["code"],
                                                      ip=client_ip(request) or None)
                except DomainError as exc:
                    form.add_error(None if exc.status == 429 else "code",
                                   _("Too many attempts. Please wait a few minutes and try again.")
                                   if exc.status == 429 else _("This code cannot be used: %(why)s") % {
                                       "why": _(exc.message)})
                else:
                    messages.success(request, _("Voucher accepted: %(amount)s added to %(account)s.") % {
                        "amount": services.money_text(payment.amount, payment.currency), "account": account.number})
                    return redirect("portal:home")
            return self.render(request, self.context(request, voucher=form))
        if what == "promise":
            form = forms.PromiseForm(request.POST, accounts=accounts)
            if form.is_valid():
                account = request.scope.get("account", form.cleaned_data["account"])
                try:
                    promise = services.take_promised_payment(user, account=account)
                except DomainError as exc:
                    form.add_error(None, _(exc.message))
                else:
                    messages.success(request, _("Promised payment of %(amount)s until %(day)s.") % {
                        "amount": services.money_text(promise.amount, account.currency),
                        "day": pdate(promise.expires_at)})
                    return redirect("portal:home")
            return self.render(request, self.context(request, promise=form))
        raise Http404("unknown form")


class PayReturnView(PortalView):
    """Where the card provider sends the customer back: the balance and services follow now."""

    right = "money"
    template = "portal/pay_return.html"

    def get(self, request, account_id):
        account = request.scope.get("account", account_id)
        checkout = (CardCheckout.objects.filter(billing_account=account).order_by("-created_at").first())
        if checkout is not None and checkout.state == CardCheckout.State.APPLIED:
            services.refresh_account(request.portal_user, account)
        account.funds = services.account_funds(account)
        subs = list(request.scope.subscriptions().filter(billing_account=account)
                    .exclude(status=Subscription.Status.TERMINATED))
        for sub in subs:
            sub.reason = suspension_reason(sub) if sub.status == Subscription.Status.SUSPENDED else ""
        return self.render(request, {"account": account, "checkout": checkout, "subscriptions": subs})


# Documents ----------------------------------------------------------------------------------------

PER_PAGE = 25


def _page(request, rows, name: str) -> dict:
    """A page of `rows` (?page=N, 25 a page) for portal/_pager.html, with the other parameters kept."""
    params = request.GET.copy()
    params.pop("page", None)
    page = paginate(rows, request.GET.get("page"), PER_PAGE)
    return {"page": page, name: page.object_list, "querystring": params.urlencode()}

class InvoiceListView(PortalView):
    right = "money"
    template = "portal/invoices.html"

    def get(self, request):
        qs = request.scope.invoices()
        account = request.GET.get("account")
        if account:
            qs = qs.filter(billing_account=request.scope.get("account", account))
        kind = request.GET.get("kind")
        if kind in Invoice.Kind.values:
            qs = qs.filter(kind=kind)
        qs = qs.order_by(SORTS["invoices"].get(request.GET.get("sort", ""), "-invoice_date"), "-number")
        return self.render(request, {**_page(request, qs, "invoices"), "accounts": request.scope.accounts()})


def _pdf(content: bytes, name: str) -> HttpResponse:
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


class InvoicePdfView(PortalView):
    right = "money"

    def get(self, request, invoice_id):
        invoice = request.scope.get("invoice", invoice_id)
        return _pdf(documents.invoice_pdf(invoice), f"{invoice.number or invoice.pk}.pdf")


class PaymentListView(PortalView):
    right = "money"
    template = "portal/payments.html"

    def get(self, request):
        qs = request.scope.payments()
        account = request.GET.get("account")
        if account:
            qs = qs.filter(billing_account=request.scope.get("account", account))
        qs = qs.order_by(SORTS["payments"].get(request.GET.get("sort", ""), "-received_at"))
        return self.render(request, _page(request, qs, "payments"))


class ReceiptPdfView(PortalView):
    right = "money"

    def get(self, request, payment_id):
        payment = request.scope.get("payment", payment_id)
        return _pdf(documents.receipt_pdf(payment.transfer), f"{payment.number}.pdf")


class StatementPdfView(PortalView):
    right = "money"

    def get(self, request, account_id):
        account = request.scope.get("account", account_id)
        end = today()
        start = end.replace(day=1)
        return _pdf(documents.statement_pdf(account, start, end), f"{account.number}-{start:%Y-%m}.pdf")


# Services -----------------------------------------------------------------------------------------

class ServiceListView(PortalView):
    right = "services"
    template = "portal/services.html"

    def get(self, request):
        subs = list(request.scope.subscriptions().order_by("number"))
        for sub in subs:
            sub.reason = suspension_reason(sub) if sub.status == Subscription.Status.SUSPENDED else ""
            sub.next = next_charge(sub)
        return self.render(request, {"subscriptions": subs, "devices": network.devices(request.scope)})


class ServiceView(PortalView):
    right = "services"
    template = "portal/service.html"

    def get(self, request, subscription_id, pause_form=None):
        sub = request.scope.get("subscription", subscription_id)
        sub.reason = suspension_reason(sub) if sub.status == Subscription.Status.SUSPENDED else ""
        sub.next = next_charge(sub)
        try:
            period = parse_period(request.GET.get("period") or f"{today():%Y-%m}")
        except DomainError:
            period = f"{today():%Y-%m}"
        start = dt.date(int(period[:4]), int(period[5:7]), 1)
        end = (start + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        usage = services.usage_summary(request.scope, sub, start, end)
        rules = services.pause_rules(sub)
        paused = sub.suspensions.filter(cause=Suspension.Cause.CUSTOMER_REQUEST, ended_at__isnull=True).first()
        tariffs = services.allowed_tariffs(sub)
        return self.render(request, {
            "sub": sub, "usage": usage, "period": period, "rules": rules, "paused": paused,
            "pause_form": pause_form or forms.PauseForm(initial={"until": today() + dt.timedelta(days=7)}),
            "tariff_form": forms.TariffChoiceForm(tariffs=tariffs) if tariffs.exists() else None,
            "periods": services.recent_periods(), "sessions": network.sessions(request.scope, sub),
            "devices": network.devices(request.scope, sub)})


class TariffChangeView(PortalView):
    """GET ?tariff=: the price and proration before confirming; POST: the change."""

    right = "services"
    template = "portal/tariff_change.html"

    def get(self, request, subscription_id):
        sub = request.scope.get("subscription", subscription_id)
        tariffs = services.allowed_tariffs(sub)
        form = forms.TariffChoiceForm(request.GET or None, tariffs=tariffs)
        quote = services.tariff_quote(sub, form.cleaned_data["tariff"]) if form.is_bound and form.is_valid() else None
        return self.render(request, {"sub": sub, "form": form, "quote": quote})

    def post(self, request, subscription_id):
        sub = request.scope.get("subscription", subscription_id)
        tariffs = services.allowed_tariffs(sub)
        form = forms.TariffChoiceForm(request.POST, tariffs=tariffs)
        if form.is_valid():
            try:
                result = services.change_tariff(request.portal_user, subscription=sub, tariff=form.cleaned_data["tariff"])
            except DomainError as exc:
                form.add_error(None, _(exc.message))
            else:
                if isinstance(result, Subscription):
                    messages.success(request, _("Your tariff is now %(tariff)s.") % {"tariff": result.tariff.name})
                else:
                    messages.success(request, _("We have received your request and will change the tariff soon."))
                return redirect("portal:service", subscription_id=sub.pk)
        quote = services.tariff_quote(sub, form.cleaned_data["tariff"]) if form.is_valid() else None
        return self.render(request, {"sub": sub, "form": form, "quote": quote})


class PauseView(PortalView):
    right = "services"
    template = "portal/service.html"

    def post(self, request, subscription_id):
        sub = request.scope.get("subscription", subscription_id)
        form = forms.PauseForm(request.POST)
        if form.is_valid():
            try:
                services.pause(request.portal_user, subscription=sub, until=form.cleaned_data["until"])
            except DomainError as exc:
                form.add_error("until", _(exc.message))
            else:
                messages.success(request, _("The service is paused until %(day)s.") % {
                    "day": pdate(form.cleaned_data["until"])})
                return redirect("portal:service", subscription_id=sub.pk)
        return ServiceView.get(self, request, subscription_id, pause_form=form)


class ResumeView(PortalView):
    right = "services"

    def post(self, request, subscription_id):
        sub = request.scope.get("subscription", subscription_id)
        try:
            services.resume(request.portal_user, subscription=sub)
        except DomainError as exc:
            messages.error(request, _(exc.message))
        else:
            messages.success(request, _("The service is resumed."))
        return redirect("portal:service", subscription_id=sub.pk)


# Help ---------------------------------------------------------------------------------------------

class HelpView(PortalView):
    right = "help"
    template = "portal/help.html"

    def get(self, request, form=None):
        if not helpdesk.available():
            return self.render(request, {"unavailable": True})
        subs = list(request.scope.subscriptions().exclude(status=Subscription.Status.TERMINATED))
        return self.render(request, {**_page(request, request.scope.tickets(), "tickets"),
                                     "form": form or forms.HelpForm(subscriptions=subs)})

    def post(self, request):
        if not helpdesk.available():
            raise Http404("help")
        subs = list(request.scope.subscriptions().exclude(status=Subscription.Status.TERMINATED))
        form = forms.HelpForm(request.POST, subscriptions=subs)
        if form.is_valid():
            sub = request.scope.get("subscription", form.cleaned_data["subscription"]) \
                if form.cleaned_data["subscription"] else None
            try:
                ticket = helpdesk.open_request(request.portal_user, subject=form.cleaned_data["subject"],
                                               text=form.cleaned_data["text"], subscription=sub)
            except DomainError as exc:
                form.add_error(None, _(exc.message))
            else:
                messages.success(request, _("Request %(number)s is open. We will answer here.") % {
                    "number": helpdesk.number(ticket)})
                return redirect("portal:ticket", ticket_id=ticket.pk)
        return self.get(request, form=form)


class TicketView(PortalView):
    right = "help"
    template = "portal/ticket.html"

    def get(self, request, ticket_id, form=None):
        if not helpdesk.available():
            raise Http404("help")
        ticket = request.scope.get("ticket", ticket_id)
        return self.render(request, {"ticket": ticket, "comments": helpdesk.comments(ticket),
                                     "form": form or forms.CommentForm()})

    def post(self, request, ticket_id):
        if not helpdesk.available():
            raise Http404("help")
        ticket = request.scope.get("ticket", ticket_id)
        form = forms.CommentForm(request.POST)
        if form.is_valid():
            try:
                helpdesk.comment(request.portal_user, ticket, text=form.cleaned_data["text"])
            except DomainError as exc:
                form.add_error(None, _(exc.message))
            else:
                messages.success(request, _("Your reply is added."))
                return redirect("portal:ticket", ticket_id=ticket.pk)
        return self.get(request, ticket_id, form=form)


# Profile ------------------------------------------------------------------------------------------

class ProfileView(PortalView):
    template = "portal/profile.html"

    def context(self, request, **given):
        user = request.portal_user
        customer = Customer.objects.get(pk=user.customer_id)
        editable = services.current_settings().editable_fields if request.scope.can("manage") else []
        contacts = {k: services.contact_value(customer, k) for k in ("email", "phone")}
        initial = {"email": contacts["email"], "phone": contacts["phone"], "first_name": customer.first_name,
                   "last_name": customer.last_name, "preferred_channel": customer.preferred_channel}
        return {"customer": customer, "contacts": contacts,
                "profile_form": given.get("profile") or forms.ProfileForm(initial=initial, editable=editable),
                "prefs_form": given.get("prefs") or forms.PreferencesForm(initial={
                    "language": user.language, "notify_email": user.notify_email, "notify_sms": user.notify_sms}),
                "password_form": given.get("password") or forms.PasswordForm(),
                "totp_form": given.get("totp") or forms.TotpConfirmForm(),
                "totp_disable_form": given.get("totp_disable") or forms.TotpDisableForm(),
                "totp_secret": given.get("totp_secret"), "totp_uri": given.get("totp_uri"),
                "editable": editable}

    def get(self, request):
        return self.render(request, self.context(request))

    def post(self, request):
        user = request.portal_user
        what = request.POST.get("what")
        if what == "profile":
            editable = services.current_settings().editable_fields if request.scope.can("manage") else []
            form = forms.ProfileForm(request.POST, editable=editable)
            if form.is_valid():
                try:
                    services.update_profile(user, actor=user, **form.cleaned_data)
                except DomainError as exc:
                    form.add_error(None, _(exc.message))
                else:
                    messages.success(request, _("Your details are saved."))
                    return redirect("portal:profile")
            return self.render(request, self.context(request, profile=form))
        if what == "prefs":
            form = forms.PreferencesForm(request.POST)
            if form.is_valid():
                services.update_preferences(user, actor=user, **form.cleaned_data)
                request.portal_session[auth.LANG_KEY] = form.cleaned_data["language"]
                with translation.override(form.cleaned_data["language"]):
                    messages.success(request, _("Your preferences are saved."))
                return redirect("portal:profile")
            return self.render(request, self.context(request, prefs=form))
        if what == "password":
            form = forms.PasswordForm(request.POST)
            if form.is_valid():
                try:
                    user = services.set_password(user, actor=user, password=form.cleaned_data["password"],
                                                 current_password=form.cleaned_data["current_password"])
                except DomainError as exc:
                    field = "current_password" if exc.code == "wrong_password" else "password"
                    form.add_error(field, _(exc.message))
                else:
                    auth.login(request, user)  # this session stays; every other one ends
                    messages.success(request, _("Your password is changed."))
                    return redirect("portal:profile")
            return self.render(request, self.context(request, password=form))
        if what == "totp_start":
            secret = services.start_totp(user, actor=user)
            from . import totp

            return self.render(request, self.context(request, totp_secret=secret, totp_uri=totp.provisioning_uri(
                secret, account=user.login, issuer=services.current_settings().name)))
        if what == "totp_confirm":
            form = forms.TotpConfirmForm(request.POST)
            if form.is_valid():
                try:
                    services.confirm_totp(user, actor=user, code=form.cleaned_data["code"])
                except DomainError as exc:
                    form.add_error("code", _(exc.message))
                else:
                    messages.success(request, _("Two-factor sign-in is on."))
                    return redirect("portal:profile")
            return self.render(request, self.context(request, totp=form))
        if what == "totp_disable":
            form = forms.TotpDisableForm(request.POST)
            if form.is_valid():
                try:
                    services.disable_totp(user, actor=user, password=form.cleaned_data["password"])
                except DomainError as exc:
                    form.add_error("password", _(exc.message))
                else:
                    messages.success(request, _("Two-factor sign-in is off."))
                    return redirect("portal:profile")
            return self.render(request, self.context(request, totp_disable=form))
        raise Http404("unknown form")


# Staff: see what the customer sees ----------------------------------------------------------------

class ViewAsView(PermissionRequiredView):
    """Staff with portal.view_as_customer open the customer's portal read-only (audited)."""

    permission = "portal.view_as_customer"

    def post(self, request, customer_id):
        customer = Customer.objects.filter(pk=customer_id).first()
        if customer is None:
            raise Http404("customer")
        services.view_as(actor=request.user, customer=customer)
        auth.load(request)
        auth.start_view_as(request, customer)
        return auth.save(request, redirect("portal:home"))


class ExitViewAsView(PortalView):
    anonymous = True
    read_only_ok = True

    def post(self, request):
        customer = request.portal_user.customer_id if request.portal_user is not None else None
        request.portal_session.flush()
        if customer:
            return redirect("crm:customer_detail", pk=customer)
        return redirect("portal:login")

