"""A bill run for every cycle of a period — the cycle left out — from the API, the UI and
`tarifa billing run --enqueue`: one run per live cycle through the same service as one run
(permission, lock per (cycle, period), audit); a cycle refused is reported, the others queued."""

import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tarifa.audit.models import AuditEvent
from tarifa.billing import billrun, services
from tarifa.billing.models import BillRun, Invoice
from tarifa.billing.tasks import bill_run
from tarifa.kernel import clock
from tarifa.kernel.errors import DomainError

from .helpers import ACTOR, at, customer_account, make_catalog, make_cycle

pytestmark = pytest.mark.django_db

RUNNER = ("billing.add_billrun", "billing.view_billrun", "billing.run_bill_run")


def three_cycles(c, day):
    """On 1 March 2025, M1 (1st) and M15 (15th) with one postpaid account each, and an archived
    cycle OLD; then the clock moves to `day` of April."""
    make_catalog(start=dt.date(2025, 1, 1))
    cycles = {"M1": make_cycle(code="M1"), "M15": make_cycle(code="M15", name="Monthly, 15th", day_of_month=15)}
    for code, cycle in cycles.items():
        account = customer_account(payment_mode="postpaid")
        services.assign_cycle(actor=ACTOR, billing_account=account, cycle=cycle)
        services.add_pending_item(actor=ACTOR, billing_account=account, kind="one_time_fee", description="Setup",
                                  amount="10.00", day=dt.date(2025, 3, 20))
    services.archive_cycle(make_cycle(code="OLD", name="Old"), actor=ACTOR)
    c.add_days(31 + day - 1)
    return cycles


def jobs_for(runs):
    from procrastinate.contrib.django.models import ProcrastinateJob

    return {job.args["run_id"] for job in ProcrastinateJob.objects.filter(task_name="billing.bill_run")} & {
        str(r) for r in runs}


def test_api_queues_a_run_per_live_cycle_and_reports_the_refused_ones(make_user, api):
    with clock.travel_to(at(2025, 3, 1)) as c:
        cycles = three_cycles(c, 20)
        client = api(make_user(*RUNNER))
        busy = client.post("/api/v1/bill-runs/", {"cycle": "M1", "period": "2025-03"}, format="json")
        assert busy.status_code == 201 and busy.json()["cycle"] == "M1"  # one cycle: unchanged

        answer = client.post("/api/v1/bill-runs/", {"period": "2025-03"}, format="json")
        assert answer.status_code == 201, answer.content
        body = answer.json()
        assert (body["period"], body["dry_run"]) == ("2025-03", False)
        assert [(r["cycle"], r["status"]) for r in body["queued"]] == [("M15", "queued")]
        assert [(r["cycle"], r["code"]) for r in body["refused"]] == [("M1", "run_in_progress")]
        assert "already queued" in body["refused"][0]["message"]
        queued = BillRun.objects.get(pk=body["queued"][0]["id"])
        assert queued.cycle == cycles["M15"] and not BillRun.objects.filter(cycle__code="OLD").exists()
        assert jobs_for([queued.pk]) == {str(queued.pk)}
        audit = AuditEvent.objects.get(object_id=str(queued.pk), action="create")
        assert audit.actor_label == queued.actor and audit.message == "M15 2025-03"

        # Every cycle refused: nothing queued is an error, one message per cycle.
        again = client.post("/api/v1/bill-runs/", {"period": "2025-03", "cycle": None}, format="json")
        assert again.status_code == 409, again.content
        error = again.json()["error"]
        assert error["code"] == "nothing_queued" and len(error["fields"]["cycle"]) == 2
        assert error["fields"]["cycle"][0].startswith("M1: ") and error["fields"]["cycle"][1].startswith("M15: ")
        assert BillRun.objects.count() == 2

        # A dry run is allowed next to a queued run, for every cycle at once.
        dry = client.post("/api/v1/bill-runs/", {"period": "2025-03", "dry_run": True}, format="json")
        assert dry.status_code == 201 and [r["cycle"] for r in dry.json()["queued"]] == ["M1", "M15"]
        assert all(r["dry_run"] for r in dry.json()["queued"]) and dry.json()["refused"] == []

        bad = client.post("/api/v1/bill-runs/", {"period": "2025-13"}, format="json")
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_failed"


