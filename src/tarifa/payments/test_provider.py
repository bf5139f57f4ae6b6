"""The TEST card provider's hosted payment page (gateways/testcards.py says what it is).

Not a staff page: whoever holds a checkout link signed with the gateway's secret may open it,
as with a real provider's page. GET shows the TEST payment form; POST takes a test card
number and acts as the provider's back end: it sends the signed webhook over HTTP to the
checkout's notify URL (Tarifa's own webhook endpoint), then shows the payer the outcome and
the way back to the merchant.
"""

from django import forms
from django.http import Http404
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views import View

from tarifa.kernel.clock import now

from .errors import InvalidSignature, StaleWebhook
from .gateways import testcards
from .gateways.reference import canonical_query, verify
from .models import PaymentGateway

TEMPLATE = "payments/test_provider.html"
PARAMS = ("merchant", "order", "amount", "currency", "notify_url", "return_url", "save_card", "ts")


class CardForm(forms.Form):
    number = forms.CharField(label=_("Card number"), max_length=40,
                             widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "numeric",
                                                           "placeholder": "4242 4242 4242 4242"}))
    expiry = forms.CharField(label=_("Expiry (MM/YY)"), max_length=7,
                             widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "12/30"}))
    cvc = forms.CharField(label=_("CVC"), max_length=4,
                          widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "numeric",
                                                        "placeholder": "123", "size": 4}))
    holder = forms.CharField(label=_("Name on the card"), max_length=100, required=False)

    def clean_number(self):
        number = testcards.digits(self.cleaned_data["number"])
        if not testcards.luhn_ok(number):
            raise forms.ValidationError(_("Not a valid card number (12–19 digits passing the Luhn check)."))
        return number

    def clean_expiry(self):
        raw = self.cleaned_data["expiry"].replace(" ", "")
        month, sep, year = raw.partition("/")
        if not (sep and month.isdigit() and year.isdigit() and 1 <= int(month) <= 12 and len(year) in (2, 4)):
            raise forms.ValidationError(_("MM/YY, e.g. 12/30."))
        year = int(year) + (2000 if len(year) == 2 else 0)
        today = now().date()
        if (year, int(month)) < (today.year, today.month):
            raise forms.ValidationError(_("The card has expired."))
        return f"{int(month):02d}/{year % 100:02d}"

    def clean_cvc(self):
        cvc = self.cleaned_data["cvc"].strip()
        if not (cvc.isdigit() and len(cvc) in (3, 4)):
            raise forms.ValidationError(_("3 or 4 digits."))
        return cvc


class HostedCheckoutView(View):
    """/payments/test-card-provider/checkout/?<the signed checkout link's query>"""

    def _link(self, request):
        """(gateway, params, problem): the link's gateway and parameters, or why it cannot be paid."""
        if not testcards.enabled():
            raise Http404("The test card provider is switched off.")
        params = {name: request.GET.get(name, "") for name in PARAMS}
        gateway = PaymentGateway.objects.filter(code=params["merchant"], kind=PaymentGateway.Kind.CARD,
                                                adapter=testcards.ADAPTER, archived_at__isnull=True).first()
        if gateway is None:
            raise Http404("No such merchant at the test card provider.")
        try:
            verify(gateway.hmac_secret, params["ts"], canonical_query(params), request.GET.get("sig", ""),
                   tolerance=testcards.CHECKOUT_TTL_SECONDS)
        except InvalidSignature:
            return gateway, params, "invalid"
        except StaleWebhook:
            return gateway, params, "expired"
        if not gateway.is_active:
            return gateway, params, "inactive"
        return gateway, params, None

    def _page(self, request, gateway, params, *, status=200, **context):
        response = render(request, TEMPLATE, {"gateway": gateway, "params": params, "cards": testcards.TEST_CARDS,
                                              **context}, status=status)
        response["Cache-Control"] = "no-store"
        response["Referrer-Policy"] = "same-origin"  # (no-referrer would send Origin: null, refused by CSRF)
        return response

    def get(self, request):
        gateway, params, problem = self._link(request)
        if problem:
            return self._page(request, gateway, params, problem=problem, status=410 if problem == "expired" else 403)
        return self._page(request, gateway, params, form=CardForm())

    def post(self, request):
        gateway, params, problem = self._link(request)
        if problem:
            return self._page(request, gateway, params, problem=problem, status=410 if problem == "expired" else 403)
        form = CardForm(request.POST)
        if not form.is_valid():
            return self._page(request, gateway, params, form=form, status=400)
        number = form.cleaned_data["number"]
        outcome = testcards.outcome_for(number)
        result = {"outcome": outcome, "label": testcards.card_label(number)}
        if outcome.kind == "no_answer":
            return self._page(request, gateway, params, result=result)
        event = testcards.event_for(params, number, outcome)
        try:
            status, answer = testcards.send_webhook(secret=gateway.hmac_secret, notify_url=params["notify_url"],
                                                    event=event)
        except ConnectionError as exc:
            result["unreachable"] = str(exc)
            return self._page(request, gateway, params, result=result, status=502)
        result.update(webhook_status=status, answer=answer, error=(answer.get("error") or {}) if status >= 300 else {})
        return self._page(request, gateway, params, result=result)
