"""Forms of the rating screens: friendlier shapes of CGRateS's rows (one text box for a rate's
slots or a plan's bindings, durations as 60s, usage as 45s or 10MB)."""

import json

from django import forms
from django.utils.translation import gettext_lazy as _

from tarifa.catalog.models import Tariff
from tarifa.web.forms import RecordForm, load_json

from . import engine
from .models import (ANY, Bundle, Destination, DestinationPrefix, DestinationRate, Rate, RateSlot, RatingPlan,
                     RatingPlanBinding, RatingProfile, RatingTenant, TariffRating, Timing, UsageFormat, UsageType)

SLOT_HELP = _("One slot per line: connect fee, rate, rate unit, rate increment, group interval start — "
              "e.g. 0.4, 0.2, 60s, 60s, 0s. Durations as 60s or base units (bytes, items).")
BINDING_HELP = _("One binding per line: destination rate, timing (*any for always), weight — e.g. DR_NAT, PEAK, 20.")


def live(model):
    qs = model.objects.all()
    return qs.filter(archived_at__isnull=True) if hasattr(model, "archived_at") else qs


class CommaList(forms.CharField):
    """A list typed as text: "1, 2, 3" (integers when `numbers`)."""

    def __init__(self, *args, numbers=False, **kwargs):
        self.numbers = numbers
        kwargs.setdefault("required", False)
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value):
        items = [v.strip() for v in str(value or "").replace(";", ",").split(",") if v.strip()]
        if self.numbers:
            try:
                return [int(v) for v in items]
            except ValueError:
                raise forms.ValidationError(_("Whole numbers separated by commas.")) from None
        return items


class DurationInput(forms.CharField):
    def prepare_value(self, value):
        if isinstance(value, int):
            return f"{value // engine.SECOND}s" if value % engine.SECOND == 0 else str(value)
        return value

    def to_python(self, value):
        value = super().to_python(value)
        try:
            return engine.parse_duration(value or "0")
        except ValueError:
            raise forms.ValidationError(_("A duration such as 60s, or base units.")) from None


class TenantForm(RecordForm):
    class Meta:
        model = RatingTenant
        fields = ["code", "name", "description"]


