"""Issue 10 item 3: no zero invoices, none for a period the account did not live in; billing
*now* — an interim invoice (screen action on the account, API, CLI) and the final invoice of a
customer who leaves (last subscription terminated, account closed), never billed twice."""

import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command

from tarifa.billing import billrun, services
from tarifa.billing.check import check
from tarifa.billing.models import Invoice
from tarifa.kernel import clock
from tarifa.kernel.errors import DomainError
from tarifa.ledger import services as ledger
from tarifa.ledger.selectors import check_ledger
from tarifa.subscriptions import daily
from tarifa.subscriptions import services as subs

from .helpers import ACTOR, at, customer_account, make_catalog, make_cycle, make_taxes, pay, run_events

pytestmark = pytest.mark.django_db

D = Decimal


def _account(cycle, **kw):
    account = customer_account(payment_mode="postpaid", credit_limit="1000", **kw)
    services.assign_cycle(actor=ACTOR, billing_account=account, cycle=cycle)
    return account


def test_invoices_add_refuses_a_period_the_account_did_not_live_in_and_zero_invoices(make_user, staff_client, api):
    with clock.travel_to(at(2025, 3, 10)) as c:
        make_catalog(start=dt.date(2025, 1, 1))
        cycle = make_cycle()
        account = _account(cycle)  # opened today, 10 March
        user = make_user("billing.add_invoice", "billing.view_invoice", "ledger.view_billingaccount")
        page = staff_client(user).post("/billing/invoice/add/", {"billing_account": account.pk, "period": "2025-02"})
        assert page.status_code == 200, page.get("Location")
        html = page.content.decode()
        assert "was opened on 2025-03-10, after period 2025-02 ended (2025-02-28)" in html
        answer = api(user).post("/api/v1/invoices/", {"billing_account": account.number, "period": "2025-02"},
                                format="json")
        assert answer.status_code == 409 and answer.json()["error"]["code"] == "opened_after_period"
        c.add_days(23)  # 2 April: March is closed, but nothing was charged in it
        answer = api(user).post("/api/v1/invoices/", {"billing_account": account.number, "period": "2025-03"},
                                format="json")
        assert answer.status_code == 409 and answer.json()["error"]["code"] == "nothing_to_invoice"
        assert "Zero invoices are not issued" in answer.json()["error"]["message"]
        from tarifa.kernel.models import DomainEvent

        assert not Invoice.objects.exists() and not DomainEvent.objects.filter(name="billing.invoice_issued").exists()


def test_bill_runs_skip_zero_invoices_and_accounts_that_did_not_live_in_the_period():
    with clock.travel_to(at(2025, 3, 1)) as c:
        make_catalog(start=dt.date(2025, 1, 1))
        cycle = make_cycle()
        charged, idle = _account(cycle), _account(cycle)
        services.add_pending_item(actor=ACTOR, billing_account=charged, kind="one_time_fee", description="Setup",
                                  amount="10.00", day=dt.date(2025, 3, 3))
        c.add_days(31)  # 1 April
        late = _account(cycle)  # opened in April: never billable for March
        summary = billrun.run_period(actor=ACTOR, period="2025-03", jobs=1)
        assert summary["invoiced"] == 1 and summary["skipped"] == 2, summary
        assert summary["skipped_reasons"] == {"nothing_to_invoice": 1, "opened_after_period": 1}
        assert list(Invoice.objects.values_list("billing_account", flat=True)) == [charged.pk]
        assert check(period="2025-03")["ok"], check(period="2025-03")["problems"]  # no "missing invoice" for idle
        assert idle.pk != late.pk


