"""Batches from the queue: two real `tarifa worker` processes take one bill run (and one daily charge
day); one is SIGKILLed in the middle of a batch; the other takes the dead one's batch over, the run
completes, and every account is invoiced (every subscription charged) exactly once — the billing
check and the ledger check hold. No fixed sleeps: the database's state is polled with a deadline."""

import datetime as dt
import os
import signal
import subprocess
import time
import urllib.parse

import pytest
from django.core.management import call_command
from django.db import connection

from tarifa.billing import billrun, services
from tarifa.billing.check import check
from tarifa.billing.models import BillRun, BillRunBatch, Invoice, InvoicedSource
from tarifa.kernel.clock import now, today
from tarifa.ledger.models import BillingAccount, Transfer
from tarifa.ledger.selectors import check_ledger
from tarifa.testing.processes import TARIFA, child_env, free_port

ACCOUNTS = 300
DEADLINE_S = 300


def database_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL") or os.environ["DATABASE_URL"]
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


def scalar(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


class Workers:
    """Two `tarifa worker` processes on the billing queue, one job at a time each."""

    def __init__(self):
        env = child_env(database_url(), free_port())
        env.update(TARIFA_CONN_MAX_AGE="0", TARIFA_BILLRUN_BATCH="10", TARIFA_CHARGE_BATCH="10")
        # Each worker's database sessions carry its name (libpq's PGAPPNAME): found in pg_stat_activity
        # whether the server is reached over TCP or, as the embedded one, over a Unix socket.
        self.names = [f"test-worker-{os.getpid()}-{i}" for i in range(2)]
        self.procs = [subprocess.Popen([str(TARIFA), "worker", "--queues", "billing", "--concurrency", "1"],
                                       env={**env, "PGAPPNAME": name}, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, start_new_session=True)
                      for name in self.names]

    def writing(self, proc) -> bool:
        """The worker is inside a batch: one of its database sessions has written in an open transaction."""
        if proc.poll() is not None:
            return False
        name = self.names[self.procs.index(proc)]
        return bool(scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
                           " AND backend_xid IS NOT NULL AND state IN ('active', 'idle in transaction')", [name]))

    def kill_one_mid_batch(self, progress, at_least, deadline) -> int:
        """SIGKILL a worker while it is inside a batch, once `progress()` reached `at_least`."""
        while time.monotonic() < deadline:
            for p in self.procs:
                assert p.poll() is None, p.stderr.read().decode()[-3000:]
            if progress() >= at_least:
                for i, p in enumerate(self.procs):
                    if self.writing(p):
                        os.killpg(p.pid, signal.SIGKILL)
                        assert p.wait(30) == -signal.SIGKILL
                        return i
            time.sleep(0.01)
        raise AssertionError("no worker was caught inside a batch")

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)


def wait_for(condition, deadline, what):
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in time")


