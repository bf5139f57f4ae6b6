"""The portal's forms (customer-facing pages) and the staff screens' forms."""

from django import forms
from django.utils.translation import gettext_lazy as _

from tarifa.catalog.models import Tariff
from tarifa.crm.models import Customer
from tarifa.web.forms import AmountField, RecordForm

from .models import EDITABLE_FIELDS, LANGUAGES, Department, PortalSettings, PortalUser


class LoginForm(forms.Form):
    login = forms.CharField(label=_("E-mail, phone or customer number"), max_length=150,
                            widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}))
    password = forms.CharField(label=_("Password"), max_length=200,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    otp = forms.CharField(label=_("Code from your authenticator app"), max_length=10, required=False,
                          widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))


class RegisterForm(forms.Form):
    customer_number = forms.CharField(label=_("Customer number"), max_length=32,
                                      help_text=_("As printed on your contract and invoices, e.g. HQ-C0000001."))
    contact = forms.CharField(label=_("Your e-mail address or phone number"), max_length=254,
                              help_text=_("One we have on file for you: the code is sent there."))


class CodePasswordForm(forms.Form):
    contact = forms.CharField(label=_("E-mail address, phone number or login"), max_length=254)
    code = forms.CharField(label=_("One-time code"), max_length=10,
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))
    password = forms.CharField(label=_("New password"), max_length=200, min_length=10,
                               widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                               help_text=_("At least 10 characters, not only digits."))


class ResetForm(forms.Form):
    login = forms.CharField(label=_("E-mail, phone or customer number"), max_length=150)


class TopUpForm(forms.Form):
    account = forms.ChoiceField(label=_("Account"))
    amount = AmountField(label=_("Amount"), positive=True)

    def __init__(self, *args, accounts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].choices = [(str(a.pk), f"{a.number} ({a.currency})") for a in accounts]


class VoucherForm(forms.Form):
    account = forms.ChoiceField(label=_("Account"))
    code = forms.CharField(label=_("Voucher code"), max_length=64, widget=forms.TextInput(attrs={"autocomplete": "off"}))

    def __init__(self, *args, accounts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].choices = [(str(a.pk), f"{a.number} ({a.currency})") for a in accounts]


class PromiseForm(forms.Form):
    account = forms.ChoiceField(label=_("Account"))

    def __init__(self, *args, accounts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].choices = [(str(a.pk), a.number) for a in accounts]


class TariffChoiceForm(forms.Form):
    tariff = forms.ModelChoiceField(label=_("New tariff"), queryset=Tariff.objects.none(), empty_label=None)

    def __init__(self, *args, tariffs=None, **kwargs):
        super().__init__(*args, **kwargs)
        if tariffs is not None:
            self.fields["tariff"].queryset = tariffs


class PauseForm(forms.Form):
    until = forms.DateField(label=_("Resume on"), widget=forms.DateInput(attrs={"type": "date"}))


class HelpForm(forms.Form):
    subject = forms.CharField(label=_("Subject"), max_length=200)
    text = forms.CharField(label=_("How can we help?"), widget=forms.Textarea(attrs={"rows": 5}), max_length=5000)
    subscription = forms.ChoiceField(label=_("About the service"), required=False)

    def __init__(self, *args, subscriptions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subscription"].choices = [("", _("(none in particular)"))] + [
            (str(s.pk), f"{s.number} · {s.tariff.name}") for s in subscriptions]


class CommentForm(forms.Form):
    text = forms.CharField(label=_("Your reply"), widget=forms.Textarea(attrs={"rows": 3}), max_length=5000)


class ProfileForm(forms.Form):
    """Only the fields the operator allows are kept (PortalSettings.editable_fields)."""

    email = forms.EmailField(label=_("E-mail address"), required=False)
    phone = forms.CharField(label=_("Phone number"), max_length=32, required=False)
    first_name = forms.CharField(label=_("First name"), max_length=100, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=100, required=False)
    preferred_channel = forms.ChoiceField(label=_("Preferred contact channel"), choices=Customer.Channel.choices,
                                          required=False)

    def __init__(self, *args, editable=(), **kwargs):
        super().__init__(*args, **kwargs)
        for name in list(self.fields):
            if name not in editable:
                del self.fields[name]


class PreferencesForm(forms.Form):
    language = forms.ChoiceField(label=_("Language"), choices=LANGUAGES)
    notify_email = forms.BooleanField(label=_("Notifications by e-mail"), required=False)
    notify_sms = forms.BooleanField(label=_("Notifications by SMS"), required=False)


class PasswordForm(forms.Form):
    current_password = forms.CharField(label=_("Current password"), widget=forms.PasswordInput, max_length=200)
    password = forms.CharField(label=_("New password"), widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                               max_length=200, min_length=10)


class TotpConfirmForm(forms.Form):
    code = forms.CharField(label=_("Code from your authenticator app"), max_length=10,
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))


class TotpDisableForm(forms.Form):
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput, max_length=200)


# Staff screens --------------------------------------------------------------------------------------

class PortalUserForm(RecordForm):
    initial_password = forms.CharField(label=_("Password"), widget=forms.PasswordInput(render_value=False), max_length=200,
                               help_text=_("Tell the customer; they can change it in the portal."))

    class Meta:
        model = PortalUser
        fields = ["customer", "login", "name", "role", "language", "departments", "notify_email", "notify_sms"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.filter(archived_at__isnull=True)
        self.fields["departments"].queryset = Department.objects.filter(archived_at__isnull=True)
        if self.editing:
            for name in ("customer", "login", "initial_password"):
                self.fields.pop(name, None)

    def validate_unique(self):
        pass  # the service says "login taken" by field


class DepartmentForm(RecordForm):
    class Meta:
        model = Department
        fields = ["customer", "name", "subscriptions"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.filter(archived_at__isnull=True)
        if self.editing:
            self.fields.pop("customer")
            self.fields["subscriptions"].queryset = self.fields["subscriptions"].queryset.filter(
                billing_account__customer=self.instance.customer)

    def validate_unique(self):
        pass


class PortalSettingsForm(RecordForm):
    editable_fields = forms.MultipleChoiceField(label=_("Profile fields customers may edit"), choices=EDITABLE_FIELDS,
                                                required=False, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = PortalSettings
        fields = ["name", "self_registration", "allowed_tariffs", "tariff_change_requires_ticket", "pause_allowed",
                  "pause_max_days_per_year", "pause_min_days", "promised_payment", "editable_fields", "notice"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["allowed_tariffs"].queryset = Tariff.objects.filter(archived_at__isnull=True).order_by("name")