def test_interim_invoice_from_the_account_screen_api_and_cli_then_the_regular_one_starts_where_it_ended(
        make_user, staff_client, api):
    with clock.travel_to(at(2025, 3, 1)) as c:
        make_catalog(start=dt.date(2025, 1, 1))
        make_taxes()
        cycle = make_cycle()
        account = _account(cycle)
        services.add_pending_item(actor=ACTOR, billing_account=account, kind="one_time_fee", description="Router",
                                  amount="49.00", service_type="internet", day=dt.date(2025, 3, 5))
        c.add_days(9)  # 10 March
        user = make_user("billing.issue_invoice", "billing.view_invoice", "ledger.view_billingaccount")
        client = staff_client(user)
        detail = client.get(f"/ledger/billingaccount/{account.pk}/").content.decode()
        assert "/do/bill-now/" in detail
        posted = client.post(f"/ledger/billingaccount/{account.pk}/do/bill-now/",
                             {"purpose": "interim", "reason": "customer asked"})
        assert posted.status_code == 302, posted.content.decode()[:3000]
        interim = Invoice.objects.get(billing_account=account)
        assert posted["Location"] == f"/billing/invoice/{interim.pk}/"
        assert (interim.purpose, interim.period, interim.total, interim.state) == ("interim", "", D("49.00"), "issued")
        assert (interim.period_start, interim.period_end) == (dt.date(2025, 3, 1), dt.date(2025, 3, 10))
        assert interim.number.endswith("I0000001") and interim.due_date == dt.date(2025, 3, 24)
        # Nothing left: a second one is refused, on the screen and in the API.
        again = client.post(f"/ledger/billingaccount/{account.pk}/do/bill-now/", {"purpose": "interim"})
        assert again.status_code == 200 and "Nothing to invoice" in again.content.decode()
        refused = api(user).post("/api/v1/invoices/bill-now/", {"billing_account": account.number}, format="json")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "nothing_to_invoice"
        # More is charged; the API bills it.
        services.add_pending_item(actor=ACTOR, billing_account=account, kind="one_time_fee", description="Cable",
                                  amount="6.00", service_type="internet", day=dt.date(2025, 3, 12))
        c.add_days(3)  # 13 March
        made = api(user).post("/api/v1/invoices/bill-now/", {"billing_account": account.number, "reason": "move"},
                              format="json")
        assert made.status_code == 201, made.content
        body = made.json()
        assert (body["purpose"], body["total"], body["period_start"], body["period_end"]) == (
            "interim", "6.000000", "2025-03-11", "2025-03-13")
        # The CLI, after one more charge.
        services.add_pending_item(actor=ACTOR, billing_account=account, kind="one_time_fee", description="Visit",
                                  amount="15.00", day=dt.date(2025, 3, 14))
        c.add_days(2)  # 15 March
        out = io.StringIO()
        call_command("billing", "bill-now", account.number, "--reason", "cli", stdout=out)
        cli = json.loads(out.getvalue())
        assert (cli["purpose"], D(cli["total"]), cli["period_start"]) == ("interim", D("15.00"), "2025-03-14")
        # The regular invoice for March takes only what the interim ones left, from the day after.
        services.add_pending_item(actor=ACTOR, billing_account=account, kind="one_time_fee", description="Extra",
                                  amount="20.00", day=dt.date(2025, 3, 20))
        c.add_days(17)  # 1 April
        summary = billrun.run_period(actor=ACTOR, period="2025-03", jobs=1)
        assert summary["invoiced"] == 1
        regular = Invoice.objects.get(billing_account=account, period="2025-03")
        assert (regular.purpose, regular.total, regular.period_start) == ("regular", D("20.00"), dt.date(2025, 3, 16))
        assert sum(i.total for i in Invoice.objects.filter(billing_account=account)) == D("90.00")
        assert check(period="2025-03")["ok"], check(period="2025-03")["problems"]
        assert check_ledger()["ok"]


def test_a_customer_who_leaves_gets_a_final_invoice_at_once():
    with clock.travel_to(at(2025, 3, 1)) as c:
        tariffs = make_catalog(start=dt.date(2025, 1, 1))
        cycle = make_cycle()
        account = _account(cycle)
        net = subs.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="a1",
                                       activate=True)
        tv = subs.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["TV"], smart_card="S1",
                                      activate=True)
        for _ in range(9):
            c.add_days(1)
            daily.run(as_of=c.today(), actor="test")
        subs.terminate(tv, actor=ACTOR, reason="not watching")
        run_events()
        assert not Invoice.objects.exists()  # the internet subscription still runs
        c.add_days(1)  # 11 March
        daily.run(as_of=c.today(), actor="test")
        subs.terminate(net, actor=ACTOR, reason="moving abroad")
        run_events()
        final = Invoice.objects.get(billing_account=account)
        assert (final.purpose, final.state, final.period) == ("final", "issued", "")
        assert final.period_end == dt.date(2025, 3, 11) and "moving abroad" in final.reason
        assert final.total > 0 and final.number
        kinds = sorted({ln.kind for ln in final.lines.all()})
        assert "recurring_fee" in kinds
        run_events()  # a second delivery: nothing left, nothing new
        assert Invoice.objects.count() == 1
        # The bill run of March finds nothing left for the account: skipped, not a zero invoice.
        c.add_days(21)  # 1 April
        summary = billrun.run_period(actor=ACTOR, period="2025-03", jobs=1)
        assert summary["invoiced"] == 0 and summary["skipped_reasons"] == {"nothing_to_invoice": 1}
        assert check(period="2025-03")["ok"], check(period="2025-03")["problems"]


def test_closing_an_account_issues_its_final_invoice():
    with clock.travel_to(at(2025, 3, 1)) as c:
        make_catalog(start=dt.date(2025, 1, 1))
        cycle = make_cycle()
        account = _account(cycle)
        revenue = ledger.system_account("revenue:internet", "EUR")
        ledger.post_transfer(actor=ACTOR, debit=account, credit=revenue, amount="12.00", currency="EUR",
                             kind="charge", idempotency_key="fee-1", enforce_limit=False, tags={"fee": "activation"})
        pay(account, "12.00")
        c.add_days(4)
        ledger.close_account(account, actor=ACTOR, reason="customer left")
        run_events()
        final = Invoice.objects.get(billing_account=account)
        assert (final.purpose, final.total, final.state) == ("final", D("12.00"), "paid")
        with pytest.raises(DomainError) as err:
            services.bill_now(actor=ACTOR, billing_account=account)
        assert err.value.code == "nothing_to_invoice"