@pytest.fixture
def world():
    since = (today().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    call_command("demo", "synth", accounts=ACCOUNTS, seed=5, since=str(since), bill_cycle_days="",
                 stdout=open(os.devnull, "w"))
    return since


@pytest.mark.django_db(transaction=True)
def test_two_workers_one_killed_mid_batch_bill_run_completes_exactly_once(world):
    cycle = services.create_cycle(actor="test", code="WRK", name="Workers", day_of_month=1)
    assert services.assign_accounts_bulk(actor="test", cycle=cycle) == ACCOUNTS
    period = services.last_closed_period(cycle, today())
    workers = Workers()
    try:
        [run] = billrun.enqueue(actor="test", period=period, cycle=cycle.code)
        deadline = time.monotonic() + DEADLINE_S
        killed = workers.kill_one_mid_batch(
            lambda: scalar("SELECT count(*) FROM billing_invoice WHERE kind = 'invoice'"), ACCOUNTS // 10, deadline)
        survivor = workers.procs[1 - killed]
        assert scalar("SELECT count(*) FROM billing_invoice WHERE kind = 'invoice'") < ACCOUNTS * 0.9, \
            "killed too late to prove anything"
        wait_for(lambda: BillRun.objects.get(pk=run.pk).status != BillRun.Status.RUNNING
                 or survivor.poll() is not None, deadline, "the bill run's end")
        assert survivor.poll() is None, survivor.stderr.read().decode()[-3000:]
    finally:
        workers.stop()
    run.refresh_from_db()
    assert run.status == BillRun.Status.FINISHED, run.error
    # The dead worker's job is left doing (`kernel.retry_stalled_jobs` would requeue it); its batch was taken over.
    assert scalar("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'"
                  " AND task_name IN ('billing.bill_run', 'billing.bill_run_batch')") == 1
    assert not BillRunBatch.objects.filter(run=run, done=False).exists()
    assert BillRunBatch.objects.filter(run=run).count() >= ACCOUNTS // 10
    empty = run.summary["skipped"]
    assert set(run.summary["skipped_reasons"]) <= {"nothing_to_invoice"}
    assert run.summary["invoiced"] + empty == ACCOUNTS == run.done
    assert scalar("SELECT count(*) FROM (SELECT billing_account_id FROM billing_invoice WHERE kind = 'invoice'"
                  " GROUP BY 1 HAVING count(*) <> 1) x") == 0
    assert Invoice.objects.filter(kind="invoice", period=period).count() == ACCOUNTS - empty
    assert BillingAccount.objects.exclude(invoices__period=period).count() == empty
    assert InvoicedSource.objects.count() == Transfer.objects.filter(
        pk__in=InvoicedSource.objects.values("source_id")).count()
    numbers = sorted(int(n[-7:]) for n in Invoice.objects.filter(kind="invoice").values_list("number", flat=True))
    assert numbers == list(range(1, ACCOUNTS - empty + 1))  # gap-free across workers and the dead one
    result = check(period=period)
    assert result["ok"], result["problems"][:5]
    assert check_ledger()["ok"]


@pytest.mark.django_db(transaction=True)
def test_two_workers_one_killed_mid_batch_daily_charge_completes_exactly_once(world):
    from tarifa.subscriptions import daily
    from tarifa.subscriptions.models import ChargeBatch, ChargeRun
    from tarifa.subscriptions.tasks import daily_charge

    expected = daily.preview(as_of=today(), actor="test")
    assert expected["inserted"] > ACCOUNTS // 2, expected  # today's fees are still to charge
    started = now()
    workers = Workers()
    try:
        daily_charge.defer(timestamp=int(time.time()))
        deadline = time.monotonic() + DEADLINE_S
        killed = workers.kill_one_mid_batch(
            lambda: scalar("SELECT count(*) FROM subscriptions_chargebatch WHERE done"), 3, deadline)
        survivor = workers.procs[1 - killed]
        assert ChargeBatch.objects.filter(done=False).exists(), "killed too late to prove anything"
        wait_for(lambda: ChargeRun.objects.filter(as_of=today(), finished_at__isnull=False,
                                                  batches__isnull=False).exists() or survivor.poll() is not None,
                 deadline, "the daily charge's end")
        assert survivor.poll() is None, survivor.stderr.read().decode()[-3000:]
    finally:
        workers.stop()
    record = ChargeRun.objects.filter(batches__isnull=False).distinct().get()
    assert scalar("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'"
                  " AND task_name IN ('subscriptions.daily_charge', 'subscriptions.charge_batch')") == 1
    assert not ChargeBatch.objects.filter(run=record, done=False).exists()
    assert ChargeBatch.objects.filter(run=record).count() >= ACCOUNTS // 10
    assert (record.inserted, record.refused) == (expected["inserted"], expected["refused"])
    assert Transfer.objects.filter(kind="charge", created_at__gte=started).count() == expected["charges"]
    # Charged exactly once: the same day again charges nothing.
    assert daily.run(as_of=today(), actor="test")["inserted"] == 0
    assert check_ledger()["ok"]
