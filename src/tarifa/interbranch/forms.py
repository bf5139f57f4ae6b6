"""Forms of the foreign-payment screens. Amounts stay strings/Decimals: the services parse them."""

from django import forms
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.money import CURRENCY_CHOICES, default_currency
from tarifa.ledger.forms import AmountField, IdempotentForm
from tarifa.payments.models import Channel


class ForeignPaymentForm(IdempotentForm):
    """A payment for another branch's subscriber, taken here."""

    account = forms.CharField(label=_("Account at the owner branch"), max_length=64,
                              help_text=_("The subscriber's billing account number, e.g. B1-A0000001: its prefix is "
                                          "the owner branch."))
    branch = forms.CharField(label=_("Owner branch"), max_length=16, required=False,
                             help_text=_("Only when the number does not start with the branch code."))
    amount = AmountField(label=_("Amount"))
    currency = forms.ChoiceField(label=_("Currency"), choices=CURRENCY_CHOICES, initial=default_currency)
    channel = forms.ChoiceField(label=_("Channel"), choices=[c for c in Channel.choices if c[0] != Channel.VOUCHER],
                                initial=Channel.CASH,
                                help_text=_("Cash goes to your open shift's desk."))
    payer = forms.CharField(label=_("Payer"), max_length=200, required=False)
    memo = forms.CharField(label=_("Memo"), required=False, widget=forms.Textarea(attrs={"rows": 2}))


class RefundForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False,
                             widget=forms.Textarea(attrs={"rows": 2}),
                             help_text=_("Default: the owner branch's refusal."))
