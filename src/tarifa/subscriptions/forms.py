import json
from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from tarifa.catalog.models import Channel, ChannelPackage, Tariff
from tarifa.ledger.models import BillingAccount
from tarifa.web.forms import AmountField, RecordForm

from .models import IDENTIFIERS, Subscription, Suspension


class ParametersField(forms.CharField):
    """Tariff parameters as `name=value` lines."""

    widget = forms.Textarea(attrs={"rows": 3})

    def prepare_value(self, value):
        if isinstance(value, dict):
            return "\n".join(f"{k}={v}" for k, v in value.items())
        if isinstance(value, str) and value.startswith("{"):
            try:
                return "\n".join(f"{k}={v}" for k, v in json.loads(value).items())
            except ValueError:
                return value
        return value

    def to_python(self, value):
        value = super().to_python(value) or ""
        out = {}
        for line in value.replace(",", "\n").splitlines():
            if line.strip():
                name, sep, val = line.partition("=")
                if not sep:
                    raise forms.ValidationError(_("Write each parameter as name=value."))
                out[name.strip()] = val.strip()
        return out


def live_tariffs():
    return Tariff.objects.filter(archived_at__isnull=True).select_related("service").order_by("code")


class SubscriptionForm(RecordForm):
    parameters = ParametersField(required=False, label=_("Parameters"),
                                 help_text=_("Those the tariff leaves open, one name=value per line."))
    activate = forms.BooleanField(required=False, label=_("Activate now"))
    password = forms.CharField(required=False, max_length=128, label=_("Password"),
                               widget=forms.PasswordInput(render_value=False),
                               help_text=_("The login's password for network access (RADIUS); stored encrypted, "
                                           "never shown. Left empty when editing: unchanged."))

    class Meta:
        model = Subscription
        fields = ["billing_account", "tariff", *IDENTIFIERS, "parameters", "note"]

    field_order = ["billing_account", "tariff", *IDENTIFIERS, "password", "parameters", "note", "activate"]

    def clean_password(self):
        password = self.cleaned_data.get("password") or ""
        return None if self.editing and not password else password

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.editing:
            for name in ["billing_account", "tariff", "activate", *IDENTIFIERS]:
                del self.fields[name]
        else:
            self.fields["billing_account"].queryset = BillingAccount.objects.filter(status="active").order_by("number")
            self.fields["tariff"].queryset = live_tariffs()

    def _post_clean(self):
        # The services validate (uniqueness among live subscriptions, parameters).
        pass


class SuspendForm(forms.Form):
    cause = forms.ChoiceField(label=_("Cause"), choices=[(Suspension.Cause.OPERATOR, _("Operator")),
                                                         (Suspension.Cause.CUSTOMER_REQUEST, _("Customer request"))])
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False)
    planned_end = forms.DateField(label=_("Planned end (customer request)"), required=False,
                                  widget=forms.DateInput(attrs={"type": "date"}))


class ResumeForm(forms.Form):
    cause = forms.ChoiceField(label=_("Cause to clear"), choices=Suspension.Cause.choices)
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False)

    def set_object(self, sub, request):
        open_causes = list(sub.suspensions.filter(ended_at__isnull=True).values_list("cause", flat=True))
        self.fields["cause"].choices = [(c, label) for c, label in Suspension.Cause.choices if c in open_causes]


class ChangeTariffForm(forms.Form):
    tariff = forms.ModelChoiceField(queryset=Tariff.objects.none(), label=_("New tariff"))
    effective = forms.DateField(label=_("Effective from"), required=False, widget=forms.DateInput(attrs={"type": "date"}),
                                help_text=_("Empty: today."))
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tariff"].queryset = live_tariffs()

    def set_object(self, sub, request):
        self.fields["tariff"].queryset = live_tariffs().filter(service=sub.service).exclude(pk=sub.tariff_id)


class ReplaceSimForm(forms.Form):
    iccid = forms.CharField(label=_("New SIM ICCID"), max_length=22)
    imsi = forms.CharField(label=_("IMSI"), max_length=15, required=False)


class ChangeNumberForm(forms.Form):
    phone_number = forms.CharField(label=_("New phone number"), max_length=32)


class AddItemForm(forms.Form):
    channel = forms.ModelChoiceField(queryset=Channel.objects.filter(archived_at__isnull=True), required=False,
                                     label=_("Channel"))
    package = forms.ModelChoiceField(queryset=ChannelPackage.objects.filter(archived_at__isnull=True), required=False,
                                     label=_("Package"))


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False)


class TerminateForm(forms.Form):
    """Termination is final: the audit trail keeps why."""

    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class PromisedPaymentForm(forms.Form):
    billing_account = forms.ModelChoiceField(queryset=BillingAccount.objects.filter(status="active"),
                                             label=_("Billing account"))


class ChargeForm(forms.Form):
    as_of = forms.DateField(label=_("Charge up to (as of)"), widget=forms.DateInput(attrs={"type": "date"}))


class DeviceAgreementForm(forms.Form):
    """Sell, rent or sell in installments a device from stock (or one already at the customer's premises).

    The amount (and the months) may be left empty: the item's catalog price applies. Opened with
    `?serial=` (which the serial field asks for itself when it changes), the form shows that
    device's catalog price filled in."""

    mode = "sale"
    serial = forms.CharField(label=_("Serial"), max_length=64,
                             help_text=_("A device in a warehouse or a technician's stock, or one already installed "
                                         "at this customer's premises."))
    amount = AmountField(label=_("Amount"), places=2, min_value=0, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["amount"].widget.attrs["placeholder"] = _("catalog price")

    def set_object(self, sub, request):
        """Prefill from the device's catalog price (GET ?serial=…); the serial field asks again on change."""
        self.fields["serial"].widget.attrs.update({
            "hx-get": request.path, "hx-trigger": "change", "hx-target": "closest form", "hx-select": "form.stacked",
            "hx-swap": "outerHTML"})
        if request.method != "GET":
            return
        serial = (request.GET.get("serial") or "").strip()[:64]
        if not serial:
            return
        from tarifa.inventory.models import Device

        from .devices import catalog_terms

        self.initial["serial"] = serial
        device = Device.objects.select_related("item").filter(serial=serial).first()
        if device is None:
            return
        amount, months, price = catalog_terms(device.item, self.mode, sub.tariff.currency)
        if amount is None:
            self.fields["amount"].help_text = _("%(item)s has no catalog price for this: give the amount.") % {
                "item": device.item}
            return
        self.initial["amount"] = amount.quantize(Decimal("0.01"))  # device prices are in cents
        if "months" in self.fields:
            self.initial["months"] = months
        self.fields["amount"].help_text = _("From the catalog price %(code)s; a different amount overrides it.") % {
            "code": price.code}


class SellDeviceForm(DeviceAgreementForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["amount"].label = _("Price")
        self.fields["amount"].help_text = _("Empty: the item's catalog sale price.")


class RentDeviceForm(DeviceAgreementForm):
    mode = "rent"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["amount"].label = _("Monthly rent")
        self.fields["amount"].help_text = _("Charged per day installed, prorated by calendar month. Empty: the "
                                            "item's catalog monthly rent.")


class InstallmentsForm(DeviceAgreementForm):
    mode = "installments"
    months = forms.IntegerField(label=_("Months"), min_value=1, max_value=120, required=False,
                                help_text=_("Empty: the catalog price's months."))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["amount"].label = _("Total price")
        self.fields["amount"].help_text = _("Paid in equal monthly installments; the first is charged now. Empty: "
                                            "the item's catalog installment total.")
