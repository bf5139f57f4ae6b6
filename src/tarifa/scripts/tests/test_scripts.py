"""Scripts: the sandbox's limits, the functions a script calls (permission, transaction), dry runs,
versions and the schedule."""

import datetime as dt
import time

import pytest
from django.db import connection, transaction

from tarifa.kernel.clock import travel_to
from tarifa.kernel.errors import DomainError, ValidationFailed
from tarifa.scripts import sandbox, services
from tarifa.scripts.models import ScriptRun, ScriptVersion
from tarifa.subscriptions import services as subscriptions
from tarifa.subscriptions.tests.helpers import customer_account, make_catalog, pay

pytestmark = pytest.mark.django_db

CPU_MS = 300
GRACE_MS = 1000
# What a killed run may take, on a busy machine: the sandbox's wall-clock limit, and a margin for
# starting the replacement process and the bookkeeping around the run.
MARGIN_S = 3.0


@pytest.fixture(autouse=True)
def limits(settings):
    settings.TARIFA_SCRIPT_CPU_MS = CPU_MS
    settings.TARIFA_SCRIPT_GRACE_MS = GRACE_MS
    sandbox.pool.fill()
    # A warm pool: the process start (Python and Lua) is not part of a run's time.
    assert sandbox.execute("return 1").ok


def make(code, source, **kw):
    return services.create_script(actor="test", code=code, name=code.replace("_", " ").title(), source=source, **kw)


def timed(**kwargs):
    started = time.monotonic()
    result = services.run_script(actor="system", **kwargs)
    return result, time.monotonic() - started


def wall_bound():
    return sandbox.wall_limit_ms(CPU_MS, GRACE_MS) / 1000 + MARGIN_S


@pytest.fixture
def live():
    """An active Net 31 subscription on a prepaid account with 100 EUR."""
    tariffs = make_catalog(start=dt.date(2024, 1, 1))
    account = customer_account()
    pay(account, "100")
    sub = subscriptions.create_subscription(actor="test", billing_account=account, tariff=tariffs["NET-31"],
                                            login=f"user-{account.number}", activate=True)
    return sub


# Limits ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source, reason", [
    ("while true do end", "CPU-time budget"),
    ("while true do pcall(function() while true do end end) end", "CPU-time budget"),
    ("local t = {} for i = 1, 1e10 do t[i] = i end", "memory limit"),
    ("local s = 'x' while true do s = s .. s end", "memory limit"),
    ("local function f(n) return f(n + 1) + 1 end return f(1)", ""),
], ids=["infinite-loop", "loop-inside-pcall", "huge-table", "string-doubling", "deep-recursion"])
def test_runaway_scripts_are_stopped_within_the_limit(source, reason):
    script = make("runaway", source)
    result, elapsed = timed(script=script)
    assert not result.ok and result.outcome == ScriptRun.Outcome.KILLED, result.error
    assert reason in result.error
    assert elapsed < wall_bound(), f"{elapsed:.2f}s"
    run = ScriptRun.objects.get(pk=result.run.pk)
    assert run.outcome == "killed" and run.error == result.error and run.duration_ms < wall_bound() * 1000
    # The parent and the database carry on.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert services.run_script(script=make("after", "return 6 * 7"), actor="system").value == 42


def test_work_that_escapes_the_hook_is_killed_by_the_parent_and_the_process_replaced():
    """A pathological pattern match runs in C, where the instruction hook never fires: the parent's
    wall-clock limit kills the process, and a new one takes its place."""
    before = set(sandbox.pool.pids())
    script = make("backtrack", "return string.find(string.rep('a', 40), string.rep('a*', 40) .. 'b')")
    result, elapsed = timed(script=script)
    # the parent's wall clock, or on a busy machine the process's own CPU-time limit, ends it
    assert result.outcome == "killed" and ("killed: no result within" in result.error
                                           or "CPU-time limit of the sandbox reached" in result.error), result.error
    assert elapsed < wall_bound()
    after = services.run_script(script=make("fine", "return 'fine'"), actor="system")
    assert after.value == "fine"
    assert set(sandbox.pool.pids()) != before


def test_a_script_that_raises_is_recorded_as_failed():
    result = services.run_script(script=make("boom", "log('before')\nerror('boom: no luck')"), actor="system")
    assert not result.ok and result.outcome == "failed"
    assert "boom: no luck" in result.error and "script:2" in result.error
    run = ScriptRun.objects.get(pk=result.run.pk)
    assert run.log == ["before"] and run.outcome == "failed"


