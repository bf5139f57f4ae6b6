"""Background tasks with progress: long work started from a page or the API, run by a worker.

An app declares a kind of task once:

    @background.task_kind("ledger.check", label=_("Ledger check"), permission="ledger.view_ledgeraccount",
                          result_template="ledger/_check_result.html")
    def run_check(task, progress):
        progress(10, "account totals")          # percent and the step, seen on the task's page
        ...
        return {"ok": True, ...}                # the result: JSON, shown by result_template

and starts one with `background.start("ledger.check", actor=request.user, params={...})`: a
`BackgroundTask` row and its procrastinate job, in one transaction (the job runs after
commit). The page that started it redirects to the task's page (`web:task`), which polls
while the task runs; the API answers 202 with the task's URL (`/api/v1/tasks/<id>/`, state,
progress, result or error). A task may leave a file (`task_file(task)` gives a path under
MEDIA_ROOT/tasks/; a CSV export, say), downloaded from `web:task_download`.

Who sees a task: the user who started it, and holders of `web.view_backgroundtask` (every
task). Starting one needs the kind's permission.

Progress is written on a separate database connection when the work runs outside a
transaction (a worker: the work's own transaction, such as the ledger check's REPEATABLE
READ snapshot, would hide it until the end), on the same one inside a transaction (tests).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.urls import reverse

from tarifa.kernel.clock import now
from tarifa.kernel.errors import DomainError, NotFound, PermissionDenied

from .models import BackgroundTask

log = logging.getLogger(__name__)
SEE_ALL = "web.view_backgroundtask"


@dataclass
class TaskKind:
    name: str
    label: str
    permission: str | None
    run: Callable  # run(task, progress) -> dict (the result)
    result_template: str | None = None  # rendered with {"task", "result"} on the task's page
    queue: str = "tasks"  # a worker of its own (`tarifa worker -q tasks`) keeps long tasks off the others


_kinds: dict[str, TaskKind] = {}


def task_kind(name: str, *, label, permission: str | None, result_template: str | None = None,
              queue: str = "tasks"):
    def register(func):
        _kinds[name] = TaskKind(name, label, permission, func, result_template, queue)
        return func

    return register


def kind_of(task_or_name) -> TaskKind | None:
    name = task_or_name.kind if isinstance(task_or_name, BackgroundTask) else task_or_name
    return _kinds.get(name)


def can_start(user, kind: str) -> bool:
    k = _kinds.get(kind)
    return k is not None and (k.permission is None or user.has_perm(k.permission))


def can_see(user, task: BackgroundTask) -> bool:
    if not user or not user.is_authenticated:
        return False
    return (task.requested_by_id is not None and task.requested_by_id == user.pk) or user.has_perm(SEE_ALL)


def visible_to(user):
    qs = BackgroundTask.objects.select_related("requested_by").order_by("-created_at", "-id")
    return qs if user.has_perm(SEE_ALL) else qs.filter(requested_by_id=user.pk)


def get_for(user, pk) -> BackgroundTask:
    """The task if `user` may see it: NotFound when there is none, PermissionDenied when it is
    another user's (and `user` lacks web.view_backgroundtask)."""
    task = BackgroundTask.objects.filter(pk=pk).first()
    if task is None:
        raise NotFound("No such background task.", code="task_not_found")
    if not can_see(user, task):
        raise PermissionDenied("This task was started by another user.", code="permission_denied")
    return task


def running(kind: str) -> BackgroundTask | None:
    """A task of `kind` queued or running now, if any (the newest)."""
    return (BackgroundTask.objects.filter(kind=kind, state__in=[BackgroundTask.State.QUEUED,
                                                                BackgroundTask.State.RUNNING])
            .order_by("-created_at").first())


def latest(kind: str) -> BackgroundTask | None:
    """The newest finished task of `kind` that succeeded."""
    return (BackgroundTask.objects.filter(kind=kind, state=BackgroundTask.State.SUCCEEDED)
            .order_by("-finished_at").first())


def start(kind: str, *, actor, params: dict | None = None, label: str = "") -> BackgroundTask:
    """Record a task and defer its job, in one transaction. `actor` must hold the kind's permission."""
    k = _kinds.get(kind)
    if k is None:
        raise DomainError(f"Unknown background task {kind!r}.", code="unknown_task", status=400)
    user = actor if getattr(actor, "is_authenticated", False) else None
    if user is not None and k.permission and not user.has_perm(k.permission):
        raise PermissionDenied("You may not start this task.", code="permission_denied")
    from .tasks import run_background_task

    with transaction.atomic():
        task = BackgroundTask.objects.create(kind=kind, label=str(label or k.label)[:200], params=params or {},
                                             requested_by=user)
        run_background_task.configure(queue=k.queue).defer(task_id=str(task.pk))
    return task


