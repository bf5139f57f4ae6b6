"""Background jobs (procrastinate): the worker hook and the admin's jobs screen."""

from django.core.paginator import Paginator
from django.shortcuts import render

from .views import PermissionRequiredView

JOB_STATES = ["todo", "doing", "succeeded", "failed", "cancelled", "aborted", "aborting"]


def on_app_ready(app):
    """Called by procrastinate when its Django app is ready: import every app's tasks."""
    from django.utils.module_loading import autodiscover_modules

    from tarifa.kernel.roundtrips import pipeline_safe_job_queue

    pipeline_safe_job_queue()
    autodiscover_modules("tasks")


class JobListView(PermissionRequiredView):
    permission = "identity.view_jobs"

    def get(self, request):
        from procrastinate.contrib.django.models import ProcrastinateEvent, ProcrastinateJob

        jobs = ProcrastinateJob.objects.order_by("-id")
        status = request.GET.get("status")
        if status in JOB_STATES:
            jobs = jobs.filter(status=status)
        page = Paginator(jobs, 50).get_page(request.GET.get("page"))
        ids = [j.id for j in page.object_list]
        errors = {}
        for event in ProcrastinateEvent.objects.filter(job_id__in=ids).order_by("at"):
            errors.setdefault(event.job_id, []).append(event)
        counts = {s: ProcrastinateJob.objects.filter(status=s).count() for s in JOB_STATES}
        rows = [(job, errors.get(job.id, [])) for job in page.object_list]
        return render(request, "web/jobs.html", {"page": page, "rows": rows, "counts": counts, "status": status})