def test_the_sandbox_offers_no_file_network_or_loader():
    source = """
    local found = {}
    for _, name in ipairs({"io", "require", "load", "loadfile", "dofile", "package", "debug", "collectgarbage",
                           "python", "coroutine"}) do
      if _G[name] ~= nil then found[#found + 1] = name end
    end
    if os.execute or os.getenv or os.remove or string.dump then found[#found + 1] = "os/string" end
    return {found = found, n = #found}
    """
    result = services.run_script(script=make("probe", source), actor="system")
    assert result.ok and result.value["n"] == 0, result.value


def test_context_in_and_value_out():
    source = "log('hello', context.customer.number) return {doubled = context.n * 2, list = {1, 2}, ok = true}"
    result = services.run_script(script=make("echo", source), actor="system",
                                 context={"n": 21, "customer": {"number": "HQ-C1"}})
    assert result.value == {"doubled": 42, "list": [1, 2], "ok": True}
    assert result.log == ["hello HQ-C1"]


# Functions: permission and transaction -------------------------------------------------------------

SUSPEND = "local s = suspend(context.subscription, 'by script') return s.status"


def test_an_allowed_call_works_and_rolls_back_with_the_caller(live, make_user):
    user = make_user("subscriptions.suspend_subscription", "subscriptions.view_subscription", password=None)
    script = make("suspender", SUSPEND)
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            result = services.run_script(script=script, actor=user, context={"subscription": live.number},
                                         purpose="ticket pre-handler")
            assert result.ok and result.value == "suspended"
            live.refresh_from_db()
            assert live.status == "suspended"
            assert result.run.calls[0]["function"] == "suspend" and result.run.calls[0]["ok"]
            raise RuntimeError("the caller rolls back")
    live.refresh_from_db()
    assert live.status == "active"
    # The run was recorded in the transaction that rolled back: keep() records it again.
    assert not ScriptRun.objects.filter(pk=result.run.pk).exists()
    result.keep()
    kept = ScriptRun.objects.get(pk=result.run.pk)
    assert kept.rolled_back and kept.purpose == "ticket pre-handler" and kept.actor == user.username


def test_a_forbidden_call_is_refused(live, make_user):
    user = make_user("subscriptions.view_subscription", password=None)
    result = services.run_script(script=make("suspender", SUSPEND), actor=user,
                                 context={"subscription": live.number})
    assert not result.ok and result.outcome == "failed"
    assert "subscriptions.suspend_subscription" in result.error and "permission_denied" in result.error
    live.refresh_from_db()
    assert live.status == "active"
    assert result.run.calls == [{"function": "suspend", "args": [live.number, "by script"], "kwargs": {},
                                 "ok": False, "error": result.run.calls[0]["error"],
                                 "ms": result.run.calls[0]["ms"]}]
    # A script may handle the refusal itself.
    handled = services.run_script(
        script=make("careful", "local ok, err = pcall(suspend, context.subscription) return {ok = ok, err = err}"),
        actor=user, context={"subscription": live.number})
    assert handled.ok and handled.value["ok"] is False and "permission_denied" in handled.value["err"]


def test_reading_functions(live, make_user):
    user = make_user("crm.view_customer", "ledger.view_billingaccount", "subscriptions.view_subscription",
                     password=None)
    source = """
    local sub = subscription(context.subscription)
    local acc = account(sub.account)
    local c = customer(acc.customer)
    local subs = subscriptions{owner = c.number, status = "active"}
    return {status = sub.status, tariff = sub.tariff, balance = acc.balance, currency = acc.currency,
            name = c.name, n = #subs, today = today()}
    """
    result = services.run_script(script=make("reader", source), actor=user, context={"subscription": live.number})
    assert result.ok, result.error
    value = result.value
    assert value["status"] == "active" and value["tariff"] == "NET-31" and value["currency"] == "EUR"
    assert value["n"] == 1 and value["name"].startswith("Ivan")
    live.billing_account.ledger_account.refresh_from_db()
    assert value["balance"] == f"{live.billing_account.ledger_account.balance:.2f}"


def test_a_failed_script_leaves_no_effect(live):
    source = SUSPEND.replace("return s.status", "error('after the call')")
    result = services.run_script(script=make("half", source), actor="system", context={"subscription": live.number})
    assert result.outcome == "failed" and result.run.calls[0]["ok"]
    live.refresh_from_db()
    assert live.status == "active" and result.run.rolled_back


