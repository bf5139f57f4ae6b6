from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import today
from tarifa.kernel.errors import ValidationFailed
from tarifa.web.forms import AmountField, RecordForm

from .models import (Channel, ChannelPackage, ChannelPrice, DevicePrice, OneTimeFee, PriceVersion, Service,
                     ServiceType, Tariff, TariffParameter, Tax)
from .services import IDENTIFIER_KINDS, TARIFF_FIELDS, check_device_price


class CommaListField(forms.CharField):
    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, (list, tuple)) else value

    def to_python(self, value):
        value = super().to_python(value)
        return [v.strip() for v in (value or "").split(",") if v.strip()]


class ServiceTypeForm(RecordForm):
    identifier_kinds = forms.MultipleChoiceField(choices=[(k, k) for k in IDENTIFIER_KINDS], required=False,
                                                 widget=forms.CheckboxSelectMultiple, label=_("Identifiers used"))

    class Meta:
        model = ServiceType
        fields = ["code", "name", "category", "identifier_kinds", "description"]


class ServiceForm(RecordForm):
    class Meta:
        model = Service
        fields = ["code", "name", "service_type", "description"]


class TaxForm(RecordForm):
    class Meta:
        model = Tax
        fields = ["code", "name", "rate", "inclusive", "service_types", "valid_from", "valid_to"]
        widgets = {"service_types": forms.CheckboxSelectMultiple,
                   "valid_from": forms.DateInput(attrs={"type": "date"}),
                   "valid_to": forms.DateInput(attrs={"type": "date"})}


class ChannelForm(RecordForm):
    class Meta:
        model = Channel
        fields = ["code", "name", "number"]


class ChannelPackageForm(RecordForm):
    class Meta:
        model = ChannelPackage
        fields = ["code", "name", "channels"]
        widgets = {"channels": forms.CheckboxSelectMultiple}


class TariffForm(RecordForm):
    """A new tariff comes with its first prices (a price version); later prices are new
    price versions ("New price" on the tariff page), so the edit form has no price fields."""

    recurring_fee = AmountField(label=_("Recurring fee"), max_digits=20, decimal_places=6, min_value=0,
                                       help_text=_("Price of the first price version, per period."))
    activation_fee = AmountField(label=_("Activation fee"), max_digits=20, decimal_places=6, min_value=0,
                                        required=False, help_text=_("Charged once, when a subscription starts. "
                                                                    "Empty: none."))
    valid_from = forms.DateField(label=_("Prices valid from"), widget=forms.DateInput(attrs={"type": "date"}))

    class Meta:
        model = Tariff
        fields = list(TARIFF_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.editing:
            for name in ("recurring_fee", "activation_fee", "valid_from"):
                del self.fields[name]
        else:
            self.fields["valid_from"].initial = today

    def clean(self):
        cleaned = super().clean()
        if not self.editing:
            fee = cleaned.pop("activation_fee", None)
            if fee is not None:
                cleaned["one_time_fees"] = {OneTimeFee.Kind.ACTIVATION: fee}
        return cleaned


class TariffParameterForm(RecordForm):
    choices = CommaListField(required=False, label=_("Choices"), help_text=_("Comma-separated, for 'one of choices'."))

    class Meta:
        model = TariffParameter
        fields = ["tariff", "code", "label", "kind", "value", "choices", "required", "unit"]


class PriceVersionForm(RecordForm):
    class Meta:
        model = PriceVersion
        fields = ["tariff", "valid_from", "recurring_fee", "note"]
        widgets = {"valid_from": forms.DateInput(attrs={"type": "date"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.editing:
            del self.fields["tariff"]


class NewPriceForm(forms.Form):
    """The tariff page's "New price" action."""

    valid_from = forms.DateField(label=_("Valid from"), widget=forms.DateInput(attrs={"type": "date"}))
    recurring_fee = AmountField(label=_("Recurring fee"), max_digits=20, decimal_places=6, min_value=0)
    note = forms.CharField(label=_("Note"), max_length=200, required=False)


class OneTimeFeeForm(RecordForm):
    class Meta:
        model = OneTimeFee
        fields = ["price_version", "kind", "amount"]


class ChannelPriceForm(RecordForm):
    class Meta:
        model = ChannelPrice
        fields = ["price_version", "channel", "package", "amount"]


class DevicePriceForm(RecordForm):
    """A row of the device price list; its code is fixed once made (warehouse items refer to it)."""

    class Meta:
        model = DevicePrice
        fields = ["code", "name", "currency", "sale_price", "monthly_rent", "installment_total",
                  "installment_months", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("sale_price", "monthly_rent", "installment_total"):
            self.fields[name].required = False
        if self.editing:
            del self.fields["code"]

    def clean(self):
        cleaned = super().clean()
        for name in ("sale_price", "monthly_rent", "installment_total"):
            if name in cleaned and cleaned[name] is None:
                cleaned[name] = Decimal(0)
        if not self.errors:  # the service's rule, as field errors before the model's constraints
            merged = {name: getattr(self.instance, name) for name in
                      ("sale_price", "monthly_rent", "installment_total", "installment_months", "currency")}
            merged.update({k: v for k, v in cleaned.items() if k in merged})
            try:
                check_device_price(merged)
            except ValidationFailed as exc:
                for field, errors in (exc.fields or {"__all__": [exc.message]}).items():
                    self.add_error(field if field in self.fields else None, errors)
        return cleaned


class CatalogImportForm(forms.Form):
    file = forms.FileField(label=_("Catalog file (JSON)"))
