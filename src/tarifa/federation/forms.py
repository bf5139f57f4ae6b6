from django import forms
from django.utils.translation import gettext_lazy as _

from tarifa.web.forms import RecordForm

from .models import Node


class NodeForm(RecordForm):
    base_url = forms.URLField(label=_("Base URL"), max_length=300, assume_scheme="https",
                              help_text=_("Where the node's web server answers, e.g. https://b1.example.net"))

    class Meta:
        model = Node
        fields = ["code", "name", "role", "base_url"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.editing:  # a node's code names its streams and keys: it never changes
            del self.fields["code"]


class NodeKeyForm(forms.Form):
    key_id = forms.CharField(label=_("Key id"), max_length=100,
                             help_text=_("As the node publishes it (GET /federation/v1/node on that node)."))
    public_key = forms.CharField(label=_("Public key"), max_length=200, help_text=_("Ed25519, base64 of 32 bytes."))
    valid_from = forms.DateTimeField(label=_("Valid from"), required=False, help_text=_("Empty: now."))
    valid_until = forms.DateTimeField(label=_("Valid until"), required=False, help_text=_("Empty: open."))


class EndKeyForm(forms.Form):
    key_id = forms.CharField(label=_("Key id"), max_length=100)
    valid_until = forms.DateTimeField(label=_("Valid until"), required=False, help_text=_("Empty: now."))


class ResumeForm(forms.Form):
    kind = forms.CharField(label=_("Stream kind"), max_length=40, required=False, help_text=_("Empty: every stopped stream."))