class Progress:
    """progress(percent, text): written at most twice a second (and always at 100 %)."""

    def __init__(self, task: BackgroundTask):
        self.task, self.last, self.conn = task, 0.0, None

    def __call__(self, percent: float, text: str = ""):
        percent = max(0, min(100, int(percent)))
        moment = time.monotonic()
        if percent < 100 and moment - self.last < 0.5 and percent == self.task.progress:
            return
        self.last = moment
        self.task.progress, self.task.progress_text = percent, str(text)[:200]
        self._write("UPDATE web_backgroundtask SET progress = %s, progress_text = %s WHERE id = %s",
                    [percent, self.task.progress_text, self.task.pk])

    def _write(self, sql, params):
        if connection.in_atomic_block or connection.settings_dict.get("TEST", {}).get("MIRROR"):
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
            return
        if self.conn is None:
            import psycopg

            connection.ensure_connection()
            kwargs = connection.get_connection_params()
            kwargs.pop("cursor_factory", None)
            kwargs.pop("context", None)
            kwargs["autocommit"] = True
            self.conn = psycopg.connect(**kwargs)
        self.conn.execute(sql, params)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def run(task_id) -> BackgroundTask:
    """Run one task (the worker's job): state running → succeeded with the result, or failed
    with the error. A task that is no longer queued (run already) is left alone."""
    claimed = BackgroundTask.objects.filter(pk=task_id, state=BackgroundTask.State.QUEUED).update(
        state=BackgroundTask.State.RUNNING, started_at=now())
    task = BackgroundTask.objects.get(pk=task_id)
    if not claimed:
        return task
    kind = _kinds.get(task.kind)
    progress = Progress(task)
    try:
        if kind is None:
            raise DomainError(f"Unknown background task {task.kind!r}.", code="unknown_task")
        result = kind.run(task, progress)
    except Exception as exc:  # the task fails visibly; the job itself succeeds (no blind retries)
        log.exception("background task %s (%s) failed", task.pk, task.kind)
        message = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        BackgroundTask.objects.filter(pk=task.pk).update(
            state=BackgroundTask.State.FAILED, error=message[:4000] + (
                "" if isinstance(exc, DomainError) else "\n" + traceback.format_exc(limit=5)[-4000:]),
            finished_at=now())
    else:
        BackgroundTask.objects.filter(pk=task.pk).update(
            state=BackgroundTask.State.SUCCEEDED, result=result if result is not None else {}, progress=100,
            progress_text="", finished_at=now(), file=task.file, file_name=task.file_name,
            file_size=task.file_size)
    finally:
        progress.close()
    task.refresh_from_db()
    return task


# --- files ------------------------------------------------------------------------------------------------

def task_dir() -> Path:
    path = Path(settings.MEDIA_ROOT) / "tasks"
    path.mkdir(parents=True, exist_ok=True)
    return path


def task_file(task: BackgroundTask, name: str) -> Path:
    """Where `task` writes its file (MEDIA_ROOT/tasks/<id>-<name>); recorded on the task."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120] or "file"
    relative = f"tasks/{task.pk}-{safe}"
    task.file, task.file_name = relative, safe
    task_dir()
    return Path(settings.MEDIA_ROOT) / relative


def file_path(task: BackgroundTask) -> Path | None:
    if not task.file:
        return None
    path = (Path(settings.MEDIA_ROOT) / task.file).resolve()
    root = (Path(settings.MEDIA_ROOT) / "tasks").resolve()
    return path if root in path.parents and path.is_file() else None


def describe(task: BackgroundTask, request=None) -> dict:
    """The API's view of a task."""
    def absolute(url):
        return request.build_absolute_uri(url) if request is not None else url

    body = {"id": str(task.pk), "kind": task.kind, "label": task.label, "state": task.state,
            "progress": task.progress, "step": task.progress_text, "params": task.params,
            "created_at": task.created_at.isoformat(),
            "started_at": task.started_at.isoformat() if task.started_at else None,
            "finished_at": task.finished_at.isoformat() if task.finished_at else None,
            "url": absolute(reverse("api:task", kwargs={"pk": task.pk})),
            "page": absolute(reverse("web:task", kwargs={"pk": task.pk})),
            "result": task.result if task.state == BackgroundTask.State.SUCCEEDED else None,
            "error": task.error.split("\n")[0] if task.state == BackgroundTask.State.FAILED else None,
            "file": None}
    if task.file and task.state == BackgroundTask.State.SUCCEEDED:
        body["file"] = {"name": task.file_name, "size": task.file_size,
                        "url": absolute(reverse("web:task_download", kwargs={"pk": task.pk}))}
    return body