def test_a_dry_run_leaves_the_database_unchanged(live, admin_user):
    script = make("suspender", SUSPEND)
    run = services.test_script(script, actor=admin_user, context={"subscription": live.number})
    assert run.dry_run and run.outcome == "ok" and run.value == "suspended" and run.rolled_back
    live.refresh_from_db()
    assert live.status == "active" and not live.suspensions.exists()


def test_a_read_only_run_is_offered_no_writing_function(live):
    result = services.run_script(script=make("suspender", SUSPEND), actor="system", allow_writes=False,
                                 context={"subscription": live.number})
    assert not result.ok and "suspend" in result.error


def test_the_balance_veto_example(live):
    from tarifa.scripts.demo import BALANCE_CHECK

    script = make("balance_check", BALANCE_CHECK)
    ok = services.run_script(script=script, actor="system", context={"ticket": {"account": live.billing_account.number,
                                                                                  "min_balance": "10"}})
    assert ok.ok and ok.value == {}, ok.error
    veto = services.run_script(script=script, actor="system", context={"ticket": {"account": live.billing_account.number,
                                                                                    "min_balance": "1000"}})
    assert veto.ok and "below" in veto.value["veto"]


# Versions ----------------------------------------------------------------------------------------

def test_versions_are_numbered_immutable_and_restored_as_new_ones():
    script = make("versioned", "return 1")
    assert script.current_version.number == 1
    script = services.update_script(script, actor="test", source="return 2", note="two")
    assert script.current_version.number == 2 and script.source == "return 2"
    services.update_script(script, actor="test", source="return 2", name="Same source")  # no new version
    assert script.versions.count() == 2
    v1 = script.versions.get(number=1)
    restored = services.restore_version(v1, actor="test")
    script.refresh_from_db()
    assert restored.number == 3 and script.current_version == restored and restored.source == "return 1"
    assert "version 1" in restored.note
    assert services.run_script(script=script, actor="system").value == 1
    assert services.run_script(script=script, actor="system", version=script.versions.get(number=2),
                               dry_run=True).value == 2
    with pytest.raises(DomainError):
        services.restore_version(restored, actor="test")
    assert list(ScriptVersion.objects.filter(script=script).values_list("number", flat=True)) == [3, 2, 1]


def test_syntax_errors_and_bad_schedules_are_refused():
    with pytest.raises(ValidationFailed) as err:
        make("broken", "if true then return 1")
    assert err.value.code == "syntax_error" and "'end' expected" in err.value.fields["source"][0]
    with pytest.raises(ValidationFailed) as err:
        make("sched", "return 1", kind="scheduled", schedule="every day")
    assert err.value.code == "invalid_schedule"
    with pytest.raises(ValidationFailed):
        make("handler", "return 1", schedule="0 3 * * *")


def test_an_inactive_script_does_not_run_but_can_be_tested(admin_user):
    script = make("off", "return 'x'", active=False)
    with pytest.raises(DomainError) as err:
        services.run_script(script=script, actor="system")
    assert err.value.code == "script_inactive"
    assert services.test_script(script, actor=admin_user).value == "x"


# Schedule ----------------------------------------------------------------------------------------

def test_a_scheduled_script_runs_once_per_slot(settings):
    settings.TIME_ZONE = "UTC"
    start = dt.datetime(2026, 3, 1, 2, 50, tzinfo=dt.UTC)
    with travel_to(start) as clock:
        script = make("nightly", "log('counted', context.scheduled_at) return {at = context.scheduled_at}",
                      kind="scheduled", schedule="0 3 * * *")
        assert services.run_due_scripts() == []
        clock.add(dt.timedelta(minutes=10))  # 03:00
        runs = services.run_due_scripts()
        assert len(runs) == 1 and runs[0].actor == "system" and runs[0].value == {"at": "2026-03-01T03:00:00+00:00"}
        clock.add(dt.timedelta(minutes=5))
        assert services.run_due_scripts() == []
        clock.add(dt.timedelta(days=2))  # two slots missed: run once
        assert len(services.run_due_scripts()) == 1
        assert services.run_due_scripts() == []
    script.refresh_from_db()
    assert script.runs.count() == 2 and script.last_scheduled_at == dt.datetime(2026, 3, 3, 3, 0, tzinfo=dt.UTC)