def test_a_cycle_whose_period_is_not_closed_is_reported_the_others_run():
    with clock.travel_to(at(2025, 3, 1)) as c:
        three_cycles(c, 5)  # 5 April: M1's March is over, M15's (15 March–14 April) is not
        queued = billrun.enqueue_all(actor=ACTOR, period="2025-03")
        assert [r.cycle.code for r in queued.runs] == ["M1"]
        assert [(r["cycle"], r["code"]) for r in queued.refused] == [("M15", "period_not_closed")]
        bill_run(run_id=str(queued.runs[0].pk))  # what the worker does
        assert list(Invoice.objects.values_list("cycle__code", flat=True)) == ["M1"]
        # The one cycle left refused alone: its own error, as for one run.
        with pytest.raises(DomainError) as refused:
            billrun.enqueue_all(actor=ACTOR, period="2025-04")
        assert refused.value.code == "nothing_queued"
        with pytest.raises(DomainError, match="not closed") as one:
            billrun.enqueue(actor=ACTOR, period="2025-04", cycle="M15")
        assert one.value.code == "period_not_closed"


def test_the_permission_is_the_one_of_a_single_run(make_user, api):
    with clock.travel_to(at(2025, 3, 1)) as c:
        three_cycles(c, 20)
        no_service_perm = api(make_user("billing.add_billrun", "billing.view_billrun"))
        refused = no_service_perm.post("/api/v1/bill-runs/", {"period": "2025-03"}, format="json")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
        no_add = api(make_user("billing.view_billrun", "billing.run_bill_run"))
        assert no_add.post("/api/v1/bill-runs/", {"period": "2025-03"}, format="json").status_code == 403
        assert not BillRun.objects.exists()


def test_no_live_cycle_is_an_error(make_user, api):
    with clock.travel_to(at(2025, 4, 20)):
        answer = api(make_user(*RUNNER)).post("/api/v1/bill-runs/", {"period": "2025-03"}, format="json")
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "cycle_not_found"


def test_the_ui_offers_all_cycles_then_lists_the_runs_queued(make_user, staff_client):
    with clock.travel_to(at(2025, 3, 1)) as c:
        three_cycles(c, 20)
        client = staff_client(make_user(*RUNNER))
        form = client.get("/billing/billrun/add/").content.decode()
        assert '<option value="" selected>All cycles</option>' in form and "OLD" not in form
        billrun.enqueue(actor=ACTOR, period="2025-03", cycle="M15")  # busy: reported, not an error for M1

        posted = client.post("/billing/billrun/add/", {"cycle": "", "period": "2025-03"})
        assert posted.status_code == 302, posted.content.decode()[:2000]
        m1 = BillRun.objects.get(cycle__code="M1")
        assert posted["Location"] == f"/billing/billrun/queued/?run={m1.pk}"
        page = client.get(posted["Location"])
        html = page.content.decode()
        assert page.status_code == 200
        assert f'href="/billing/billrun/{m1.pk}/"' in html and f"/billing/billrun/{m1.pk}/progress/" in html
        assert "Bill runs queued for 2025-03: M1." in html
        assert "Cycle M15 not queued: A bill run of cycle M15 for 2025-03 is already queued" in html

        bill_run(run_id=str(m1.pk))
        assert "hx-trigger" not in client.get(posted["Location"]).content.decode()  # finished: no more polling
        assert Invoice.objects.filter(cycle__code="M1").count() == 1

        # M1's run finished, so M1 is queued again (its accounts are invoiced already); then nothing
        # is left to queue and the form says why, per cycle.
        assert client.post("/billing/billrun/add/", {"cycle": "", "period": "2025-03"}).status_code == 302
        assert BillRun.objects.filter(cycle__code="M1").count() == 2
        again = client.post("/billing/billrun/add/", {"cycle": "", "period": "2025-03"})
        assert again.status_code == 200
        html = again.content.decode()
        assert "M1: A bill run of cycle M1 for 2025-03 is already queued" in html
        assert "M15: A bill run of cycle M15 for 2025-03 is already queued" in html
        assert BillRun.objects.count() == 3

        # One cycle chosen: the run's own page, as before.
        single = client.post("/billing/billrun/add/", {"cycle": m1.cycle.pk, "period": "2025-03", "dry_run": "on"})
        assert single.status_code == 302 and single["Location"].startswith("/billing/billrun/")
        assert "queued" not in single["Location"]


def test_enqueue_from_the_command_line_reports_refused_cycles():
    with clock.travel_to(at(2025, 3, 1)) as c:
        three_cycles(c, 20)
        billrun.enqueue(actor=ACTOR, period="2025-03", cycle="M1")
        out = io.StringIO()
        call_command("billing", "run", "--period", "2025-03", "--enqueue", stdout=out)
        result = json.loads(out.getvalue())
        assert [r["cycle"] for r in result["queued"]] == ["M15"]
        assert [(r["cycle"], r["code"]) for r in result["refused"]] == [("M1", "run_in_progress")]
        with pytest.raises(CommandError, match="nothing_queued"):
            call_command("billing", "run", "--period", "2025-03", "--enqueue", stdout=io.StringIO())
