"""A real `tarifa billing run` process, SIGKILLed mid-way, then run again: exactly one invoice per
account, nothing billed twice, `tarifa billing check` and `tarifa ledger check` pass."""

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from tarifa.billing import services
from tarifa.billing.check import check
from tarifa.billing.models import Invoice, InvoicedSource
from tarifa.kernel.clock import today
from tarifa.ledger.models import BillingAccount, Transfer
from tarifa.ledger.selectors import check_ledger

TARIFA = Path(sys.executable).with_name("tarifa")
ACCOUNTS = 400


def database_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL") or os.environ["DATABASE_URL"]
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


def count_invoices() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM billing_invoice WHERE kind = 'invoice'")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_bill_run_killed_mid_way_resumes_without_duplicates():
    since = (today().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    call_command("demo", "synth", accounts=ACCOUNTS, seed=7, since=str(since), bill_cycle_days="",
                 stdout=open(os.devnull, "w"))
    cycle = services.create_cycle(actor="test", code="CRASH", name="Crash test", day_of_month=1)
    assert services.assign_accounts_bulk(actor="test", cycle=cycle) == ACCOUNTS
    period = services.last_closed_period(cycle, today())
    env = {**os.environ, "DATABASE_URL": database_url(), "TARIFA_CONN_MAX_AGE": "0"}
    env.pop("TEST_DATABASE_URL", None)
    args = [str(TARIFA), "billing", "run", "--period", period, "--jobs", "2", "--batch-size", "5", "--no-progress"]
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    killed_at = None
    while time.monotonic() < deadline:
        n = count_invoices()
        if n >= 40:
            os.killpg(first.pid, signal.SIGKILL)  # the run and its worker processes, at once
            killed_at = n
            break
        if first.poll() is not None:
            break
        time.sleep(0.02)
    first.wait(30)
    out, err = first.communicate()
    assert killed_at is not None, f"the run ended before it was killed: {first.returncode} {err.decode()[-2000:]}"
    assert first.returncode == -signal.SIGKILL
    assert count_invoices() < ACCOUNTS, "killed too late to prove anything"
    time.sleep(0.5)  # the killed sessions' backends go away; their locks with them
    second = subprocess.run(args, env=env, capture_output=True, timeout=300)
    assert second.returncode == 0, second.stderr.decode()[-3000:]
    import json

    summary = json.loads(second.stdout)
    # Accounts with nothing to invoice get no zero invoice: skipped with the reason (both runs).
    empty = summary["skipped"]
    assert summary["already_invoiced"] >= killed_at and set(summary["skipped_reasons"]) <= {"nothing_to_invoice"}
    assert summary["invoiced"] + summary["already_invoiced"] + empty == ACCOUNTS
    with connection.cursor() as cursor:
        cursor.execute("SELECT billing_account_id, count(*) FROM billing_invoice WHERE kind = 'invoice'"
                       " GROUP BY 1 HAVING count(*) <> 1")
        assert cursor.fetchall() == []
    assert Invoice.objects.filter(kind="invoice", period=period).count() == ACCOUNTS - empty
    assert BillingAccount.objects.exclude(invoices__period=period).count() == empty
    # No source on two lines (the primary key says so), no ledger posting twice (unique keys), numbers gap-free.
    assert InvoicedSource.objects.count() == Transfer.objects.filter(pk__in=InvoicedSource.objects.values(
        "source_id")).count()
    numbers = sorted(int(n[-7:]) for n in Invoice.objects.filter(kind="invoice").values_list("number", flat=True))
    assert numbers == list(range(1, ACCOUNTS - empty + 1))
    result = check(period=period)
    assert result["ok"], result["problems"][:5]
    assert check_ledger()["ok"]
    from django.core.management import get_commands

    if "ledger" in get_commands():  # `tarifa ledger check`, the ledger's own command
        ledger_check = subprocess.run([str(TARIFA), "ledger", "check"], env=env, capture_output=True, timeout=120)
        assert ledger_check.returncode == 0, ledger_check.stdout.decode()[-2000:]
