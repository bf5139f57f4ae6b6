"""Demo scripts: a ticket pre-handler that vetoes an activation on a low balance, and a nightly
statistics script; one test run of each."""

from tarifa.subscriptions.models import Subscription

from . import services
from .models import Script

BALANCE_CHECK = """\
-- Pre-handler of an activation ticket: veto it while the account's balance is below the minimum.
-- context.ticket.account names the account (or context.account, or the ticket's customer's first);
-- context.ticket.min_balance (or context.min_balance) overrides the minimum.
local MIN_BALANCE = 10

local ticket = context.ticket or {}
local number = context.account or ticket.account
if not number and ticket.customer then
  number = customer(ticket.customer).accounts[1]
end
if not number then
  return {veto = "The ticket names no account."}
end

local acc = account(number)
local minimum = tonumber(ticket.min_balance or context.min_balance) or MIN_BALANCE
local balance = tonumber(acc.balance)
log("account", acc.number, "balance", acc.balance, acc.currency, "minimum", minimum)
if balance < minimum then
  return {veto = string.format("The balance of %s is %.2f %s, below the %.2f %s needed to activate.",
                               acc.number, balance, acc.currency, minimum, acc.currency)}
end
return {}
"""

NIGHTLY_STATISTICS = """\
-- Every night at 02:30: how many subscriptions are in each state, in the run log.
local counts = {}
for _, status in ipairs({"pending", "active", "suspended", "terminated"}) do
  counts[status] = count_subscriptions{status = status}
  log(status, counts[status])
end
return counts
"""


def load(*, actor) -> dict:
    if not Script.objects.filter(code="balance_check").exists():
        script = services.create_script(actor=actor, code="balance_check", name="Balance check before activation",
                                        description="Vetoes an activation ticket while the account's balance is "
                                                    "below 10 in its currency.",
                                        source=BALANCE_CHECK.replace("MIN_BALANCE = 10", "MIN_BALANCE = 5"),
                                        note="First version: a minimum of 5.")
        services.update_script(script, actor=actor, source=BALANCE_CHECK, note="The minimum is 10 now.")
    if not Script.objects.filter(code="nightly_statistics").exists():
        services.create_script(actor=actor, code="nightly_statistics", name="Nightly subscription statistics",
                               description="Counts subscriptions by state every night.", kind="scheduled",
                               schedule="30 2 * * *", source=NIGHTLY_STATISTICS)
    check = Script.objects.get(code="balance_check")
    sub = Subscription.objects.select_related("billing_account").order_by("number").first()
    if sub is not None and not check.runs.exists():
        services.run_script(script=check, actor=actor, dry_run=True, purpose="demo: test against a sample ticket",
                            context={"ticket": {"account": sub.billing_account.number}})
        services.run_script(script="nightly_statistics", actor="system", purpose="demo: a nightly run")
    return {"scripts": Script.objects.count()}
