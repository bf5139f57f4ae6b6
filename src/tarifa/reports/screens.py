from django.utils.translation import gettext_lazy as _

from tarifa.web.registry import Action, ModelScreens, Page, register, register_page

from . import framework, services
from .forms import ScheduleForm
from .framework import all_reports
from .models import ReportSchedule


def _may_open(user, code):
    """form_sample: a schedule is made by someone who may open its report (the service checks it)."""
    from django.contrib.auth.models import Permission

    app, codename = framework.get(code).permission.split(".")
    user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    return {"report": code, "recipients": "finance@example.com"}


register(ModelScreens(
    model=ReportSchedule, area="Reports", menu_label=_("Scheduled reports"),
    columns=["name", "report", "frequency", "format", "last_sent_on"],
    form_class=ScheduleForm, create=services.create_schedule, update=services.update_schedule,
    archive=services.archive_schedule, filterset_fields=["report", "frequency", "format"],
    search_fields=["name", "report", "recipients"], ordering=["name"],
    form_sample=lambda view, obj, user: _may_open(user, "payments-by-channel"),
    actions=[Action("send", _("Send now"), "reports.send_report",
                    lambda schedule, *, actor: services.send(schedule, actor=actor),
                    available=lambda schedule: schedule.archived_at is None)],
))

register_page(Page("reports:index", _("Reports"), "Reports", "reports.view_reports"))
for _r in all_reports():
    register_page(Page(f"reports:{_r.code}", _r.name, "Reports", _r.permission, menu=False))
