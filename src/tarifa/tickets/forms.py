from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from tarifa.catalog.models import Tariff
from tarifa.crm.forms import CustomerRefField
from tarifa.identity.models import Role
from tarifa.web.forms import RecordForm

from . import handlers as kinds
from .models import Step, StepField, StepHandler, Ticket, TicketType, Transition

DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


def parse_pairs(text: str) -> dict:
    """"name=value" lines (or comma-separated) → a dict; a line without "=" is an error."""
    result = {}
    for raw in (text or "").replace(",", "\n").splitlines():
        line = raw.strip()
        if not line:
            continue
        if "=" not in line:
            raise forms.ValidationError(_("Write name=value, one per line: “%(line)s”.") % {"line": line[:50]})
        name, value = (p.strip() for p in line.split("=", 1))
        if not name:
            raise forms.ValidationError(_("A name before “=”."))
        result[name] = value
    return result


def format_pairs(data: dict) -> str:
    return "\n".join(f"{k}={v}" for k, v in (data or {}).items())


class PairsField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 3})

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", _("name=value, one per line."))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return format_pairs(value) if isinstance(value, dict) else value

    def clean(self, value):
        return parse_pairs(super().clean(value))


class TicketTypeForm(RecordForm):
    class Meta:
        model = TicketType
        fields = ["code", "name", "description", "customer_visible"]


class StepForm(RecordForm):
    class Meta:
        model = Step
        fields = ["ticket_type", "code", "name", "order", "final", "automatic", "roles", "branch", "sla_minutes",
                  "escalate_to_user", "escalate_to_role", "notify_on_escalation"]
        widgets = {"roles": forms.CheckboxSelectMultiple}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["roles"].queryset = Role.objects.all()
        self.fields["escalate_to_user"].queryset = get_user_model().objects.filter(is_active=True)
        if self.editing:
            del self.fields["ticket_type"]
        else:
            self.fields["ticket_type"].queryset = TicketType.objects.filter(archived_at__isnull=True)


class StepFieldForm(RecordForm):
    class Meta:
        model = StepField
        fields = ["step", "name", "label", "kind", "required", "choices", "order"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.editing:
            del self.fields["step"]
            del self.fields["name"]  # the data already collected under it keeps its name
        else:
            self.fields["step"].queryset = Step.objects.filter(archived_at__isnull=True).select_related("ticket_type")


class TransitionForm(RecordForm):
    class Meta:
        model = Transition
        fields = ["from_step", "to_step", "direction", "requires_resolution", "label"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        steps = Step.objects.filter(archived_at__isnull=True).select_related("ticket_type")
        self.fields["from_step"].queryset = steps
        self.fields["to_step"].queryset = steps


class StepHandlerForm(RecordForm):
    kind = forms.ChoiceField(label=_("Kind"), choices=())
    parameters = PairsField(label=_("Parameters"),
                            help_text=_("name=value, one per line; for “Run a script”: script=<the script's code>."))

    class Meta:
        model = StepHandler
        fields = ["step", "phase", "kind", "parameters", "order", "enabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = kinds.kind_choices()
        if self.editing:
            del self.fields["step"]
        else:
            self.fields["step"].queryset = Step.objects.filter(archived_at__isnull=True).select_related("ticket_type")


class TicketForm(RecordForm):
    customer = CustomerRefField(label=_("Customer"))
    parameters = PairsField(label=_("Parameters"),
                            help_text=_("Tariff parameters and identifiers requested, name=value per line "
                                        "(e.g. login=jdoe)."))

    class Meta:
        model = Ticket
        fields = ["ticket_type", "customer", "title", "description", "requested_tariff", "parameters", "priority"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["requested_tariff"].queryset = Tariff.objects.filter(archived_at__isnull=True)
        self.fields["title"].required = False
        if self.editing:
            for name in ("ticket_type", "customer"):
                del self.fields[name]
        else:
            self.fields["ticket_type"].queryset = TicketType.objects.filter(archived_at__isnull=True)


class CommentForm(forms.Form):
    text = forms.CharField(label=_("Comment"), widget=forms.Textarea(attrs={"rows": 4}), max_length=10000)
    internal = forms.BooleanField(label=_("Internal (not shown to the customer)"), required=False, initial=True)


class TicketAttachmentForm(forms.Form):
    file = forms.FileField(label=_("File"), help_text=_("PDF, PNG, JPEG, TIFF or plain text."))
    description = forms.CharField(label=_("Description"), max_length=200, required=False)
    customer_visible = forms.BooleanField(label=_("Visible to the customer"), required=False)


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(get_user_model().objects.none(), required=False, label=_("Assignee"),
                                      help_text=_("Empty: nobody (the step's queue)."))

    def set_object(self, obj, request):
        from .selectors import may_work

        users = [u.pk for u in get_user_model().objects.filter(is_active=True) if may_work(u, obj.step)]
        self.fields["assignee"].queryset = get_user_model().objects.filter(pk__in=users)


class RegistrationForm(forms.Form):
    """The front office's one screen: the customer, their first account, the services they ask for."""

    kind = forms.ChoiceField(label=_("Kind"), choices=[("individual", _("Individual")),
                                                       ("organization", _("Organization"))])
    first_name = forms.CharField(label=_("First name"), max_length=100, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=100, required=False)
    legal_name = forms.CharField(label=_("Legal name"), max_length=255, required=False)
    tax_id = forms.CharField(label=_("Tax id"), max_length=64, required=False)
    email = forms.EmailField(label=_("E-mail"), required=False)
    phone = forms.CharField(label=_("Phone"), max_length=50, required=False)
    line1 = forms.CharField(label=_("Service address"), max_length=200)
    city = forms.CharField(label=_("City"), max_length=100)
    country = forms.CharField(label=_("Country"), max_length=2, initial="US", help_text=_("Two letters, e.g. US."))
    payment_mode = forms.ChoiceField(label=_("Payment mode"), choices=[("prepaid", _("Prepaid")),
                                                                      ("postpaid", _("Postpaid"))])
    tariffs = forms.ModelMultipleChoiceField(Tariff.objects.none(), label=_("Services requested"),
                                             widget=forms.CheckboxSelectMultiple,
                                             help_text=_("One activation ticket is opened for each."))
    login = forms.CharField(label=_("Login wanted"), max_length=100, required=False,
                            help_text=_("For internet services; otherwise given at installation."))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tariffs"].queryset = Tariff.objects.filter(archived_at__isnull=True).select_related("service") \
            .order_by("service__name", "name")

    def clean(self):
        data = super().clean()
        if data.get("kind") == "organization":
            for name in ("legal_name", "tax_id"):
                if not data.get(name):
                    self.add_error(name, _("Required for an organization."))
        if data.get("kind") == "individual":
            for name in ("first_name", "last_name"):
                if not data.get(name):
                    self.add_error(name, _("Required for an individual."))
        return data
