"""Large CSV exports of a list as background tasks (kind "web.export").

A list's `?export=csv` above TARIFA_EXPORT_IN_REQUEST_MAX_ROWS rows starts one: the task
keeps the list's query (filters, search, sort) and the user; the worker writes the file under
MEDIA_ROOT/tasks/ with the user's own view of the list (the screen's queryset for that user,
their permission checked again), with progress; the task's page offers the download, to that
user only (or holders of web.view_backgroundtask).
"""

from django.contrib.auth import get_user_model
from django.test import RequestFactory
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.errors import PermissionDenied

from . import background, registry
from .pagination import estimate


def start(screens: registry.ModelScreens, request):
    params = {key: value for key, value in request.GET.items() if key not in ("export", "page", "per_page")}
    return background.start("web.export", actor=request.user,
                            params={"screen": screens.url_name("list"), "query": params},
                            label=str(_("Export of %(what)s (CSV)") % {"what": screens.verbose_name_plural}))


def _screens(url_name: str) -> registry.ModelScreens:
    for s in registry.all_screens():
        if s.url_name("list") == url_name:
            return s
    raise PermissionDenied(f"No list {url_name}.", code="unknown_list")


@background.task_kind("web.export", label=_("CSV export"), permission=None)
def run_export(task, progress) -> dict:
    from .views import csv_rows, field_label, list_queryset

    s = _screens(task.params["screen"])
    user = get_user_model().objects.filter(pk=task.requested_by_id).first()
    if user is None or not user.is_active or not user.has_perm(s.perm("view")):
        raise PermissionDenied("The user who asked for this export may no longer see the list.",
                               code="permission_denied")
    request = RequestFactory().get("/", task.params.get("query") or {})
    request.user = user
    qs, _filterset, _query, _sort = list_queryset(s, request)
    columns = [(c, field_label(s.model, c)) for c in s.columns]
    expected = max(estimate(qs), 1)
    path = background.task_file(task, f"{s.model_name}s.csv")
    rows = 0
    progress(0, "0 records")
    with open(path, "w", encoding="utf-8", newline="") as out:
        for chunk in csv_rows(qs, columns, s):
            out.write(chunk)
            rows += 1
            if rows % 5000 == 0:
                progress(min(99, 100 * rows / expected), f"{rows:,} records")
    records = max(rows - 1, 0)  # one chunk per record (the first with the header), then the final flush
    task.file_size = path.stat().st_size
    return {"records": records, "bytes": task.file_size}
