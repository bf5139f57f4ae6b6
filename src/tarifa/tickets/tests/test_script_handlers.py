"""Script handlers (tarifa.scripts): a script vetoes a move, a failing script leaves the ticket
unchanged with the failure recorded, a script's service call is part of the move."""

import pytest

from tarifa.scripts import services as scripts
from tarifa.scripts.models import ScriptRun
from tarifa.subscriptions.models import Subscription
from tarifa.tickets import services
from tarifa.tickets.handlers import HandlerFailed, Veto
from tarifa.tickets.models import FlowEntry

from .helpers import ACTOR, open_activation, world

VETO = """
local acc = account(context.ticket.account)
if tonumber(acc.balance) < 1000 then
  return {veto = "balance " .. acc.balance .. " is below 1000"}
end
return {}
"""
RAISES = 'error("no port free on the switch")'
LOOPS = "while true do end"
COMMENTS = 'ticket_comment(context.ticket.number, "checked by script at " .. context.move.to, true)\nreturn {ok = true}'


def _flow_with_script(source, phase, *, code="check"):
    tariffs, account, tt, steps = world()
    scripts.create_script(actor=ACTOR, code=code, name=code, source=source)
    services.add_handler(actor=ACTOR, step=steps["active"], kind="script", phase=phase, parameters={"script": code},
                         order=1)
    ticket = open_activation(tt, account, tariffs["NET-31"])
    services.advance(ticket, actor=ACTOR, from_step="new", to_step="install")
    return ticket


def _move(ticket):
    return services.advance(ticket, actor=ACTOR, from_step="install", to_step="active", data={"login": "scr"})


def test_a_script_pre_handler_vetoes_and_its_run_is_kept(transactional_db):
    ticket = _flow_with_script(VETO, "pre")
    with pytest.raises(Veto) as exc:
        _move(ticket)
    assert "below 1000" in exc.value.message
    ticket.refresh_from_db()
    assert ticket.step.code == "install" and not Subscription.objects.exists()
    assert FlowEntry.objects.filter(ticket=ticket, kind="vetoed", error__contains="below 1000").exists()
    run = ScriptRun.objects.get(script__code="check")
    assert run.outcome == "ok" and ticket.number in run.purpose


@pytest.mark.parametrize("source,outcome", [(RAISES, "failed"), (LOOPS, "killed")])
def test_a_failing_script_leaves_the_ticket_unchanged_and_is_recorded(transactional_db, source, outcome):
    ticket = _flow_with_script(source, "post")
    with pytest.raises(HandlerFailed) as exc:
        _move(ticket)
    assert exc.value.code == "handler_failed" and "Script check failed" in exc.value.message
    ticket.refresh_from_db()
    assert ticket.step.code == "install" and ticket.closed_at is None and ticket.data == {}
    assert not Subscription.objects.exists()
    assert "Script check failed" in ticket.last_error
    assert FlowEntry.objects.filter(ticket=ticket, kind="failed").count() == 1
    assert ScriptRun.objects.get(script__code="check").outcome == outcome


def test_a_script_post_handler_calls_a_ticket_function_in_the_move(db):
    ticket = _flow_with_script(COMMENTS, "post")
    ticket = _move(ticket)
    assert ticket.step.code == "active" and Subscription.objects.get().status == "active"
    assert ticket.comments.filter(text="checked by script at active", internal=True).exists()
    moved = FlowEntry.objects.filter(ticket=ticket, kind="moved").last()
    assert moved.results[0]["kind"] == "script" and moved.results[0]["value"] == {"ok": True}
