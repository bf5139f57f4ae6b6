from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(label=_("Assignee"), queryset=get_user_model().objects.filter(is_active=True)
                                      .order_by("username"))


class ResolveForm(forms.Form):
    resolution = forms.CharField(label=_("Resolution"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000,
                                 help_text=_("What was found and done (a payment applied, a receipt corrected…)."))


class ReconcileForm(forms.Form):
    date = forms.DateField(label=_("Day (UTC)"), help_text=_("YYYY-MM-DD; a finished day also checks checkpoints."))
