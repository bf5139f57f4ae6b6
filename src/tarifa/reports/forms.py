from django import forms

from tarifa.web.forms import RecordForm

from .framework import all_reports
from .models import ReportSchedule


def report_choices():
    return [(r.code, r.name) for r in all_reports()]


class ScheduleForm(RecordForm):
    report = forms.ChoiceField(label="Report", choices=report_choices)
    parameters = forms.CharField(label="Filters", required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                 help_text="The report's filters besides the period, one a line: name=value "
                                           "(e.g. currency=USD).")

    class Meta:
        model = ReportSchedule
        fields = ["name", "report", "parameters", "recipients", "frequency", "format"]
        widgets = {"recipients": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.editing and isinstance(self.instance.parameters, dict):
            self.initial["parameters"] = "\n".join(f"{k}={v}" for k, v in self.instance.parameters.items())

    def clean_parameters(self):
        out = {}
        for line in (self.cleaned_data.get("parameters") or "").splitlines():
            if not line.strip():
                continue
            if "=" not in line:
                raise forms.ValidationError(f"{line[:40]}: write name=value")
            name, value = line.split("=", 1)
            out[name.strip()] = value.strip()
        return out

    def _post_clean(self):
        pass  # the service checks the report, its parameters and the recipients
