from django import forms

from tarifa.web.forms import RecordForm

from .framework import all_reports
from .models import ReportSchedule


def report_choices():
    return [(r.code, r.name) for r in all_reports()]


class ScheduleForm(RecordForm):
    report = forms.ChoiceField(label="Report", choices=report_choices)

    class Meta:
        model = ReportSchedule
        fields = ["name", "report", "parameters", "recipients", "frequency", "format"]
        widgets = {"recipients": forms.Textarea(attrs={"rows": 3})}

    def _post_clean(self):
        pass  # the service checks the report, its parameters and the recipients