class DestinationForm(RecordForm):
    tenant = forms.ModelChoiceField(live(RatingTenant), label=_("Tenant"))
    prefixes = forms.CharField(label=_("Prefixes"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
                               help_text=_("Separated by spaces, commas or new lines."))

    class Meta:
        model = Destination
        fields = ["tenant", "code", "name", "prefixes"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.editing:
            self.initial["prefixes"] = " ".join(self.instance.prefixes.order_by("id").values_list("prefix", flat=True))


class PrefixForm(RecordForm):
    destination = forms.ModelChoiceField(live(Destination).select_related("tenant"), label=_("Destination"))

    class Meta:
        model = DestinationPrefix
        fields = ["destination", "prefix"]


class PrefixUploadForm(forms.Form):
    tenant = forms.ModelChoiceField(live(RatingTenant), label=_("Tenant"))
    file = forms.FileField(label=_("Prefix table (CSV)"),
                           help_text=_("Rows of: destination code, prefix[, destination name]. A header row "
                                       "starting with # or 'destination' is skipped."))
    replace = forms.BooleanField(label=_("Replace the prefixes of the destinations in the file"), required=False)


class TimingForm(RecordForm):
    tenant = forms.ModelChoiceField(live(RatingTenant), label=_("Tenant"))
    years = CommaList(label=_("Years"), numbers=True, help_text=_("Empty: every year."))
    months = CommaList(label=_("Months"), numbers=True, help_text=_("1–12; empty: every month."))
    month_days = CommaList(label=_("Month days"), numbers=True, help_text=_("1–31; empty: every day."))
    week_days = CommaList(label=_("Week days"), numbers=True, help_text=_("1 = Monday … 7 = Sunday; empty: every day."))

    class Meta:
        model = Timing
        fields = ["tenant", "code", "name", "years", "months", "month_days", "week_days", "start_time", "end_time"]


def parse_slots(text: str) -> list[dict]:
    slots = []
    for n, raw in enumerate(str(text or "").splitlines(), start=1):
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        parts = [p.strip() for p in raw.split(",")]
        if len(parts) not in (4, 5):
            raise forms.ValidationError(_("Line %(n)s: give 4 or 5 values.") % {"n": n})
        slots.append({"connect_fee": parts[0] or "0", "price": parts[1], "rate_unit": parts[2],
                      "rate_increment": parts[3], "group_interval_start": parts[4] if len(parts) == 5 else "0"})
    if not slots:
        raise forms.ValidationError(_("Give at least one slot."))
    return slots


def format_slots(rate) -> str:
    def d(v):
        return f"{v // engine.SECOND}s" if v % engine.SECOND == 0 else str(v)

    return "\n".join(f"{s.connect_fee.normalize():f}, {s.price.normalize():f}, {d(s.rate_unit)}, "
                     f"{d(s.rate_increment)}, {d(s.group_interval_start)}" for s in rate.slots.order_by("id"))


class RateForm(RecordForm):
    tenant = forms.ModelChoiceField(live(RatingTenant), label=_("Tenant"))
    slots = forms.CharField(label=_("Slots"), widget=forms.Textarea(attrs={"rows": 4}), help_text=SLOT_HELP)

    class Meta:
        model = Rate
        fields = ["tenant", "code", "name", "slots"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.editing:
            self.initial["slots"] = format_slots(self.instance)

    def clean_slots(self):
        return parse_slots(self.cleaned_data["slots"])


class RateSlotForm(RecordForm):
    rate = forms.ModelChoiceField(live(Rate).select_related("tenant"), label=_("Rate"))
    rate_unit = DurationInput(label=_("Rate unit"))
    rate_increment = DurationInput(label=_("Rate increment"))
    group_interval_start = DurationInput(label=_("Group interval start"), required=False)

    class Meta:
        model = RateSlot
        fields = ["rate", "connect_fee", "price", "rate_unit", "rate_increment", "group_interval_start"]


class DestinationRateForm(RecordForm):
    tenant = forms.ModelChoiceField(live(RatingTenant), label=_("Tenant"))
    destination = forms.ModelChoiceField(live(Destination).select_related("tenant"), required=False,
                                         label=_("Destination"), empty_label=ANY)
    rate = forms.ModelChoiceField(live(Rate).select_related("tenant"), label=_("Rate"))

    class Meta:
        model = DestinationRate
        fields = ["tenant", "code", "destination", "rate", "rounding_method", "rounding_decimals", "max_cost",
                  "max_cost_strategy"]


def parse_bindings(text: str) -> list[dict]:
    bindings = []
    for n, raw in enumerate(str(text or "").splitlines(), start=1):
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        parts = [p.strip() for p in raw.split(",")]
        if len(parts) not in (1, 2, 3) or not parts[0]:
            raise forms.ValidationError(_("Line %(n)s: destination rate, timing, weight.") % {"n": n})
        bindings.append({"destination_rate_code": parts[0], "timing": parts[1] if len(parts) > 1 else ANY,
                         "weight": parts[2] if len(parts) > 2 else "10"})
    return bindings


class RatingPlanForm(RecordForm):
    tenant = forms.ModelChoiceField(live(RatingTenant), label=_("Tenant"))
    bindings = forms.CharField(label=_("Bindings"), widget=forms.Textarea(attrs={"rows": 5}), required=False,
                               help_text=BINDING_HELP)

    class Meta:
        model = RatingPlan
        fields = ["tenant", "code", "name", "bindings"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.editing:
            self.initial["bindings"] = "\n".join(
                f"{b.destination_rate_code}, {b.timing.code if b.timing_id else ANY}, {b.weight.normalize():f}"
                for b in self.instance.bindings.select_related("timing").order_by("id"))

    def clean_bindings(self):
        return parse_bindings(self.cleaned_data["bindings"])


class BindingForm(RecordForm):
    rating_plan = forms.ModelChoiceField(live(RatingPlan).select_related("tenant"), label=_("Rating plan"))
    timing = forms.ModelChoiceField(live(Timing).select_related("tenant"), required=False, label=_("Timing"),
                                    empty_label=ANY)

    class Meta:
        model = RatingPlanBinding
        fields = ["rating_plan", "destination_rate_code", "timing", "weight"]


class RatingProfileForm(RecordForm):
    tenant = forms.ModelChoiceField(live(RatingTenant), label=_("Tenant"))
    rating_plan = forms.ModelChoiceField(live(RatingPlan).select_related("tenant"), label=_("Rating plan"))
    fallback_subjects = CommaList(label=_("Fallback subjects"))

    class Meta:
        model = RatingProfile
        fields = ["tenant", "category", "subject", "activation_time", "rating_plan", "fallback_subjects"]


class JSONText(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 8, "class": "mono"})

    def prepare_value(self, value):
        if isinstance(value, (dict, list)):
            return json.dumps(value, indent=2, ensure_ascii=False)
        return value

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return {}
        return load_json(value)


class TariffRatingForm(RecordForm):
    tariff = forms.ModelChoiceField(live(Tariff), label=_("Tariff"))
    tenant = forms.ModelChoiceField(live(RatingTenant), label=_("Tenant"))
    rating_plan = forms.ModelChoiceField(live(RatingPlan).select_related("tenant"), required=False,
                                         label=_("Rating plan"))
    categories = JSONText(label=_("Categories"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
                          help_text=_('Usage type → rating category, e.g. {"voice": "call"}.'))

    class Meta:
        model = TariffRating
        fields = ["tariff", "tenant", "categories", "subject", "rating_plan", "rounding_decimals"]


class BundleForm(RecordForm):
    tariff = forms.ModelChoiceField(live(Tariff), label=_("Tariff"))
    usage_type = forms.ChoiceField(label=_("Usage type"))
    allowance = forms.CharField(label=_("Allowance"), help_text=_("300m (minutes), 10GB, 100 (items)."))
    destinations = CommaList(label=_("Destinations"), help_text=_("Destination codes; empty: every destination."))

    class Meta:
        model = Bundle
        # `allowance` is the form's own field (300m, 10GB): the service parses it; a model field
        # here would have the form validate the text as an integer.
        fields = ["tariff", "code", "name", "usage_type", "period", "destinations"]

    field_order = ["tariff", "code", "name", "usage_type", "allowance", "period", "destinations"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["usage_type"].choices = [(t.code, t.name) for t in live(UsageType)]
        if self.editing:
            from .units import format_usage

            self.initial["allowance"] = format_usage(self.instance.allowance, self.instance.usage_type)

    def clean(self):
        cleaned = super().clean()
        usage_type, allowance = cleaned.get("usage_type"), cleaned.get("allowance")
        if usage_type and allowance:  # checked here, so a bad quantity is a field error; the service converts
            from tarifa.kernel.errors import DomainError

            from .services import _allowance

            try:
                _allowance(allowance, usage_type)
            except DomainError as exc:
                for name, errors in (exc.fields or {"allowance": [exc.message]}).items():
                    self.add_error(name if name in self.fields else None, errors)
        return cleaned


class UsageTypeForm(RecordForm):
    class Meta:
        model = UsageType
        fields = ["code", "name", "measure", "split_by_time"]


class UsageFormatForm(RecordForm):
    spec = JSONText(label=_("Specification"), widget=forms.Textarea(attrs={"rows": 16, "class": "mono"}),
                    help_text=_("delimiter, header, columns, defaults, type_map, time_format, time_zone, "
                                "time_unit, data_unit, filters — see docs/rating.md."))

    class Meta:
        model = UsageFormat
        fields = ["code", "name", "description", "spec"]


class CorrectForm(forms.Form):
    subject = forms.CharField(label=_("Subject"), required=False, max_length=100)
    destination = forms.CharField(label=_("Destination"), required=False, max_length=64)
    usage_type = forms.CharField(label=_("Usage type"), required=False, max_length=32)
    start_time = forms.DateTimeField(label=_("Start (with time zone)"), required=False,
                                     help_text=_("e.g. 2024-03-05T10:00:00Z"))
    usage = forms.CharField(label=_("Usage"), required=False, help_text=_("45s, 1m20s, 90 (seconds), 10MB, 3."))

    def set_object(self, obj, request):
        for name in ("subject", "destination", "usage_type", "start_time"):
            self.fields[name].initial = getattr(obj, name)
        if obj.usage is not None:
            self.fields["usage"].initial = obj.usage_display


class CalculatorForm(forms.Form):
    tenant = forms.ModelChoiceField(live(RatingTenant), label=_("Tenant"), to_field_name="code")
    category = forms.CharField(label=_("Category"), initial="call")
    subject = forms.CharField(label=_("Subject"))
    destination = forms.CharField(label=_("Destination"), required=False)
    answer_time = forms.DateTimeField(label=_("Answer time"), help_text=_("With a zone, e.g. 2019-03-11T09:00:00Z"))
    usage = forms.CharField(label=_("Usage"), initial="60s", help_text=_("45s, 1m20s, 90 (seconds); a count for "
                                                                         "data and SMS."))
    type = forms.CharField(label=_("Usage type"), initial="voice")
    plan = forms.CharField(label=_("Rating plan"), required=False, help_text=_("Optional: skip the profiles."))
    rounding_decimals = forms.IntegerField(label=_("Engine rounding decimals"), initial=5, min_value=0, max_value=18)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)):
            return [single(d, initial) for d in data]
        return [single(data, initial)]


class CgratesImportForm(forms.Form):
    files = MultipleFileField(label=_("CSV files (or a .zip)"),
                            help_text=_("Destinations.csv, Timings.csv, Rates.csv, DestinationRates.csv, "
                                        "RatingPlans.csv, RatingProfiles.csv."))
    tenant = forms.CharField(label=_("Load under tenant"), required=False,
                             help_text=_("Empty: the tenants named in RatingProfiles.csv."))


class UsageImportForm(forms.Form):
    file = forms.FileField(label=_("Usage file"))
    format = forms.ChoiceField(label=_("Format"))
    source = forms.CharField(label=_("Source"), required=False,
                             help_text=_("For records whose format names no source."))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from .formats import builtin

        self.fields["format"].choices = [(c, f"{c} — {s['name']}") for c, s in builtin().items()] + [
            (f.code, f"{f.code} — {f.name}") for f in live(UsageFormat)]


class RerateForm(forms.Form):
    date_from = forms.DateTimeField(label=_("From (included)"))
    date_to = forms.DateTimeField(label=_("To (excluded)"))
    billing_account = forms.CharField(label=_("Billing account number"), required=False)
