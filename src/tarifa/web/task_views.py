"""Background tasks: the list of one's tasks, a task's page (progress while it runs, then the
result), its file's download, and the API (`/api/v1/tasks/`, `/api/v1/tasks/<id>/`)."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import FileResponse, Http404
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.kernel.errors import NotFound
from tarifa.kernel.errors import PermissionDenied as DomainPermissionDenied

from . import background
from .models import BackgroundTask
from .views import PermissionRequiredView


def _task_or_404(request, pk) -> BackgroundTask:
    try:
        return background.get_for(request.user, pk)
    except NotFound:
        raise Http404(_("No such background task.")) from None
    except DomainPermissionDenied:
        raise DjangoPermissionDenied(background.SEE_ALL) from None


def task_context(request, task):
    kind = background.kind_of(task)
    result_html = ""
    if task.state == BackgroundTask.State.SUCCEEDED and kind and kind.result_template:
        result_html = render_to_string(kind.result_template, {"task": task, "result": task.result or {}},
                                       request=request)
    return {"task": task, "kind": kind, "result_html": result_html, "download": background.file_path(task)}


class TaskListView(PermissionRequiredView):
    """The background tasks the user started (every task, with web.view_backgroundtask)."""

    permission = None

    def get(self, request):
        tasks = list(background.visible_to(request.user)[:100])
        return render(request, "web/tasks.html", {"tasks": tasks,
                                                  "all": request.user.has_perm(background.SEE_ALL)})


class TaskView(PermissionRequiredView):
    permission = None

    def get(self, request, pk):
        task = _task_or_404(request, pk)
        context = task_context(request, task)
        if request.htmx:
            return render(request, "web/_task_state.html", context)
        return render(request, "web/task.html", context)


class TaskDownloadView(PermissionRequiredView):
    permission = None

    def get(self, request, pk):
        task = _task_or_404(request, pk)
        path = background.file_path(task) if task.state == BackgroundTask.State.SUCCEEDED else None
        if path is None:
            raise Http404(_("This task has no file (yet)."))
        return FileResponse(open(path, "rb"), as_attachment=True, filename=task.file_name)


TASK_SCHEMA = {"type": "object", "properties": {
    "id": {"type": "string", "format": "uuid"}, "kind": {"type": "string"}, "label": {"type": "string"},
    "state": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
    "progress": {"type": "integer"}, "step": {"type": "string"}, "params": {"type": "object"},
    "created_at": {"type": "string", "format": "date-time"},
    "started_at": {"type": "string", "format": "date-time", "nullable": True},
    "finished_at": {"type": "string", "format": "date-time", "nullable": True},
    "url": {"type": "string"}, "page": {"type": "string"},
    "result": {"type": "object", "nullable": True}, "error": {"type": "string", "nullable": True},
    "file": {"type": "object", "nullable": True}}}


class TaskListAPI(APIView):
    """The background tasks you started (every task with web.view_backgroundtask), newest first (100)."""

    required_permission = None

    @extend_schema(operation_id="tasks_list", responses={200: {"type": "object", "properties": {
        "results": {"type": "array", "items": TASK_SCHEMA}}}})
    def get(self, request):
        return Response({"results": [background.describe(t, request)
                                     for t in background.visible_to(request.user)[:100]]})


class TaskAPI(APIView):
    """One background task: state (queued, running, succeeded, failed), progress %, the current
    step, and the result, the error or the file to download. Yours, or any with
    web.view_backgroundtask; 404 otherwise."""

    required_permission = None

    @extend_schema(operation_id="tasks_retrieve", responses={200: TASK_SCHEMA})
    def get(self, request, pk):
        return Response(background.describe(background.get_for(request.user, pk), request))


def sample_task():
    """The permission suite's sample for /api/v1/tasks/<id>/: a finished task nobody started."""
    task = BackgroundTask.objects.filter(requested_by__isnull=True).order_by("created_at").first()
    if task is None:
        task = BackgroundTask.objects.create(kind="web.sample", label="Sample", state=BackgroundTask.State.SUCCEEDED,
                                             progress=100, result={})
    return {"pk": task.pk}
