"""Forms of the warehouse screens."""

from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from tarifa.crm.forms import CustomerRefField
from tarifa.kernel.money import CURRENCY_CHOICES
from tarifa.web import forms as web_forms

from . import references
from .models import Device, Item, Location, Move, Reservation


def _live_locations(*, real_only=False):
    qs = Location.objects.filter(archived_at__isnull=True).order_by("kind", "name")
    return qs.exclude(kind__in=Location.VIRTUAL) if real_only else qs


def _default_currency():
    from django.conf import settings

    return getattr(settings, "TARIFA_DEFAULT_CURRENCY", "EUR")


class ItemForm(web_forms.RecordForm):
    currency = forms.ChoiceField(label=_("Currency"), choices=CURRENCY_CHOICES, initial=_default_currency)

    class Meta:
        model = Item
        fields = ["code", "name", "vendor", "kind", "tracking", "unit", "cost", "currency", "catalog_ref"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.editing:
            for name in ("code", "kind", "tracking", "unit", "currency"):
                del self.fields[name]
        if references.registered():
            # A pick from the catalog's device price list (codes are checked again by the service).
            options = [("", _("— no catalog price —")), *references.choices()]
            current = self.instance.catalog_ref if self.editing else ""
            if current and current not in dict(options):
                label = _("%(code)s (archived)") if references.describe(current) else \
                    _("%(code)s (unknown: pick a device price or none)")
                options.append((current, label % {"code": current}))
            self.fields["catalog_ref"] = forms.ChoiceField(
                label=_("Catalog price"), choices=options, required=False,
                help_text=_("The device price list's row (Catalog → Device prices): sale price, monthly rent and "
                            "installments used when a device of this item is sold or rented without an amount."))


class LocationForm(web_forms.RecordForm):
    technician = forms.ModelChoiceField(label=_("Technician"), required=False,
                                        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
                                        help_text=_("For a technician's stock (a van or a person)."))
    customer = CustomerRefField(label=_("Customer"), required=False, help_text=_("For customer premises."))

    class Meta:
        model = Location
        fields = ["code", "name", "kind", "technician", "customer", "note"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].initial = Location.Kind.WAREHOUSE
        if self.editing:
            for name in ("code", "kind", "technician", "customer"):
                del self.fields[name]


class MoveDeviceForm(forms.Form):
    """Move a device from where it is to another location (the kind follows from the two)."""

    to_location = forms.ModelChoiceField(label=_("To"), queryset=Location.objects.none())
    condition = forms.ChoiceField(label=_("Condition"), required=False,
                                  choices=[("", _("unchanged"))] + list(Device.Condition.choices),
                                  help_text=_("Returned devices: used or broken."))
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["to_location"].queryset = _live_locations().exclude(kind=Location.Kind.SUPPLIER)


class InstallForm(forms.Form):
    customer = CustomerRefField(label=_("Customer"))
    subscription_ref = forms.CharField(label=_("Subscription"), max_length=64, required=False,
                                       help_text=_("The subscription's number, if the device serves one."))
    reason = forms.CharField(label=_("Note"), max_length=500, required=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500)


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False)


class ReservationForm(web_forms.RecordForm):
    serial = forms.CharField(label=_("Serial"), max_length=64, required=False,
                             help_text=_("A device; or leave empty and give an item, a location and a quantity."))

    class Meta:
        model = Reservation
        fields = ["serial", "item", "location", "quantity", "reference", "note"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["item"].required = False
        self.fields["location"].required = False
        self.fields["quantity"].required = False
        self.fields["item"].queryset = Item.objects.filter(archived_at__isnull=True, tracking="quantity")
        self.fields["location"].queryset = _live_locations(real_only=True)


class StocktakeForm(forms.Form):
    location = forms.ModelChoiceField(label=_("Location"), queryset=Location.objects.none())
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False)

    def __init__(self, data=None, files=None, instance=None, **kwargs):
        super().__init__(data, files, **kwargs)
        self.instance = instance
        self.fields["location"].queryset = _live_locations(real_only=True)


class CountForm(forms.Form):
    item = forms.ModelChoiceField(label=_("Item"), queryset=Item.objects.filter(archived_at__isnull=True))
    counted = web_forms.AmountField(label=_("Counted quantity"), required=False, min_value=0, places=3, help_text=_("Items counted by quantity."))
    serials = forms.CharField(label=_("Serials seen"), required=False, widget=forms.Textarea(attrs={"rows": 4}),
                              help_text=_("Serial items: one serial a line (scan them)."))


class ReceiptForm(forms.Form):
    """The scanner's receipt: the serials arrive one a line in `serials` (the page's script fills it
    as each scan ends with Enter); or pasted; or a CSV file (serial[,mac[,iccid]])."""

    warehouse = forms.ModelChoiceField(label=_("Into"), queryset=Location.objects.none())
    item = forms.ModelChoiceField(label=_("Item"), queryset=Item.objects.filter(archived_at__isnull=True))
    unit_cost = web_forms.AmountField(label=_("Unit cost"), required=False,
                                      help_text=_("Default: the item's purchase cost."))
    quantity = web_forms.AmountField(label=_("Quantity"), required=False, positive=True, places=3,
                                  help_text=_("Items counted by quantity (metres, pieces)."))
    serials = forms.CharField(label=_("Serials"), required=False, widget=forms.Textarea(attrs={"rows": 8}),
                              help_text=_("One a line: serial[,MAC[,ICCID]]."))
    csv_file = forms.FileField(label=_("or a CSV file"), required=False)
    reason = forms.CharField(label=_("Supplier / delivery note"), max_length=500, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["warehouse"].queryset = _live_locations(real_only=True).exclude(kind=Location.Kind.CUSTOMER)


class MoveForm(forms.Form):
    """A move of a quantity (or a serial) between two locations: the moves page's form."""

    serial = forms.CharField(label=_("Serial"), max_length=64, required=False)
    item = forms.ModelChoiceField(label=_("Item"), required=False,
                                  queryset=Item.objects.filter(archived_at__isnull=True, tracking="quantity"))
    quantity = web_forms.AmountField(label=_("Quantity"), required=False, positive=True, places=3)
    from_location = forms.ModelChoiceField(label=_("From"), queryset=Location.objects.none())
    to_location = forms.ModelChoiceField(label=_("To"), queryset=Location.objects.none())
    kind = forms.ChoiceField(label=_("Kind"), required=False,
                             choices=[("", _("follows from the locations"))]
                             + [c for c in Move.Kind.choices if c[0] != "reversal"])
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["from_location"].queryset = _live_locations()
        self.fields["to_location"].queryset = _live_locations()
