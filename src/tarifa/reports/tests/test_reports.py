"""Reports: every declared report through its API, page and files; totals reconciled to the books.

The demo data (built through every app's services) is loaded once for the module, in a
transaction rolled back at the end; scenario tests build their own data through services."""

import csv
import datetime as dt
import io
from collections import defaultdict
from decimal import Decimal

import openpyxl
import pytest
from django.db.models import Sum

from tarifa.kernel.clock import today
from tarifa.reports import aggregates, framework, svg
from tarifa.testing.demo import demo_loaded

WIDE = {"from": "2020-01-01", "to": "2029-12-31"}
REPORTS = [r.code for r in framework.all_reports()]


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    with demo_loaded(django_db_blocker):
        yield


@pytest.fixture
def admin_api(demo, db, api, make_user):
    return api(make_user(superuser=True, password=None))


def run(code, **params):
    report = framework.get(code)
    return framework.run(report, framework.parse_params(report, {k: str(v) for k, v in params.items()}))


def test_at_least_thirty_reports_with_the_required_codes():
    assert len(REPORTS) >= 30
    assert {"payments-by-channel", "revenue-by-service", "receivables-aging", "cash-desk-daily", "taxes",
            "subscribers"} <= set(REPORTS)
    for r in framework.all_reports():
        assert r.description and r.source and r.columns, r.code


