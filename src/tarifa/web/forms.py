import json
from decimal import Decimal

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from tarifa.kernel import periods
from tarifa.kernel.errors import DomainError
from tarifa.kernel.money import INTEGER_DIGITS, LEDGER_PLACES, parse_amount


def apply_domain_error(form, exc: DomainError) -> None:
    """Show a service's error on the form: field errors by field, the rest on top."""
    placed = False
    for name, errors in (exc.fields or {}).items():
        if name in form.fields:
            for error in errors:
                form.add_error(name, error)
            placed = True
    if not placed:
        form.add_error(None, exc.message)


class AmountField(forms.CharField):
    """An amount on a form, parsed by `tarifa.kernel.money.parse_amount` (the API's rule): plain
    decimal digits with an optional point; "1e2", "5_000", full-width digits and 30-digit
    numbers are field errors. Cleans to a Decimal (None when empty and not required)."""

    def __init__(self, *, positive=False, min_value=None, places=LEDGER_PLACES, integer_digits=INTEGER_DIGITS,
                 max_digits=None, decimal_places=None, **kwargs):
        # max_digits/decimal_places: accepted for forms.DecimalField's signature.
        self.positive, self.min_value = positive, min_value
        self.places = decimal_places if decimal_places is not None else places
        self.integer_digits = (max_digits - self.places) if max_digits else integer_digits
        # No max_length: its validator would run on the Decimal; parse_amount bounds the text.
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off",
                                                           "maxlength": "64"}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        # A Decimal as plain digits ("0.000000000000", not "0E-12"): what is shown is taken back.
        return format(value, "f") if isinstance(value, Decimal) and value.is_finite() else value

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        try:
            amount = parse_amount(value, field="amount", positive=self.positive, places=self.places,
                                  integer_digits=self.integer_digits)
        except DomainError as exc:
            raise forms.ValidationError(exc.fields.get("amount", [exc.message])[0], code=exc.code) from None
        if self.min_value is not None and amount < self.min_value:
            raise forms.ValidationError(_("At least %(min)s.") % {"min": self.min_value}, code="min_value")
        return amount.quantize(Decimal(1).scaleb(-self.places))  # exact: parse_amount checked the places


def load_json(text: str):
    """json.loads for form input, bounded like the API's parser: deep nesting and NUL are
    ValidationErrors (they were a RecursionError, a 500, or reached PostgreSQL)."""
    from .parsers import _has_nul, json_depth_error

    if problem := json_depth_error(text):
        raise forms.ValidationError(problem, code="invalid")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise forms.ValidationError(_("Not JSON: %(error)s") % {"error": exc}, code="invalid") from None
    if _has_nul(value):
        raise forms.ValidationError(_("NUL characters are not allowed."), code="null_characters_not_allowed")
    return value


class JSONField(forms.JSONField):
    """Django's JSONField, bounded by `load_json`."""

    def to_python(self, value):
        if self.disabled or value in self.empty_values or isinstance(value, (list, dict, int, float)):
            return super().to_python(value)
        load_json(value)  # refuses what json.loads would crash on or the database could not hold
        return super().to_python(value)


class AmountModelFormMetaclass(forms.models.ModelFormMetaclass):
    """Gives every model DecimalField of the form an AmountField (the one parser) instead of
    Django's DecimalField, which takes "1e2", "5_000" and full-width digits; and model
    JSONFields the bounded JSONField."""

    def __new__(mcs, name, bases, attrs):
        new_class = super().__new__(mcs, name, bases, attrs)
        for field_name, field in list(getattr(new_class, "base_fields", {}).items()):
            if isinstance(field, forms.DecimalField) and field_name not in new_class.declared_fields:
                new_class.base_fields[field_name] = AmountField(
                    required=field.required, label=field.label, help_text=field.help_text, initial=field.initial,
                    max_digits=field.max_digits, decimal_places=field.decimal_places, min_value=field.min_value,
                    disabled=field.disabled)
            elif type(field) is forms.JSONField and field_name not in new_class.declared_fields:
                field.__class__ = JSONField
        return new_class


class RecordForm(forms.ModelForm, metaclass=AmountModelFormMetaclass):
    """The base of every ModelForm a screen registers (`ModelScreens.form_class`).

    `editing` tells an edit form (bound to a saved record) from a create form. Never test
    `self.instance.pk` for that: every business record's UUID default fills the pk the moment
    the unsaved instance is built, so a create form would believe it edits, drop its create-only
    fields, and the create service would be called without them (issue 10, item 1).
    `registry.register` refuses a ModelForm that does not derive from this class.
    Its model DecimalFields are AmountFields (the one amount parser; AmountModelFormMetaclass).
    """

    @property
    def editing(self) -> bool:
        return not self.instance._state.adding


class PeriodField(forms.CharField):
    """A billing period `YYYY-MM`, parsed by tarifa.kernel.periods (the API's rule)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("label", _("Period"))
        kwargs.setdefault("help_text", _("YYYY-MM"))
        kwargs.setdefault("max_length", 7)
        super().__init__(**kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return value
        try:
            return periods.parse_period(value)
        except DomainError as exc:
            raise forms.ValidationError(exc.fields["period"][0], code=exc.code) from None


class ArchiveForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 3}))


class ImportForm(forms.Form):
    file = forms.FileField(label=_("CSV file"), help_text=_("UTF-8, first row holds the column names."))

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.TARIFA_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(_("The file is too large (%(size)s bytes; at most %(max)s).")
                                        % {"size": upload.size, "max": settings.TARIFA_MAX_UPLOAD_BYTES})
        return upload
