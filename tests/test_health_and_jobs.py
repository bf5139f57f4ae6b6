"""The operations surface: /healthz, the jobs screen with a real worker, and the set-up commands."""

import io
import uuid

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connections

from tarifa.identity.models import User
from tarifa.kernel.tasks import dispatch_event
from tarifa.testing.processes import run_worker_in_thread

# --- /healthz ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_healthz_reports_ok_with_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.django_db
def test_healthz_is_503_when_the_database_is_unreachable(client, monkeypatch):
    def outage(*args, **kwargs):
        raise OperationalError("connection to server on socket failed: No such file or directory")

    # Simulates a database outage; the view, middleware and client are the real ones.
    with monkeypatch.context() as patched:  # the database comes back before the test ends
        patched.setattr(connections["default"], "cursor", outage)
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unavailable"}


def test_healthz_needs_no_login(client, db):
    assert client.get("/healthz").status_code == 200  # load balancers probe anonymously


# --- jobs -------------------------------------------------------------------------------------


def job(job_id):
    from procrastinate.contrib.django.models import ProcrastinateJob

    return ProcrastinateJob.objects.get(pk=job_id)


def test_tasks_modules_are_discovered_by_the_worker_app():
    from procrastinate.contrib.django import app

    assert "kernel.dispatch_event" in app.tasks  # from tarifa/kernel/tasks.py, via on_app_ready
    # every `@app.periodic(..., periodic_id=...)` written in an app's tasks.py reaches the scheduler
    import re
    from pathlib import Path

    task_files = [Path(config.path) / "tasks.py" for config in apps.get_app_configs()
                  if config.name.startswith("tarifa.")]
    declared = {m for path in task_files if path.exists()
                for m in re.findall(r"periodic_id=\"([^\"]+)\"", path.read_text())}
    scheduled = {periodic.periodic_id for periodic in app.periodic_registry.periodic_tasks.values()}
    assert declared <= scheduled
    for periodic in app.periodic_registry.periodic_tasks.values():
        assert periodic.task.name in app.tasks


