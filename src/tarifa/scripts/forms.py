from django import forms
from django.utils.translation import gettext_lazy as _

from tarifa.web.forms import JSONField, RecordForm

from .models import Script

CODE_STYLE = "font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9rem; width: 100%"


class ScriptForm(RecordForm):
    """The editor: the script's settings and its source (saving changed source makes a new version)."""

    source = forms.CharField(label=_("Source (Lua)"), strip=False, max_length=100_000,
                             widget=forms.Textarea(attrs={"rows": 22, "spellcheck": "false", "style": CODE_STYLE,
                                                          "data-testid": "script-source"}),
                             help_text=_("Lua 5.4: the script reads `context`, calls Tarifa's functions and "
                                         "returns its result (docs/scripts.md)."))
    note = forms.CharField(label=_("Note on this version"), max_length=200, required=False)

    class Meta:
        model = Script
        fields = ["code", "name", "description", "kind", "schedule", "run_as", "active"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.editing and not self.is_bound:
            self.fields["source"].initial = self.instance.source

    def _post_clean(self):
        pass  # the service checks uniqueness, the schedule and the syntax


class ScriptTestForm(forms.Form):
    """A dry run: against a sample context (JSON), or a customer's / subscription's numbers."""

    context = JSONField(label=_("Sample context (JSON)"), required=False,
                        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "style": CODE_STYLE,
                                                     "placeholder": '{"ticket": {"account": "HQ-A0000001"}}'}),
                        help_text=_("What the script reads as `context`: for a ticket handler, a sample ticket."))
    customer = forms.CharField(label=_("Customer number"), max_length=32, required=False,
                               help_text=_("Added to the context as context.customer (and to a sample ticket)."))
    subscription = forms.CharField(label=_("Subscription number"), max_length=32, required=False,
                                   help_text=_("Added as context.subscription, with its account."))

    def clean_context(self):
        value = self.cleaned_data.get("context")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError(_("The context is a JSON object: {…}."))
        return value
