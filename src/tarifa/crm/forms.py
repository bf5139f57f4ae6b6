import uuid

from django import forms
from django.utils.translation import gettext_lazy as _
from tarifa.web.forms import RecordForm

from .models import Address, AuthorisedContact, Contact, Contract, Customer, TaxScheme

DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class CustomerRefField(forms.CharField):
    """A customer given by number (HQ-C0000001) or id: no select box of every customer."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", _("Customer number, e.g. HQ-C0000001."))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, Customer):
            return value.number
        if isinstance(value, (str, uuid.UUID)):
            customer = self._lookup(str(value))
            return customer.number if customer else value
        return value

    @staticmethod
    def _lookup(value):
        value = (value or "").strip()
        try:
            return Customer.objects.filter(pk=uuid.UUID(value)).first()
        except ValueError:
            return Customer.objects.filter(number__iexact=value).first()

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return None
        customer = self._lookup(value)
        if customer is None:
            raise forms.ValidationError(_("No customer %(ref)s.") % {"ref": value})
        return customer


class CustomerForm(RecordForm):
    tax_scheme = forms.ModelChoiceField(TaxScheme.objects.filter(archived_at__isnull=True), to_field_name="code",
                                        required=False, label=_("Tax scheme"),
                                        help_text=_("Empty: the default scheme (standard)."))
    email = forms.EmailField(label=_("E-mail"), required=False)
    phone = forms.CharField(label=_("Phone"), required=False, max_length=50)

    class Meta:
        model = Customer
        fields = ["kind", "first_name", "last_name", "birth_date", "document_type", "document_number",
                  "document_issued_by", "document_issue_date", "legal_name", "tax_id", "registration_number",
                  "registration_date", "legal_address", "tax_scheme", "language", "preferred_channel", "tags"]
        widgets = {"birth_date": DATE, "document_issue_date": DATE, "registration_date": DATE,
                   "legal_address": forms.Textarea(attrs={"rows": 2})}
        help_texts = {"tags": _("Comma-separated.")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("language", "preferred_channel"):  # CSV imports may leave them out
            self.fields[name].required = False
        if self.editing:
            # The kind is fixed once registered; first contacts are added on the customer page.
            self.fields["kind"].disabled = True
            del self.fields["email"], self.fields["phone"]
            if self.instance.tax_scheme_id:  # the choices are codes (to_field_name), the model holds the pk
                self.initial["tax_scheme"] = self.instance.tax_scheme.code


    def clean_language(self):
        return self.cleaned_data["language"] or Customer._meta.get_field("language").get_default()

    def clean_preferred_channel(self):
        return self.cleaned_data["preferred_channel"] or Customer._meta.get_field("preferred_channel").get_default()


class ContactForm(RecordForm):
    class Meta:
        model = Contact
        fields = ["kind", "value", "label", "is_preferred"]


class AddressForm(RecordForm):
    class Meta:
        model = Address
        fields = ["kind", "line1", "line2", "city", "postcode", "region", "country"]


class AuthorisedContactForm(RecordForm):
    class Meta:
        model = AuthorisedContact
        fields = ["name", "position", "phone", "email", "authority"]
        widgets = {"authority": forms.Textarea(attrs={"rows": 3})}


class NoteForm(forms.Form):
    text = forms.CharField(label=_("Note"), widget=forms.Textarea(attrs={"rows": 4}))


class AttachmentForm(forms.Form):
    file = forms.FileField(label=_("File"), help_text=_("PDF, PNG, JPEG, TIFF or plain text."))
    description = forms.CharField(label=_("Description"), max_length=200, required=False)
    contract = forms.ModelChoiceField(Contract.objects.none(), required=False, label=_("Contract"))

    def set_object(self, obj, request):
        if isinstance(obj, Contract):
            del self.fields["contract"]
        else:
            self.fields["contract"].queryset = obj.contracts.filter(archived_at__isnull=True)


class ContractForm(RecordForm):
    customer = CustomerRefField(label=_("Customer"))

    class Meta:
        model = Contract
        fields = ["customer", "date", "type", "title"]
        widgets = {"date": DATE}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["date"].required = False
        self.fields["date"].help_text = _("Empty: today.")
        if self.editing:
            self.fields["customer"].disabled = True


class SignContractForm(forms.Form):
    signed_on = forms.DateField(label=_("Signed on"), required=False, widget=DATE, help_text=_("Empty: today."))
    file = forms.FileField(label=_("Signed document"), required=False,
                           help_text=_("The scan of the signed contract: PDF, PNG, JPEG or TIFF."))
    note = forms.CharField(label=_("Note"), required=False, max_length=500)


class TerminateContractForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 3}))
    terminated_on = forms.DateField(label=_("Terminated on"), required=False, widget=DATE,
                                    help_text=_("Empty: today."))


class TaxSchemeForm(RecordForm):
    class Meta:
        model = TaxScheme
        fields = ["code", "name", "exempt", "exempt_tax_codes", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.editing:
            self.fields["code"].disabled = True
