from django import forms
from django.utils.translation import gettext_lazy as _

from tarifa.web.forms import RecordForm

from .models import NumberRange


class NumberRangeForm(RecordForm):
    class Meta:
        model = NumberRange
        fields = ["kind", "first", "last", "assigned_branch", "note"]


class PublishForm(forms.Form):
    effective_date = forms.DateField(label=_("Effective date"), required=False, help_text=_("Empty: today."))
    note = forms.CharField(label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    confirm = forms.BooleanField(label=_("I have checked the changes: publish them to every branch"), required=True)
