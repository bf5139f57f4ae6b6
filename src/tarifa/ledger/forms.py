"""Forms of the ledger screens. Amounts are parsed by the one parser (tarifa.web.forms.AmountField)."""

import re

from django import forms
from django.utils.translation import gettext_lazy as _

from tarifa.crm.forms import CustomerRefField
from tarifa.kernel.ids import uuid7
from tarifa.kernel.money import CURRENCY_CHOICES
from tarifa.web import forms as web_forms

from .models import BillingAccount

KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def default_currency():
    from .services import default_currency

    return default_currency()


AmountField = web_forms.AmountField  # the one amount parser (re-exported: payments' forms import it here)


class IdempotentForm(forms.Form):
    """Carries a key made when the form is shown: submitting twice moves money once."""

    idempotency_key = forms.CharField(widget=forms.HiddenInput, initial=lambda: uuid7().hex)

    def clean_idempotency_key(self):
        key = self.cleaned_data["idempotency_key"]
        if not KEY.match(key):
            raise forms.ValidationError(_("Reload the form and submit again."))
        return f"ui:{key}"


class BillingAccountForm(forms.Form):
    """Open an account (customer, currency, mode, limit); editing changes the credit limit only."""

    customer = CustomerRefField(label=_("Customer"))
    currency = forms.ChoiceField(label=_("Currency"), choices=CURRENCY_CHOICES, initial=default_currency)
    payment_mode = forms.ChoiceField(label=_("Payment mode"), choices=BillingAccount.PaymentMode.choices,
                                     initial=BillingAccount.PaymentMode.PREPAID)
    credit_limit = AmountField(label=_("Credit limit"), initial="0",
                               help_text=_("How far below zero the account may go (prepaid: always enforced)."))

    def __init__(self, data=None, files=None, instance=None, **kwargs):
        super().__init__(data, files, **kwargs)
        self.instance = instance
        if instance is not None:
            for name in ("customer", "currency", "payment_mode"):
                del self.fields[name]
            self.initial.setdefault("credit_limit", f"{instance.credit_limit.normalize():f}")


class SwitchModeForm(forms.Form):
    payment_mode = forms.ChoiceField(label=_("New payment mode"), choices=BillingAccount.PaymentMode.choices)
    reason = forms.CharField(label=_("Reason"), required=False, max_length=500,
                             widget=forms.Textarea(attrs={"rows": 2}))

    def set_object(self, account, request):
        other = [c for c in BillingAccount.PaymentMode.choices if c[0] != account.payment_mode]
        self.fields["payment_mode"].choices = other
        self.fields["payment_mode"].help_text = _("Effective from today; the history keeps the earlier mode.")


class AdjustForm(IdempotentForm):
    amount = AmountField(label=_("Amount"), help_text=_("Positive credits the customer, negative debits them."))
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class TransferFundsForm(IdempotentForm):
    target = forms.ModelChoiceField(label=_("To account"), queryset=BillingAccount.objects.none())
    amount = AmountField(label=_("Amount"))
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}))

    def set_object(self, account, request):
        self.fields["target"].queryset = BillingAccount.objects.filter(
            customer_id=account.customer_id, currency=account.currency, status=BillingAccount.Status.ACTIVE,
        ).exclude(pk=account.pk).order_by("number")
        self.fields["target"].help_text = _("Another account of the same customer in %(currency)s.") \
            % {"currency": account.currency}


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), required=False, max_length=500,
                             widget=forms.Textarea(attrs={"rows": 2}))


class ReverseForm(IdempotentForm):
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class PostHoldForm(IdempotentForm):
    amount = AmountField(label=_("Amount"), required=False, help_text=_("Empty: all of the hold; less releases the "
                                                                        "rest."))
    memo = forms.CharField(label=_("Memo"), required=False, max_length=500)

    def clean_amount(self):
        return self.cleaned_data["amount"] or None


class SystemAccountForm(forms.Form):
    code = forms.CharField(label=_("Code"), max_length=100,
                           help_text=_("e.g. cash:DESK1, clearing:CARDS, revenue:internet, taxes_payable:VAT, bank."))
    currency = forms.ChoiceField(label=_("Currency"), choices=CURRENCY_CHOICES, initial=default_currency)
    name = forms.CharField(label=_("Name"), required=False, max_length=200)

    def __init__(self, data=None, files=None, instance=None, **kwargs):
        super().__init__(data, files, **kwargs)
        self.instance = instance


def registration_form(base):
    """crm's customer form plus the first billing account's terms (new customers only)."""

    class CustomerRegistrationForm(base):
        currency = forms.ChoiceField(label=_("Account currency"), choices=[("", "—"), *CURRENCY_CHOICES],
                                     required=False, initial=default_currency)
        payment_mode = forms.ChoiceField(label=_("Payment mode"), required=False,
                                         choices=[("", "—"), *BillingAccount.PaymentMode.choices],
                                         initial=BillingAccount.PaymentMode.PREPAID)
        credit_limit = AmountField(label=_("Credit limit"), required=False, initial="0")

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if self.editing:
                self.drop_account_terms()

        def drop_account_terms(self):
            for name in ("currency", "payment_mode", "credit_limit"):
                self.fields.pop(name, None)

        def set_request(self, request):
            if hasattr(super(), "set_request"):
                super().set_request(request)
            from .services import may_open_accounts

            if not may_open_accounts(request.user):  # no account is opened for them: no terms to ask
                self.drop_account_terms()

    CustomerRegistrationForm.__name__ = CustomerRegistrationForm.__qualname__ = f"Registration{base.__name__}"
    return CustomerRegistrationForm

