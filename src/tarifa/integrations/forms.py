from django import forms
from tarifa.web.forms import RecordForm

from .models import NotificationTemplate


class TemplateForm(RecordForm):
    class Meta:
        model = NotificationTemplate
        fields = ["event", "channel", "language", "subject", "body", "active"]
        widgets = {"body": forms.Textarea(attrs={"rows": 6})}

    def _post_clean(self):
        pass  # the service checks uniqueness and template syntax