@pytest.mark.django_db
def test_jobs_screen_lists_a_deferred_job_as_todo(staff_client, admin_user):
    job_id = dispatch_event.defer(event_id=str(uuid.uuid4()))

    page = staff_client(admin_user).get("/jobs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "kernel.dispatch_event" in html
    assert job(job_id).status == "todo"
    assert f"<td>{job_id}</td>" in html
    assert "todo: 1" in html

    only_todo = staff_client(admin_user).get("/jobs/?status=todo").content.decode()
    assert f"<td>{job_id}</td>" in only_todo
    assert f"<td>{job_id}</td>" not in staff_client(admin_user).get("/jobs/?status=succeeded").content.decode()


@pytest.mark.django_db
def test_jobs_screen_needs_the_permission(staff_client, make_user):
    nobody = make_user("identity.view_dashboard")
    assert staff_client(nobody).get("/jobs/").status_code == 403


def test_a_worker_runs_jobs_and_the_screen_shows_success_and_failure(transactional_db, staff_client, make_user):
    ok_id = dispatch_event.defer(event_id=str(uuid.uuid4()))  # no such event: nothing to do, succeeds
    bad_id = dispatch_event.defer(event_id="not-a-uuid")  # the lookup raises: retried, then failed

    run_worker_in_thread("--one-shot", "--queues", "events", "--concurrency", "1")

    assert job(ok_id).status == "succeeded"
    failed = job(bad_id)
    assert failed.status == "failed"
    assert failed.attempts == 6  # retry=5: the first run and five retries

    admin = make_user(username="admin", superuser=True)
    html = staff_client(admin).get("/jobs/").content.decode()
    assert '<span class="badge ok">succeeded</span>' in html
    assert '<span class="badge bad">failed</span>' in html
    assert "deferred_for_retry" in html  # the failed job's history of attempts
    failed_page = staff_client(admin).get("/jobs/?status=failed").content.decode()
    assert f"<td>{bad_id}</td>" in failed_page and "not-a-uuid" in failed_page
    assert f"<td>{ok_id}</td>" not in failed_page


def test_a_one_shot_worker_defers_no_periodic_task(transactional_db):
    """On start the scheduler defers the latest tick of every periodic task (the reconciliation's is
    never more than five minutes ago): a one-shot run must take only the jobs waiting."""
    from procrastinate.contrib.django import procrastinate_app
    from procrastinate.contrib.django.models import ProcrastinateJob

    registry = procrastinate_app.current_app.periodic_registry
    periodic = {p.task.name for p in registry.periodic_tasks.values()}
    assert "aaa.reconcile" in periodic
    ok_id = dispatch_event.defer(event_id=str(uuid.uuid4()))  # the jobs table outlives a test: only newer ones count
    run_worker_in_thread("--one-shot", "--concurrency", "1")
    assert job(ok_id).status == "succeeded"
    assert not ProcrastinateJob.objects.filter(task_name__in=periodic, id__gt=ok_id).exists()
    assert procrastinate_app.current_app.periodic_registry is registry  # given back after the run


def test_a_transactional_test_leaves_jobs_for_its_teardown(transactional_db):
    """The first of two: it defers a job and commits it; the fixture `job_queue_emptied` removes it."""
    from procrastinate.contrib.django.models import ProcrastinateJob

    left = dispatch_event.defer(event_id=str(uuid.uuid4()))
    assert ProcrastinateJob.objects.filter(id=left).exists()
    LEFT_BY_THE_TEST_BEFORE.append(left)


def test_the_next_test_starts_with_an_empty_job_queue(transactional_db):
    from procrastinate.contrib.django.models import ProcrastinateJob

    assert LEFT_BY_THE_TEST_BEFORE, "runs after the test above"
    assert not ProcrastinateJob.objects.filter(id__in=LEFT_BY_THE_TEST_BEFORE).exists()
    assert not ProcrastinateJob.objects.exists()


LEFT_BY_THE_TEST_BEFORE: list[int] = []


def test_worker_command_passes_its_options_to_procrastinate(monkeypatch):
    from tarifa.web.management.commands import worker

    calls = []
    monkeypatch.setattr(worker, "call_command", lambda *args: calls.append(args))
    call_command("worker", "--concurrency", "4", "--queues", "events,billing", "default", "--name", "w1")
    assert calls == [("procrastinate", "worker", "--concurrency", "4", "--queues", "events,billing,default",
                      "--name", "w1")]


# --- createadmin / bootstrap ------------------------------------------------------------------


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_createadmin_uses_the_password_from_the_environment_and_is_idempotent(monkeypatch):
    monkeypatch.setenv("TARIFA_ADMIN_PASSWORD", "Env-given-pass-42")
    out = run("createadmin")
    assert "Created superuser 'admin'" in out and "Env-given-pass-42" not in out
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password("Env-given-pass-42")
    hashed = admin.password

    monkeypatch.setenv("TARIFA_ADMIN_PASSWORD", "Another-pass-word-77")
    out = run("createadmin")
    assert "already exists" in out
    admin.refresh_from_db()
    assert admin.password == hashed  # nothing changed
    assert User.objects.filter(username__iexact="admin").count() == 1


@pytest.mark.django_db
def test_createadmin_generates_and_prints_a_password_once(monkeypatch):
    monkeypatch.delenv("TARIFA_ADMIN_PASSWORD", raising=False)
    out = run("createadmin")
    password = out.strip().rsplit(" ", 1)[-1]
    assert len(password) >= 16
    assert User.objects.get(username="admin").check_password(password)
    assert password not in run("createadmin")


@pytest.mark.django_db
def test_createadmin_refuses_a_weak_password(monkeypatch):
    monkeypatch.setenv("TARIFA_ADMIN_PASSWORD", "short")
    with pytest.raises(CommandError, match="Cannot create 'admin'"):
        run("createadmin")
    assert not User.objects.exists()


def tarifa_row_counts() -> dict:
    """Rows per Tarifa model (skipping a model whose migration is still being written)."""
    from django.db import connection

    tables = set(connection.introspection.table_names())
    return {m._meta.label: m._default_manager.count() for m in apps.get_models()
            if m.__module__.startswith("tarifa.") and m._meta.managed and m._meta.db_table in tables}


@pytest.mark.django_db
def test_bootstrap_without_demo_creates_only_admin_and_branch(monkeypatch):
    monkeypatch.setenv("TARIFA_ADMIN_PASSWORD", "Boot-strap-pass-99")
    out = run("bootstrap", "--no-demo", "--verbosity", "0")
    assert "Created superuser 'admin'" in out and "Demo data" not in out
    assert list(User.objects.values_list("username", flat=True)) == ["admin"]
    assert "Existing database reused" in run("bootstrap", "--verbosity", "0")  # no demo added later


@pytest.mark.django_db
def test_bootstrap_sets_up_an_empty_database_once(monkeypatch):
    from tarifa.branches.models import Branch

    monkeypatch.setenv("TARIFA_ADMIN_PASSWORD", "Boot-strap-pass-99")
    out = run("bootstrap", "--verbosity", "0")
    assert "Created superuser 'admin'" in out
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("Boot-strap-pass-99")
    local = Branch.objects.get(is_local=True)
    assert local.code == "HQ"
    first = tarifa_row_counts()

    out = run("bootstrap", "--verbosity", "0")
    assert "Existing database reused" in out
    assert tarifa_row_counts() == first  # no second admin, no second copy of the demo data
    assert User.objects.filter(username__iexact="admin").count() == 1


@pytest.mark.django_db
def test_bootstrap_leaves_a_database_with_users_alone(make_user, monkeypatch):
    monkeypatch.setenv("TARIFA_ADMIN_PASSWORD", "Boot-strap-pass-99")
    make_user(username="operator")
    before = tarifa_row_counts()
    out = run("bootstrap", "--verbosity", "0")
    assert "no 'admin'" in out
    assert not User.objects.filter(username="admin").exists()
    # Only the branch row (and its audit event) may appear; no admin, no demo data.
    set_up = {"branches.Branch", "audit.AuditEvent"}
    assert {k: v for k, v in tarifa_row_counts().items() if k not in set_up} == \
        {k: v for k, v in before.items() if k not in set_up}