@pytest.mark.parametrize("code", REPORTS)
def test_api_csv_and_xlsx_carry_the_same_rows(code, admin_api):
    """The JSON rows, the CSV and the XLSX (read back) are the same rows; the XLSX keeps numbers
    as numbers and dates as dates."""
    report = framework.get(code)
    params = WIDE if report.period else {}
    answer = admin_api.get(f"/api/v1/reports/{code}/", params)
    assert answer.status_code == 200, answer.content
    data = answer.json()
    assert set(data) == {"rows", "totals"}
    rows = data["rows"]

    answer = admin_api.get(f"/api/v1/reports/{code}/", {**params, "format": "csv"})
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
    assert "attachment" in answer["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(answer.content.decode())))
    assert lines[0] == [c.label for c in report.columns]
    as_text = [["" if r[c.name] is None else str(r[c.name]) for c in report.columns] for r in rows]
    assert lines[1:] == as_text

    answer = admin_api.get(f"/api/v1/reports/{code}/", {**params, "format": "xlsx"})
    assert answer.status_code == 200, answer.content
    sheet = openpyxl.load_workbook(io.BytesIO(answer.content), read_only=True).active
    got = list(sheet.iter_rows(values_only=True))
    assert list(got[0]) == [c.label for c in report.columns]
    assert len(got) - 1 == len(rows)
    for xrow, jrow in zip(got[1:], rows, strict=True):
        for value, col in zip(xrow, report.columns, strict=True):
            expected = jrow[col.name]
            if expected is None:
                assert value is None
            elif col.type == "money" or col.type in ("number", "percent"):
                assert isinstance(value, (int, float)) and not isinstance(value, bool), (col.name, value)
                assert abs(Decimal(str(value)) - Decimal(expected)) < Decimal("0.000001") * max(1, abs(Decimal(expected)))
            elif col.type in ("count", "duration", "bytes"):
                assert isinstance(value, (int, float)) and int(value) == expected
            elif col.type == "date":
                assert isinstance(value, dt.datetime) and value.date().isoformat() == expected
            else:
                assert value == expected


@pytest.mark.parametrize("code", REPORTS)
def test_the_page_shows_the_rows_and_its_chart(code, demo, staff_client, make_user):
    report = framework.get(code)
    client = staff_client(make_user(report.permission, password=None))
    params = WIDE if report.period else {}
    page = client.get(f"/reports/{code}/", params)
    assert page.status_code == 200
    html = page.content.decode()
    assert report.name in html.replace("&#x27;", "'")
    expected = run(code, **params)
    assert html.count("<tr>") - 1 - bool(expected.totals) == max(1, len(expected.rows))
    if report.chart:
        assert "<svg" in html
    sorted_page = client.get(f"/reports/{code}/", {**params, "sort": "-" + report.columns[-1].name})
    assert sorted_page.status_code == 200


def test_each_report_checks_its_own_permission(demo, api, make_user):
    cash = api(make_user("reports.view_cash_reports", "reports.view_reports", password=None))
    assert cash.get("/api/v1/reports/payments-by-channel/").status_code == 200
    assert cash.get("/api/v1/reports/revenue-by-service/").status_code == 403
    assert cash.get("/api/v1/reports/revenue-by-service/", {"format": "csv"}).status_code == 403
    listed = {r["code"] for r in cash.get("/api/v1/reports/").json()}
    assert "payments-by-channel" in listed and "revenue-by-service" not in listed
    first = cash.get("/api/v1/reports/").json()[0]
    assert {"code", "name", "parameters"} <= set(first)


def test_parameters_are_checked(admin_api):
    bad = admin_api.get("/api/v1/reports/taxes/", {"from": "2024-13-01"})
    assert bad.status_code == 400 and bad.json()["error"]["fields"]["from"]
    assert admin_api.get("/api/v1/reports/taxes/", {"colour": "red"}).status_code == 400
    assert admin_api.get("/api/v1/reports/taxes/", {"from": "2024-02-01", "to": "2024-01-01"}).status_code == 400
    assert admin_api.get("/api/v1/reports/payments-by-channel/", {"channel": "pigeon"}).status_code == 400
    csv_error = admin_api.get("/api/v1/reports/taxes/", {"from": "x", "format": "csv"})
    assert csv_error.status_code == 400 and csv_error["Content-Type"].startswith("application/json")


# --- reconciliation ---------------------------------------------------------------------------------

def test_revenue_by_service_equals_the_ledgers_revenue_accounts(demo, db):
    from tarifa.ledger.models import LedgerAccount

    result = run("revenue-by-service", **WIDE)
    got = {(r["service_type"], r["currency"]): r["revenue"] for r in result.rows}
    books = {(a.code.split(":", 1)[1], a.currency): a.credits_posted - a.debits_posted
             for a in LedgerAccount.objects.filter(code__startswith="revenue:")}
    books = {k: v for k, v in books.items() if v or k in got}
    assert got and got == books
    assert sum(result.totals["revenue"].values()) == sum(books.values())


def test_revenue_for_a_period_counts_only_that_period(demo, db):
    from tarifa.kernel.clock import travel_to
    from tarifa.ledger import services as ledger
    from tarifa.ledger.models import BillingAccount

    account = BillingAccount.objects.filter(currency="USD").first()
    later = dt.datetime.combine(today() + dt.timedelta(days=40), dt.time(12), tzinfo=dt.UTC)
    with travel_to(later):
        ledger.post_transfer(actor="test", debit=account, credit=ledger.system_account("revenue:internet", "USD"),
                             amount=Decimal("7.25"), currency="USD", kind="charge", idempotency_key="rep-later-1")
        day = later.date()
        only = run("revenue-by-service", **{"from": day, "to": day})
    assert [(r["service_type"], r["revenue"]) for r in only.rows] == [("internet", Decimal("7.25"))]


def test_payments_by_channel_equal_the_payment_journal(demo, db):
    from tarifa.payments.models import Payment

    result = run("payments-by-channel", **WIDE)
    journal = defaultdict(Decimal)
    for p in Payment.objects.all():
        journal[(p.channel, p.currency)] += p.amount
    got = defaultdict(Decimal)
    for r in result.rows:
        got[(r["channel"], r["currency"])] += r["amount"]
    assert got and dict(got) == dict(journal)
    per_currency = dict(Payment.objects.values_list("currency").annotate(s=Sum("amount")))
    assert result.totals["amount"] == per_currency
    reversed_ = dict(Payment.objects.filter(status="reversed").values_list("currency").annotate(s=Sum("amount")))
    assert {k: v for k, v in result.totals["reversed"].items() if v} == reversed_
    assert result.totals["payments"] == Payment.objects.count()


def test_a_desks_daily_report_equals_its_payments_and_handovers(demo, db):
    from django.utils import timezone

    from django.db.models import Q

    from tarifa.ledger.models import Transfer
    from tarifa.payments.models import CashDesk, CashHandover, CashierShift, Payment, Refund

    result = run("cash-desk-daily", **WIDE)
    assert result.rows
    for desk in CashDesk.objects.all():
        rows = [r for r in result.rows if r["desk"] == desk.code]
        payments = defaultdict(Decimal)
        for p in Payment.objects.filter(debit_account=desk.ledger_account):  # cash into the desk
            payments[timezone.localtime(p.received_at).date()] += p.amount
        handed = defaultdict(Decimal)
        for h in CashHandover.objects.filter(from_desk=desk):
            handed[timezone.localtime(h.handed_at).date()] += h.amount
        assert {r["day"]: r["cash_in"] for r in rows if r["cash_in"]} == dict(payments)
        assert {r["day"]: r["handed_over"] for r in rows if r["handed_over"]} == dict(handed)
        # Every movement of the desk's cash account is in the day's row: named, or "other" (a ledger
        # movement no payment, refund, hand-over or shift caused — the demo posts some directly).
        named_ids = set()
        for p in Payment.objects.filter(debit_account=desk.ledger_account):
            named_ids |= {p.transfer_id, p.reversal_transfer_id}
        named_ids |= set(CashHandover.objects.filter(from_desk=desk).values_list("transfer_id", flat=True))
        named_ids |= set(CashHandover.objects.filter(to_desk=desk).values_list("transfer_id", flat=True))
        named_ids |= set(Refund.objects.filter(desk=desk).values_list("transfer_id", flat=True))
        named_ids |= set(CashierShift.objects.filter(desk=desk).values_list("discrepancy_transfer_id", flat=True))
        delta, other = defaultdict(Decimal), defaultdict(Decimal)
        for t in Transfer.objects.filter(Q(debit_account=desk.ledger_account) | Q(credit_account=desk.ledger_account)):
            d = timezone.localtime(t.created_at).date()
            signed = t.amount if t.debit_account_id == desk.ledger_account_id else -t.amount
            delta[d] += signed
            if t.id not in named_ids:
                other[d] += signed
        assert {r["day"]: r["closing"] - r["opening"] for r in rows} == {d: v for d, v in delta.items()}
        assert {r["day"]: r["other"] for r in rows if r["other"]} == {d: v for d, v in other.items() if v}
        if rows:
            account = desk.ledger_account
            assert rows[-1]["closing"] == account.debits_posted - account.credits_posted
            for a, b in zip(rows, rows[1:]):
                assert b["opening"] == a["closing"]


def test_taxes_equal_the_invoices_tax_lines(demo, db):
    from tarifa.billing.models import Invoice, InvoiceLine

    result = run("taxes", **WIDE)
    stated = defaultdict(Decimal)
    for inv in Invoice.objects.exclude(state="draft"):
        sign = -1 if inv.kind == "credit_note" else 1
        stated[inv.currency] += sign * inv.tax_total
    assert result.rows and result.totals["tax_amount"] == dict(stated)
    lines = defaultdict(Decimal)
    for line in InvoiceLine.objects.exclude(invoice__state="draft").select_related("invoice"):
        sign = -1 if line.invoice.kind == "credit_note" else 1
        for t in line.taxes:
            lines[(t["code"], line.invoice.currency)] += sign * Decimal(str(t["tax"]))
    got = defaultdict(Decimal)
    for r in result.rows:
        got[(r["tax"], r["currency"])] += r["tax_amount"]
    for key, value in lines.items():
        assert abs(got[key] - value) <= Decimal("0.01") * max(1, len(lines)), (key, got[key], value)


def test_aging_buckets_sum_to_the_receivables_balance(db):
    from tarifa.crm.services import create_customer
    from tarifa.kernel.clock import travel_to
    from tarifa.ledger import services as ledger
    from tarifa.ledger.models import LedgerAccount

    start = dt.datetime(2026, 1, 10, 12, tzinfo=dt.UTC)
    with travel_to(start) as clock:
        customer = create_customer(actor="test", kind="individual", first_name="Ada", last_name="Owes")
        account = ledger.open_account(actor="test", customer=customer, currency="USD", payment_mode="postpaid",
                                      credit_limit=1000)
        revenue = ledger.system_account("revenue:internet", "USD")
        cash = ledger.system_account("bank", "USD")
        for n, amount in enumerate(["30", "20", "10", "5"]):  # day 0, 35, 70, 105
            ledger.post_transfer(actor="test", debit=account, credit=revenue, amount=Decimal(amount), currency="USD",
                                 kind="charge", idempotency_key=f"aging-{n}")
            clock.add_days(35)
        ledger.post_transfer(actor="test", debit=cash, credit=account, amount=Decimal("40"), currency="USD",
                             kind="payment", idempotency_key="aging-pay")
        clock.add_days(1)  # today = day 141
        result = run("receivables-aging")
    owed = sum(-(a.credits_posted - a.debits_posted) for a in LedgerAccount.objects.filter(kind="customer")
               if a.debits_posted > a.credits_posted)
    assert owed == Decimal("25")
    (row,) = [r for r in result.rows if r["account"] == account.number]
    # 25 owed: the newest charges make it up — 5 (36 days old), 10 (71 days), 10 of the 20 (106 days).
    assert (row["d0_30"], row["d31_60"], row["d61_90"], row["d90_plus"]) == (0, Decimal(5), Decimal(10), Decimal(10))
    assert row["d0_30"] + row["d31_60"] + row["d61_90"] + row["d90_plus"] == row["total"] == Decimal(25)
    assert sum(result.totals["total"].values()) == owed
    assert sum(sum(result.totals[b].values()) for b in ("d0_30", "d31_60", "d61_90", "d90_plus")) == owed


# --- daily aggregates ------------------------------------------------------------------------------------

def test_closed_days_from_the_aggregates_give_the_same_rows_as_the_live_query(demo, db):
    from tarifa.kernel.clock import travel_to
    from tarifa.reports.definitions.cash import PAYMENTS
    from tarifa.reports.definitions.common import args, day

    first = today() - dt.timedelta(days=3)
    with travel_to(dt.datetime.combine(today() + dt.timedelta(days=2), dt.time(9), tzinfo=dt.UTC)):
        params = framework.parse_params(framework.get("revenue-by-service"), {"from": str(first), "to": str(today())})
        assert not aggregates.usable(params, "revenue")
        live_revenue = run("revenue-by-service", **{"from": first, "to": today()}).rows
        live_payments = run("payments-by-channel", **{"from": first, "to": today()}).rows
        assert aggregates.rollup(first, today() - dt.timedelta(days=1)) == 5
        assert aggregates.usable(params, "revenue")
        assert run("revenue-by-service", **{"from": first, "to": today()}).rows == live_revenue
        assert run("payments-by-channel", **{"from": first, "to": today()}).rows == live_payments
        raw = framework.sql(PAYMENTS.format(rd=day("p.received_at"), vd=day("p.reversed_at")), args(params))
        assert raw == live_payments
        assert aggregates.rollup(first, today() - dt.timedelta(days=1)) == 5  # again: replaced, not doubled
        assert run("payments-by-channel", **{"from": first, "to": today()}).rows == live_payments


def test_rollup_refuses_days_not_closed(db):
    from tarifa.kernel.errors import DomainError

    with pytest.raises(DomainError):
        aggregates.rollup(today(), today())


# --- schedules, dashboard, charts ------------------------------------------------------------------------

def test_a_schedule_sends_the_report_as_xlsx_once_a_day(demo, db, make_user):
    from tarifa.integrations.models import OutboxMessage
    from tarifa.reports import services
    from tarifa.reports.models import ReportSchedule

    user = make_user("reports.view_cash_reports", "reports.add_reportschedule", password=None)
    schedule = services.create_schedule(actor=user, name="Cash", report="payments-by-channel",
                                        recipients="a@example.com, b@example.com", frequency="daily",
                                        parameters={"currency": "USD"})
    from django.core import mail

    before, sent_before = OutboxMessage.objects.count(), len(mail.outbox)
    assert services.send_due(as_of=today()) >= 1
    kept = list(OutboxMessage.objects.order_by("-created_at")[: OutboxMessage.objects.count() - before])
    kept = [(m.recipient, m.attachments[0]["name"]) for m in kept]
    sent = [(m.to[0], m.attachments[0][0]) for m in mail.outbox[sent_before:]]
    mine = sorted(x for x in kept + sent if x[0] in ("a@example.com", "b@example.com"))
    assert [r for r, _ in mine] == ["a@example.com", "b@example.com"]
    assert all(name.startswith("payments-by-channel_") and name.endswith(".xlsx") for _, name in mine)
    assert services.send_due(as_of=today()) == 0  # already sent today
    schedule.refresh_from_db()
    assert schedule.last_sent_on == today()
    finance_only = make_user("reports.view_finance_reports", password=None)
    with pytest.raises(Exception, match="may not open"):
        services.create_schedule(actor=finance_only, name="x", report="payments-by-channel", recipients="a@example.com")
    with pytest.raises(Exception, match="e-mail address"):
        services.create_schedule(actor="test", name="x", report="taxes", recipients="not-an-address")
    with pytest.raises(Exception, match="not one of the choices"):
        services.create_schedule(actor="test", name="x", report="taxes", recipients="a@example.com",
                                 parameters={"currency": "XXX"})
    assert services.period_for(ReportSchedule(frequency="monthly"), dt.date(2026, 3, 1)) == (
        dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    assert services.period_for(ReportSchedule(frequency="weekly"), dt.date(2026, 3, 9)) == (
        dt.date(2026, 3, 2), dt.date(2026, 3, 8))


def test_the_dashboard_shows_each_role_its_tiles(demo, staff_client, make_user):
    admin = staff_client(make_user(superuser=True, password=None))
    html = admin.get("/").content.decode()
    for label in ("Payments today", "Active subscribers", "Revenue this month", "Receivables",
                  "Failed background jobs"):
        assert label in html
    assert html.count("<svg") >= 2
    assert "/reports/payments-by-channel/" in html and "/reports/receivables-aging/" in html
    cashier = staff_client(make_user("identity.view_dashboard", "reports.view_cash_reports", password=None))
    html = cashier.get("/").content.decode()
    assert "Payments today" in html and "Revenue this month" not in html and "Receivables" not in html


def test_svg_chart_is_self_contained():
    out = svg.chart([("a", "USD", Decimal("1.5")), ("b", "USD", 3), ("b", "EUR", -2)], title="<x>")
    assert out.startswith("<svg") and "&lt;x&gt;" in out and "http://" not in out.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert "No data" in svg.chart([])


def test_mrr_movement_explains_the_change_and_matches_the_mrr_report(demo, db):
    rows = run("mrr-movement", **WIDE).rows
    assert rows
    for r in rows:
        assert r["mrr_start"] + r["new"] + r["upgrade"] - r["downgrade"] - r["churn"] + r["price_changes"] == r["mrr_end"]
    # Today, in service = active or suspended; the MRR report counts the active ones only.
    from tarifa.subscriptions.models import Subscription

    from tarifa.catalog.models import PriceVersion

    month = run("mrr-movement", **{"from": today().replace(day=1), "to": today()}).rows
    if not PriceVersion.objects.filter(valid_from__range=(today().replace(day=1), today())).exists():
        assert all(r["price_changes"] == 0 for r in month)  # no price version started: nothing unexplained
    today_rows = {r["currency"]: r["mrr_end"] for r in run("mrr-movement", **{"from": today(), "to": today()}).rows}
    active_mrr = run("mrr").totals["mrr"]
    if not Subscription.objects.filter(status="suspended").exists():
        assert today_rows == active_mrr
    else:
        assert all(today_rows[c] >= v for c, v in active_mrr.items())


# --- tickets and inventory -------------------------------------------------------------------------

def test_tickets_by_type_and_step_count_the_tickets_and_their_flow(demo, db):
    from tarifa.kernel.clock import now
    from tarifa.tickets.models import FlowEntry, Ticket

    result = run("tickets-by-type-step", **WIDE)
    assert Ticket.objects.exists()
    open_ = Ticket.objects.filter(closed_at__isnull=True)
    assert result.totals["open"] == open_.count()
    assert result.totals["overdue"] == open_.filter(due_at__lt=now()).count()
    assert result.totals["opened"] == FlowEntry.objects.filter(kind="opened").count() == Ticket.objects.count()
    assert result.totals["closed"] == FlowEntry.objects.filter(kind="moved", to_step__final=True).count()
    for row in result.rows:
        left = FlowEntry.objects.filter(kind="moved", from_step__ticket_type__code=row["ticket_type"],
                                        from_step__code=row["step"]).values_list("seconds_at_step", flat=True)
        if left:
            assert row["avg_seconds"] == round(sum(left) / len(left))
        else:
            assert row["avg_seconds"] is None
    # Another period: nothing opened nor closed then, the open tickets still shown.
    empty = run("tickets-by-type-step", **{"from": "2001-01-01", "to": "2001-01-31"})
    assert empty.totals["opened"] == empty.totals["closed"] == 0 and empty.totals["open"] == open_.count()


def test_ticket_sla_splits_the_moves_out_of_each_step(demo, db):
    from tarifa.tickets.models import FlowEntry

    result = run("tickets-sla", **WIDE)
    moves = FlowEntry.objects.filter(kind="moved", from_step__sla_minutes__isnull=False).select_related("from_step")
    assert result.totals["left_step"] == moves.count()
    assert result.totals["within"] == sum(1 for f in moves if f.seconds_at_step <= f.from_step.sla_minutes * 60)
    assert result.totals["within"] + result.totals["late"] == result.totals["left_step"]
    for row in result.rows:
        assert row["within"] + row["late"] == row["left_step"]


def test_stock_on_hand_equals_the_stock_and_its_cost(demo, db):
    from tarifa.inventory.models import Device, Stock

    result = run("stock-on-hand")
    stock = Stock.objects.filter(virtual=False).exclude(quantity=0).select_related("item", "location")
    assert stock.exists() and len(result.rows) == stock.count()
    expected: dict = defaultdict(Decimal)
    for s in stock:
        if s.item.by_serial:
            value = Device.objects.filter(item=s.item, location=s.location).aggregate(v=Sum("cost"))["v"] or 0
        else:
            value = s.quantity * s.item.cost
        expected[s.item.currency] += value
        row = next(r for r in result.rows if r["location"] == s.location.code and r["item"] == s.item.code)
        assert row["quantity"] == s.quantity and row["value"] == value
    assert result.totals["value"] == dict(expected)


def test_devices_installed_are_counted_under_their_subscriptions_tariff(demo, db):
    from tarifa.inventory.models import Device
    from tarifa.subscriptions.models import Subscription

    result = run("devices-installed-per-tariff")
    at_premises = Device.objects.filter(location__kind="customer").select_related("item")
    assert at_premises.exists() and result.totals["devices"] == at_premises.count()
    expected: dict = defaultdict(int)
    for d in at_premises:
        agreement = d.agreements.filter(ended_on__isnull=True).order_by("-started_on").first()
        sub = agreement.subscription if agreement else Subscription.objects.filter(number=d.subscription_ref).first()
        expected[(sub.tariff.code if sub else "(none)", d.item.kind)] += 1
    assert {(r["tariff"], r["item_kind"]): r["devices"] for r in result.rows} == expected


def test_ticket_and_stock_reports_take_their_apps_view_permission(demo, api, make_user):
    agent = api(make_user("tickets.view_ticket", "reports.view_reports", password=None))
    storekeeper = api(make_user("inventory.view_stock", "inventory.view_device", password=None))
    for code in ("tickets-by-type-step", "tickets-sla"):
        assert agent.get(f"/api/v1/reports/{code}/").status_code == 200
        assert storekeeper.get(f"/api/v1/reports/{code}/", {"format": "csv"}).status_code == 403
    for code in ("stock-on-hand", "devices-installed-per-tariff"):
        assert storekeeper.get(f"/api/v1/reports/{code}/").status_code == 200
        assert agent.get(f"/api/v1/reports/{code}/", {"format": "xlsx"}).status_code == 403
    assert {r["code"] for r in agent.get("/api/v1/reports/").json()} == {"tickets-by-type-step", "tickets-sla"}
