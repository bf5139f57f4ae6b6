from django import forms
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import today

from .models import (Channel, ChannelPackage, ChannelPrice, OneTimeFee, PriceVersion, Service, ServiceType, Tariff,
                     TariffParameter, Tax)
from .services import IDENTIFIER_KINDS, TARIFF_FIELDS


class CommaListField(forms.CharField):
    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, (list, tuple)) else value

    def to_python(self, value):
        value = super().to_python(value)
        return [v.strip() for v in (value or "").split(",") if v.strip()]


class ServiceTypeForm(forms.ModelForm):
    identifier_kinds = forms.MultipleChoiceField(choices=[(k, k) for k in IDENTIFIER_KINDS], required=False,
                                                 widget=forms.CheckboxSelectMultiple, label=_("Identifiers used"))

    class Meta:
        model = ServiceType
        fields = ["code", "name", "category", "identifier_kinds", "description"]


class ServiceForm(forms.ModelForm):
    class Meta:
        model = Service
        fields = ["code", "name", "service_type", "description"]


class TaxForm(forms.ModelForm):
    class Meta:
        model = Tax
        fields = ["code", "name", "rate", "inclusive", "service_types", "valid_from", "valid_to"]
        widgets = {"service_types": forms.CheckboxSelectMultiple,
                   "valid_from": forms.DateInput(attrs={"type": "date"}),
                   "valid_to": forms.DateInput(attrs={"type": "date"})}


class ChannelForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = ["code", "name", "number"]


class ChannelPackageForm(forms.ModelForm):
    class Meta:
        model = ChannelPackage
        fields = ["code", "name", "channels"]
        widgets = {"channels": forms.CheckboxSelectMultiple}


class TariffForm(forms.ModelForm):
    recurring_fee = forms.DecimalField(label=_("Recurring fee"), max_digits=20, decimal_places=6, min_value=0,
                                       help_text=_("Price of the first price version."))
    valid_from = forms.DateField(label=_("Prices valid from"), widget=forms.DateInput(attrs={"type": "date"}))

    class Meta:
        model = Tariff
        fields = list(TARIFF_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            del self.fields["recurring_fee"]
            del self.fields["valid_from"]
        else:
            self.fields["valid_from"].initial = today()


class TariffParameterForm(forms.ModelForm):
    choices = CommaListField(required=False, label=_("Choices"), help_text=_("Comma-separated, for 'one of choices'."))

    class Meta:
        model = TariffParameter
        fields = ["tariff", "code", "label", "kind", "value", "choices", "required", "unit"]


class PriceVersionForm(forms.ModelForm):
    class Meta:
        model = PriceVersion
        fields = ["tariff", "valid_from", "recurring_fee", "note"]
        widgets = {"valid_from": forms.DateInput(attrs={"type": "date"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            del self.fields["tariff"]


class NewPriceForm(forms.Form):
    """The tariff page's "New price" action."""

    valid_from = forms.DateField(label=_("Valid from"), widget=forms.DateInput(attrs={"type": "date"}))
    recurring_fee = forms.DecimalField(label=_("Recurring fee"), max_digits=20, decimal_places=6, min_value=0)
    note = forms.CharField(label=_("Note"), max_length=200, required=False)


class OneTimeFeeForm(forms.ModelForm):
    class Meta:
        model = OneTimeFee
        fields = ["price_version", "kind", "amount"]


class ChannelPriceForm(forms.ModelForm):
    class Meta:
        model = ChannelPrice
        fields = ["price_version", "channel", "package", "amount"]


class CatalogImportForm(forms.Form):
    file = forms.FileField(label=_("Catalog file (JSON)"))
