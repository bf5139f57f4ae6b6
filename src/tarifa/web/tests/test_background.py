"""Issue 10 item 20: lists never count a large table, requests have a statement timeout, large
CSV exports and long checks run as background tasks with progress, a page and an API."""

import csv
import io

import pytest
from django.db import connection
from django.test import Client, RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext

from tarifa.web import background
from tarifa.web.models import BackgroundTask

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(make_user):
    """30 audit events (the audit trail is a list every installation grows)."""
    from tarifa.audit import services

    subject = make_user(password=None)
    for i in range(30):
        services.record(subject, actor="test", action="note", message=f"event {i}")
    return 30


def client_for(user):
    client = Client()
    client.force_login(user)
    return client


def count_queries(queries):
    return [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]


@override_settings(TARIFA_LIST_COUNT_LIMIT=10)
def test_a_list_counts_at_most_the_limit_and_pages_by_next(events, make_user):
    from tarifa.audit.models import AuditEvent

    total = AuditEvent.objects.count()
    ui = client_for(make_user("audit.view_auditevent", password=None))
    with CaptureQueriesContext(connection) as queries:
        page = ui.get("/audit/auditevent/?per_page=25")
    assert page.status_code == 200
    text = page.content.decode()
    counts = count_queries(queries.captured_queries)
    assert counts and all("LIMIT 11" in sql for sql in counts), counts  # never a COUNT(*) of the table
    assert "about" in text and "page=2" in text
    second = ui.get("/audit/auditevent/?per_page=25&page=2").content.decode()
    assert second.count('href="/audit/auditevent/') >= total - 25
    assert "page=3" not in second


@override_settings(TARIFA_LIST_COUNT_LIMIT=10)
def test_an_api_list_counts_at_most_the_limit(events, api, make_user):
    client = api(make_user("audit.view_auditevent", password=None))
    with CaptureQueriesContext(connection) as queries:
        body = client.get("/api/v1/audit-events/?page_size=20").json()
    assert all("LIMIT 11" in sql for sql in count_queries(queries.captured_queries))
    assert body["count_exact"] is False and body["count"] >= 11 and len(body["results"]) == 20
    assert body["next"].endswith("page=2&page_size=20") or "page=2" in body["next"]
    last = client.get(body["next"]).json()
    assert last["next"] is None and last["previous"] and len(last["results"]) >= 10
    small = client.get("/api/v1/audit-events/?object_type=nothing").json()
    assert small == {"count": 0, "count_exact": True, "next": None, "previous": None, "results": []}


@pytest.mark.django_db(transaction=True)
@override_settings(TARIFA_REQUEST_STATEMENT_TIMEOUT=0.2)
def test_a_request_query_is_stopped_by_the_statement_timeout():
    """A query slower than the timeout is cancelled by PostgreSQL (it does not go on after the
    client left): the request answers 503 saying so; the connection is reset afterwards."""
    from tarifa.web.timeouts import StatementTimeoutMiddleware

    def slow_view(request):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(3)")

    middleware = StatementTimeoutMiddleware(lambda request: _call(middleware, slow_view, request))
    response = middleware(RequestFactory().get("/api/v1/anything/"))
    assert response.status_code == 503 and b"statement_timeout" in response.content
    ui = middleware(RequestFactory().get("/ledger/check/"))
    assert ui.status_code == 503 and b"background task" in ui.content
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"


def _call(middleware, view, request):
    try:
        return view(request)
    except Exception as exc:
        response = middleware.process_exception(request, exc)
        if response is None:
            raise
        return response


def test_a_large_export_runs_as_a_task_whose_file_only_its_requester_downloads(events, make_user, tmp_path,
                                                                               settings):
    settings.MEDIA_ROOT = str(tmp_path)
    settings.TARIFA_EXPORT_IN_REQUEST_MAX_ROWS = 5
    owner = make_user("audit.view_auditevent", password=None)
    ui = client_for(owner)
    started = ui.get("/audit/auditevent/?export=csv&action=note")
    assert started.status_code == 302 and started["Location"].startswith("/tasks/")
    task = BackgroundTask.objects.get()
    assert task.kind == "web.export" and task.requested_by == owner and task.params["query"] == {"action": "note"}
    assert 'data-state="queued"' in ui.get(started["Location"]).content.decode()

    done = background.run(task.pk)
    assert done.state == "succeeded", done.error
    assert done.result == {"records": 30, "bytes": done.file_size} and done.file.startswith("tasks/")
    page = ui.get(started["Location"]).content.decode()
    assert 'data-testid="task-download"' in page and "auditevents.csv" in page
    download = ui.get(f"/tasks/{task.pk}/download/")
    assert download.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert len(rows) == 31 and rows[0][0] == "id" and {r[3] for r in rows[1:]} == {"note"}

    stranger = client_for(make_user("audit.view_auditevent", password=None))
    assert stranger.get(f"/tasks/{task.pk}/download/").status_code == 403
    assert stranger.get(f"/tasks/{task.pk}/").status_code == 403
    assert "auditevents" not in stranger.get("/tasks/").content.decode()
    auditor = client_for(make_user("web.view_backgroundtask", password=None))
    assert auditor.get(f"/tasks/{task.pk}/download/").status_code == 200
    assert client_for(owner).get("/tasks/").content.decode().count(f"/tasks/{task.pk}/") == 1

    small = ui.get("/audit/auditevent/?export=csv&action=nothing")
    assert small.status_code == 200 and small["Content-Type"].startswith("text/csv")


def test_a_failing_task_shows_its_error(make_user):
    @background.task_kind("web.test_failure", label="Failing", permission=None)
    def fail(task, progress):
        progress(40, "half way")
        raise RuntimeError("disk full")

    user = make_user(password=None)
    task = background.start("web.test_failure", actor=user)
    done = background.run(task.pk)
    assert done.state == "failed" and done.error.startswith("RuntimeError: disk full")
    assert done.progress == 40 and done.progress_text == "half way"
    assert background.run(task.pk).state == "failed"  # run once: a second job leaves it alone
    page = client_for(user).get(f"/tasks/{task.pk}/").content.decode()
    assert 'data-state="failed"' in page and "disk full" in page


def test_starting_needs_the_kinds_permission(make_user):
    from tarifa.kernel.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        background.start("ledger.check", actor=make_user("audit.view_auditevent", password=None))
