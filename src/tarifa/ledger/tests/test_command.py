"""`tarifa ledger check`: a JSON summary on success; exit 1 naming the offenders when an invariant fails."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from tarifa.ledger import services

from . import factories as f

pytestmark = pytest.mark.usefixtures("ledger_ok")


def test_check_prints_the_summary_and_exits_zero():
    account = f.account()
    f.pay(account, "10")
    services.create_hold(actor="t", debit=account, credit=f.revenue(), amount="2", currency="USD",
                         idempotency_key="h1")
    out = StringIO()
    call_command("ledger", "check", stdout=out)
    report = json.loads(out.getvalue())
    assert report["ok"] is True
    assert (report["transfers"], report["holds"], report["moved"]) == (1, 1, {"USD": "10.000000"})


def test_check_exits_one_and_names_the_offenders():
    account = f.account()
    f.pay(account, "5")
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exited, transaction.atomic():  # the SystemExit rolls the damage back
        with connection.cursor() as cursor:
            cursor.execute("UPDATE ledger_ledgeraccount SET credits_posted = credits_posted + 1 WHERE id = %s",
                           [account.ledger_account_id])
        call_command("ledger", "check", stdout=out, stderr=err)
    assert exited.value.code == 1
    assert json.loads(out.getvalue())["ok"] is False
    assert "ledger check FAILED" in err.getvalue()
    assert f"account_totals: {account.ledger_account.code} USD" in err.getvalue()
    assert "debits_equal_credits: USD" in err.getvalue()


def test_check_passes_after_the_demo_data():
    call_command("demo", stdout=StringIO())  # every app's demo records, through the services
    out = StringIO()
    call_command("ledger", "check", stdout=out)
    report = json.loads(out.getvalue())
    assert report["ok"] is True, report["problems"]
    assert report["transfers"] > 0 and report["holds"] > 0 and report["moved"]
