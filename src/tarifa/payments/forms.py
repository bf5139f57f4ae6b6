"""Forms of the payments screens. Amounts stay strings: the services parse them (never a float)."""

import datetime as dt

from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.money import CURRENCY_CHOICES, default_currency
from tarifa.ledger.forms import AmountField, IdempotentForm

from .models import CashDesk, CashHandover, Channel, PaymentGateway, Refund, StoredPaymentMethod

DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class AccountRefField(forms.CharField):
    """A billing account by number (HQ-A0000001); the service resolves it (account_not_found)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("help_text", _("Billing account number, e.g. HQ-A0000001."))
        super().__init__(**kwargs)


def desks():
    return CashDesk.objects.filter(archived_at__isnull=True).order_by("code")


def staff():
    return get_user_model().objects.filter(is_active=True).order_by("username")


class ManualPaymentForm(IdempotentForm):
    """A payment keyed in by the back office (a bank transfer seen on the account, say)."""

    account = AccountRefField(label=_("Billing account"))
    amount = AmountField(label=_("Amount"))
    channel = forms.ChoiceField(label=_("Channel"), choices=[c for c in Channel.choices if c[0] not in ("voucher",)],
                                initial=Channel.BANK_TRANSFER)
    external_reference = forms.CharField(label=_("External reference"), max_length=200, required=False)
    payer = forms.CharField(label=_("Payer"), max_length=200, required=False)
    memo = forms.CharField(label=_("Memo"), required=False, widget=forms.Textarea(attrs={"rows": 2}))


class CashPaymentForm(IdempotentForm):
    account = forms.CharField(widget=forms.HiddenInput)
    amount = AmountField(label=_("Amount received"))
    payer = forms.CharField(label=_("Payer"), max_length=200, required=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class RefundForm(IdempotentForm):
    amount = AmountField(label=_("Amount"))
    destination = forms.ChoiceField(label=_("Pay back to"), choices=Refund.Destination.choices,
                                    initial=Refund.Destination.ORIGINAL,
                                    help_text=_("Cash is paid at your desk (open a shift first)."))
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}))

    def set_object(self, payment, request):
        self.fields["amount"].initial = f"{payment.refundable:.2f}"
        self.fields["amount"].help_text = _("At most %(left)s %(currency)s.") % {
            "left": f"{payment.refundable:.2f}", "currency": payment.currency}


class CashDeskForm(forms.Form):
    code = forms.CharField(label=_("Code"), max_length=40)
    name = forms.CharField(label=_("Name"), max_length=200)
    currency = forms.ChoiceField(label=_("Currency"), choices=CURRENCY_CHOICES,
                                 initial=default_currency)
    location = forms.CharField(label=_("Location"), max_length=200, required=False)
    cashiers = forms.ModelMultipleChoiceField(label=_("Cashiers"), queryset=staff(), required=False,
                                              widget=forms.CheckboxSelectMultiple)

    def __init__(self, data=None, files=None, instance=None, **kwargs):
        super().__init__(data, files, **kwargs)
        self.fields["cashiers"].queryset = staff()
        self.instance = instance
        if instance is not None:
            del self.fields["code"], self.fields["currency"]
            self.initial.update({"name": instance.name, "location": instance.location,
                                 "cashiers": list(instance.cashiers.all())})


class OpenShiftForm(forms.Form):
    desk = forms.ModelChoiceField(label=_("Cash desk"), queryset=CashDesk.objects.none(), to_field_name="code")
    opening_float = AmountField(label=_("Opening float"), initial="0.00",
                                help_text=_("The change money counted in the drawer."))

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        qs = desks()
        if user is not None and not user.has_perm("payments.view_all_desks"):
            qs = qs.filter(cashiers=user)
        self.fields["desk"].queryset = qs


class CloseShiftForm(forms.Form):
    counted_cash = AmountField(label=_("Counted cash"), help_text=_("All the cash in the drawer, float included."))
    note = forms.CharField(label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2}))


class HandoverForm(IdempotentForm):
    from_desk = forms.ModelChoiceField(label=_("From desk"), queryset=desks(), to_field_name="code")
    destination = forms.ChoiceField(label=_("To"), choices=CashHandover.Destination.choices)
    to_desk = forms.ModelChoiceField(label=_("To desk"), queryset=desks(), to_field_name="code", required=False)
    amount = AmountField(label=_("Amount"))
    received_by = forms.ModelChoiceField(label=_("Received by"), queryset=staff(), required=False,
                                         to_field_name="username")
    bank_reference = forms.CharField(label=_("Bank deposit reference"), max_length=100, required=False)
    note = forms.CharField(label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["from_desk"].queryset = desks()
        self.fields["to_desk"].queryset = desks()
        self.fields["received_by"].queryset = staff()


class GatewayForm(forms.Form):
    code = forms.CharField(label=_("Code"), max_length=40)
    name = forms.CharField(label=_("Name"), max_length=200)
    kind = forms.ChoiceField(label=_("Kind"), choices=PaymentGateway.Kind.choices)
    currency = forms.ChoiceField(label=_("Currency"), choices=CURRENCY_CHOICES,
                                 initial=default_currency)
    adapter = forms.ChoiceField(label=_("Card adapter"), required=False,
                                choices=[("", "—"), ("reference", "reference"), ("simulated", "simulated (demo)"),
                                         ("test", "TEST card provider (built in, no real money)")])
    username = forms.CharField(label=_("Username (terminals)"), max_length=100, required=False)
    allowed_ips = forms.CharField(label=_("Allowed IP addresses"), required=False,
                                  help_text=_("Comma-separated addresses or CIDR networks; empty: any."))
    min_amount = AmountField(label=_("Minimum amount"), initial="1.00")
    max_amount = AmountField(label=_("Maximum amount"), initial="10000.00")
    api_url = forms.URLField(label=_("Provider URL (card)"), required=False, assume_scheme="https")
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)

    FIXED = ("code", "kind", "currency")

    def __init__(self, data=None, files=None, instance=None, **kwargs):
        super().__init__(data, files, **kwargs)
        self.instance = instance
        if instance is not None:
            for name in self.FIXED:
                del self.fields[name]
            self.initial.update({"name": instance.name, "adapter": instance.adapter, "username": instance.username,
                                 "allowed_ips": ", ".join(instance.allowed_ips), "api_url": instance.api_url,
                                 "min_amount": f"{instance.min_amount:.2f}", "max_amount": f"{instance.max_amount:.2f}",
                                 "is_active": instance.is_active})

    def clean_allowed_ips(self):
        return [part.strip() for part in self.cleaned_data["allowed_ips"].split(",") if part.strip()]


class AssignLineForm(forms.Form):
    account = AccountRefField(label=_("Billing account"))


class StatementUploadForm(forms.Form):
    file = forms.FileField(label=_("Statement (CSV)"),
                           help_text=_("Columns: date, amount, currency, reference, payer, bank_txn_id."))


class GenerateVouchersForm(forms.Form):
    count = forms.IntegerField(label=_("Cards"), min_value=1, max_value=10_000, initial=100)
    nominal = AmountField(label=_("Nominal"))
    currency = forms.ChoiceField(label=_("Currency"), choices=CURRENCY_CHOICES,
                                 initial=default_currency)
    expires_on = forms.DateField(label=_("Valid until"), widget=DATE,
                                 initial=lambda: dt.date.today() + dt.timedelta(days=365))
    note = forms.CharField(label=_("Note"), required=False, max_length=1000)


class SellBatchForm(forms.Form):
    paid_via = forms.ChoiceField(label=_("Paid via"), choices=[("cash", _("Cash at a desk")), ("bank", _("Bank")),
                                                               ("dealer", _("Dealer (owes us)"))])
    sold_to = forms.CharField(label=_("Sold to"), max_length=200, required=False)
    desk = forms.ModelChoiceField(label=_("Desk (cash)"), queryset=desks(), to_field_name="code", required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["desk"].queryset = desks()


class RedeemVoucherForm(forms.Form):
    account = AccountRefField(label=_("Billing account"))
    code = forms.CharField(label=_("Voucher code"), max_length=64, widget=forms.TextInput(attrs={"autocomplete": "off"}))


class AgreementForm(forms.Form):
    billing_account = AccountRefField(label=_("Billing account"))
    payment_method = forms.ModelChoiceField(label=_("Stored card"), queryset=StoredPaymentMethod.objects.none())
    threshold = AmountField(label=_("Top up when the balance falls below"))
    amount = AmountField(label=_("Top-up amount"))
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)

    def __init__(self, data=None, files=None, instance=None, **kwargs):
        super().__init__(data, files, **kwargs)
        self.fields["payment_method"].queryset = StoredPaymentMethod.objects.filter(archived_at__isnull=True)
        self.instance = instance
        if instance is None:
            del self.fields["is_active"]
        else:
            del self.fields["billing_account"], self.fields["payment_method"]
            self.initial.update({"threshold": f"{instance.threshold:.2f}", "amount": f"{instance.amount:.2f}",
                                 "is_active": instance.is_active})


class CardCheckoutForm(IdempotentForm):
    """Start an online card payment for an account: the customer is sent to the provider's page."""

    gateway = forms.ModelChoiceField(label=_("Card gateway"), to_field_name="code", queryset=PaymentGateway.objects.none())
    amount = AmountField(label=_("Amount"))
    save_card = forms.BooleanField(label=_("Store the card for automatic payments"), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["gateway"].queryset = PaymentGateway.objects.filter(
            kind=PaymentGateway.Kind.CARD, is_active=True, archived_at__isnull=True).order_by("code")
