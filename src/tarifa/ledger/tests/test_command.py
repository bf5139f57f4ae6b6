"""`tarifa ledger check`: a JSON summary on success; exit 1 naming the offenders when an invariant fails."""

import json
from io import StringIO
from unittest import mock

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


def run_as_from_the_shell(*argv):
    """The command as `tarifa ledger …` runs it (BaseCommand.run_from_argv without its closing of
    the connections): the options parsed as from the shell, so `execute` runs Django's system checks
    (BaseCommand.check) first, as from the shell — call_command skips them."""
    from django.core.management import load_command_class

    out, err = StringIO(), StringIO()
    command = load_command_class("tarifa.ledger", "ledger")
    options = vars(command.create_parser("tarifa", "ledger").parse_args(list(argv)))
    assert options["skip_checks"] is False
    command.execute(*options.pop("args", ()), stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def refusing_the_ledger_check():
    from tarifa.ledger import selectors

    def refuse():
        raise AssertionError("the ledger check ran")

    return mock.patch.object(selectors, "check_ledger", refuse)


def test_balance_does_not_run_the_ledger_check():
    """Issue 10 item 18: the command's `check` method overrode BaseCommand.check, which Django calls
    before every command, so asking for one balance ran (and printed) the whole ledger check."""
    account = f.account()
    f.pay(account, "10")
    with refusing_the_ledger_check():
        out, _err = run_as_from_the_shell("balance", account.number)
    report = json.loads(out)  # exactly one JSON document: the balance, no check summary before it
    assert report["number"] == account.number and report["currency"] == "USD"
    assert "checks" not in out and "transfers" not in out


def test_expire_holds_does_not_run_the_ledger_check():
    with refusing_the_ledger_check():
        out, _err = run_as_from_the_shell("expire-holds")
    assert json.loads(out)["expired"] == 0


def test_check_from_the_shell_runs_once():
    account = f.account()
    f.pay(account, "3")
    out, _err = run_as_from_the_shell("check")
    assert json.loads(out)["ok"] is True  # one JSON document (it was printed twice: once by Django's check)
