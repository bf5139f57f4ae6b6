"""Demo billing: two cycles, the demo accounts in them, last month's bill run, a draft, a credit note,
pending items, an operator's template, a dunning ladder and a step taken. Through the services.
Loading twice changes nothing."""

import datetime as dt

from tarifa.kernel.clock import today
from tarifa.kernel.errors import DomainError
from tarifa.ledger import services as ledger
from tarifa.ledger.models import BillingAccount

from . import billrun, dunning, services
from .models import BillCycle, DocumentTemplate, Invoice

STATEMENT_TEMPLATE = """<!doctype html><html><head><meta charset="utf-8">{{ style }}</head>
<body><h1>{{ operator.name }} — statement of account {{ account.number }}</h1>
<p>{{ customer.display_name }}, {{ start|date:"Y-m-d" }} – {{ end|date:"Y-m-d" }}</p>
<table><tr><td>Opening balance</td><td class="num">{{ opening|floatformat:2 }}</td></tr>
{% for e in entries %}<tr><td>{{ e.at|date:"Y-m-d" }} {{ e.kind }} {{ e.memo }}</td><td class="num">{{ e.amount|floatformat:2 }}</td></tr>{% endfor %}
<tr><td>Closing balance</td><td class="num">{{ closing|floatformat:2 }} {{ account.currency }}</td></tr></table>
</body></html>"""


def load(*, actor) -> dict:
    if BillCycle.objects.filter(code="MONTHLY-1").exists():
        return {"invoices": Invoice.objects.count()}
    monthly = services.create_cycle(actor=actor, code="MONTHLY-1", name="Monthly, from the 1st", day_of_month=1,
                                    invoice_date_offset_days=1, payment_terms_days=14, rounding="line")
    mid = services.create_cycle(actor=actor, code="MID-15", name="Monthly, from the 15th (reviewed drafts)",
                                day_of_month=15, invoice_date_offset_days=0, payment_terms_days=30,
                                rounding="invoice", auto_issue=False)
    accounts = list(BillingAccount.objects.filter(status="active").select_related("customer").order_by("number"))
    if not accounts:
        return {"cycles": 2}
    period = services.last_closed_period(monthly, today())
    for i, account in enumerate(accounts):
        services.assign_cycle(actor=actor, billing_account=account, cycle=mid if i == len(accounts) - 1 else monthly)
    first = accounts[0]
    services.add_pending_item(actor=actor, billing_account=first, kind="one_time_fee", description="Router (demo)",
                              amount="49.00", service_type="internet" if _has_type("internet") else "", day=today())
    services.add_pending_item(actor=actor, billing_account=first, kind="discount", description="Welcome discount",
                              amount="-10.00", day=today())
    for account in accounts[1:3]:
        services.add_pending_item(actor=actor, billing_account=account, kind="one_time_fee",
                                  description="Installation (demo)", amount="150.00", day=today())
    # The demo accounts were opened today: last month's bill run finds none that lived in its
    # period (they are counted as skipped); what they owe so far is billed by interim invoices
    # (the account's "Invoice now"), and the reviewed-drafts cycle's account gets a draft.
    for account in accounts[:-1]:
        try:
            services.bill_now(actor=actor, billing_account=account, reason="Demo: what is due so far")
        except DomainError as exc:
            if exc.code != "nothing_to_invoice":
                raise
    summary = billrun.run_period(actor=actor, period=period, cycle=monthly.code, jobs=1)
    services.add_pending_item(actor=actor, billing_account=accounts[-1], kind="one_time_fee",
                              description="Installation (demo)", amount="80.00", day=today())
    services.bill_now(actor=actor, billing_account=accounts[-1], reason="Demo draft for review", issue=False)
    services.add_pending_item(actor=actor, billing_account=accounts[min(1, len(accounts) - 1)], kind="adjustment",
                              description="Installation visit (next invoice)", amount="25.00", day=today())
    invoice = Invoice.objects.filter(billing_account=first, kind="invoice").exclude(state="draft").first()
    if invoice is not None and invoice.total > 0:
        cash = ledger.system_account("cash:DEMO", first.currency)
        ledger.post_transfer(actor=actor, debit=cash, credit=first, amount="20.00", currency=first.currency,
                             kind="payment", idempotency_key=f"demo-billing-pay-{first.number}")
        services.allocate_account(account=first, actor=actor)
        invoice.refresh_from_db()
        services.credit_invoice(invoice, actor=actor, amount="5.00", reason="Service outage (demo)")
    services.create_template(actor=actor, kind="statement", language="en", body=STATEMENT_TEMPLATE,
                             note="A short statement (demo); archive it to get the shipped one back")
    policy = dunning.create_policy(actor=actor, code="STANDARD", name="Standard collections", customer_kind="",
                                   is_default=True, reevaluate_days=1)
    steps = [
        dunning.create_step(actor=actor, policy=policy, position=1, name="Reminder", min_days_overdue=1,
                            action="notify", template="reminder"),
        dunning.create_step(actor=actor, policy=policy, position=2, name="Late fee", min_days_overdue=10,
                            action="late_fee", late_fee="5.00"),
        dunning.create_step(actor=actor, policy=policy, position=3, name="Suspend", min_days_overdue=20,
                            action="suspend"),
        dunning.create_step(actor=actor, policy=policy, position=4, name="Terminate and hand over",
                            min_days_overdue=60, action="terminate"),
    ]
    dunning.apply_step(actor=actor, billing_account=accounts[-1], step=steps[0])
    dunning.assign_policy(actor=actor, billing_account=accounts[0], policy=policy)
    return {"cycles": 2, "invoices": Invoice.objects.count(), "period": period, "bill_run": summary["run" if "run" in summary else "runs"],
            "templates": DocumentTemplate.objects.count(), "dunning_steps": len(steps)}


def _has_type(code):
    from tarifa.catalog.models import ServiceType

    return ServiceType.objects.filter(code=code).exists()


__all__ = ["load", "dt"]
