import json

from django import forms
from django.utils.translation import gettext_lazy as _

from tarifa.catalog.models import Tariff
from tarifa.subscriptions.models import Subscription
from tarifa.web.forms import RecordForm

from .models import AccessSettings, Nas, Profile


class NasForm(RecordForm):
    secret = forms.CharField(label=_("Shared secret"), max_length=128, required=False,
                             widget=forms.PasswordInput(render_value=False),
                             help_text=_("The RADIUS shared secret configured on the NAS (6 to 128 characters); "
                                         "stored encrypted, never shown. Left empty when editing: unchanged."))

    class Meta:
        model = Nas
        fields = ["name", "ip_address", "secret", "type", "coa_port", "active", "description"]

    def clean_secret(self):
        secret = self.cleaned_data.get("secret") or ""
        if not secret and not self.editing:
            raise forms.ValidationError(_("Give the shared secret."))
        return secret or None


class AttributesField(forms.CharField):
    """A profile's extra reply attributes as JSON ({"mikrotik": {"Attribute": "value"}, "*": {…}})."""

    widget = forms.Textarea(attrs={"rows": 3})

    def prepare_value(self, value):
        if isinstance(value, dict):
            return json.dumps(value) if value else ""
        return value

    def to_python(self, value):
        value = (super().to_python(value) or "").strip()
        if not value:
            return {}
        try:
            data = json.loads(value)
        except ValueError:
            raise forms.ValidationError(_('Write JSON, e.g. {"mikrotik": {"Mikrotik-Address-List": "home"}}.'))
        if not isinstance(data, dict):
            raise forms.ValidationError(_("Give an object of NAS types."))
        return data


class ProfileForm(RecordForm):
    attributes = AttributesField(required=False, label=_("Other reply attributes"),
                                 help_text=Profile._meta.get_field("attributes").help_text)

    class Meta:
        model = Profile
        fields = ["name", "tariff", "rate_down_kbps", "rate_up_kbps", "ip_pool", "simultaneous_use",
                  "session_timeout", "idle_timeout", "interim_interval", "attributes", "when_suspended",
                  "pay_first_pool", "pay_first_rate_down_kbps", "pay_first_rate_up_kbps", "monthly_cap_mb",
                  "when_capped", "capped_rate_down_kbps", "capped_rate_up_kbps"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tariff"].queryset = Tariff.objects.filter(archived_at__isnull=True).order_by("code")


class AccessSettingsForm(RecordForm):
    class Meta:
        model = AccessSettings
        fields = ["subscription", "ip_pool", "simultaneous_use"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.editing:
            del self.fields["subscription"]
        else:
            self.fields["subscription"].queryset = (
                Subscription.objects.filter(service__service_type__category="internet", aaa_settings__isnull=True)
                .exclude(status="terminated").order_by("number"))


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False)
