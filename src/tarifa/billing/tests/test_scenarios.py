"""The operator's stories with a moving clock: a month of service, the bill run, payments, credit notes."""

import datetime as dt
from decimal import Decimal

import pytest

from tarifa.billing import billrun, services
from tarifa.billing.check import check
from tarifa.billing.models import Invoice
from tarifa.kernel import clock
from tarifa.ledger.selectors import check_ledger
from tarifa.rating import services as rating
from tarifa.rating import usage
from tarifa.rating.models import RatedUsage
from tarifa.rating.tests.helpers import csv_file, line, make_plan
from tarifa.subscriptions import daily
from tarifa.subscriptions import services as subs

from .helpers import ACTOR, at, make_catalog, make_cycle, make_taxes, pay, postpaid_org, run_events

pytestmark = pytest.mark.django_db


def test_postpaid_organization_three_services_tariff_change_invoiced_paid_in_part_then_credited():
    with clock.travel_to(at(2025, 3, 1)) as c:
        tariffs = make_catalog(start=dt.date(2025, 1, 1))
        make_taxes()
        rated_by = make_plan()
        rating.create_tariff_rating(actor=ACTOR, tariff=tariffs["MOB"], tenant=rated_by["tenant"], subject="MOB",
                                    categories={"voice": "call"})
        cycle = make_cycle()
        account = postpaid_org(cycle)
        net = subs.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="acme",
                                       activate=True)
        subs.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["MOB"], phone_number="+15550100100",
                                 activate=True)
        subs.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["TV"], smart_card="SC1",
                                 activate=True)
        # Mid-period tariff change: NET-62 from 16 March.
        subs.change_tariff(net, actor=ACTOR, tariff=tariffs["NET-62"], effective=dt.date(2025, 3, 16))
        services.add_pending_item(actor=ACTOR, billing_account=account, kind="discount", description="Loyalty",
                                  amount="-5.00")
        for _ in range(30):
            c.add_days(1)
            daily.run(as_of=c.today(), actor="test")
        c.add_days(1)  # 1 April: March is closed
        daily.run(as_of=c.today(), actor="test")
        # Usage: the mobile tariff is rated by rating's test plan (national calls 0.10 per whole
        # minute); a 90 s call on 10 March costs 2 minutes = 0.20, kept for the postpaid invoice.
        batch = usage.import_file(csv_file(line("call1", "+15550100100", "1555123", at(2025, 3, 10), "90s")), actor=ACTOR)
        assert (batch.rated, RatedUsage.objects.get().cost) == (1, Decimal("0.2")), batch.summary()
        summary = billrun.run_period(actor=ACTOR, period="2025-03")
        assert summary["invoiced"] == 1 and summary["skipped"] == 0, summary["failures"]
        invoice = Invoice.objects.get(billing_account=account, period="2025-03")
        kinds = sorted(ln.kind for ln in invoice.lines.all())
        assert kinds.count("recurring_fee") == 3 + 1  # net 31, net 62, mobile, tv
        assert kinds.count("usage") == 1 and kinds.count("discount") == 1
        # Net 31: 15 days of 31.00/31; net 62: 16 days of 62/31; mobile 31 × 0.50; TV 10.00 whole.
        by_tariff = {(ln.kind, ln.description.split()[-1]): ln for ln in invoice.lines.all()}
        assert by_tariff[("recurring_fee", "NET-31")].amount == Decimal("15.000000")
        assert by_tariff[("recurring_fee", "NET-62")].amount == Decimal("32.000000")
        assert by_tariff[("recurring_fee", "MOB")].amount == Decimal("15.500000")
        assert by_tariff[("recurring_fee", "TV")].amount == Decimal("10.000000")
        assert by_tariff[("recurring_fee", "NET-31")].period_end == dt.date(2025, 3, 15)
        call = invoice.lines.get(kind="usage")
        assert (call.service_type, call.destination, call.quantity) == ("mobile", "NAT", Decimal(90 * 10**9))
        # Taxes per line, rounded per line (the cycle's rule): VAT 20 % is inside every price, so
        # tax = amount − amount / 1.2; the TV levy (2 %) is added on top of TV's net.
        def taxes(ln):
            return {t["code"]: (Decimal(t["base"]), Decimal(t["tax"])) for t in ln.taxes}

        assert taxes(by_tariff[("recurring_fee", "NET-31")]) == {"VAT": (Decimal("12.50"), Decimal("2.50"))}
        assert taxes(by_tariff[("recurring_fee", "NET-62")]) == {"VAT": (Decimal("26.67"), Decimal("5.33"))}
        assert taxes(by_tariff[("recurring_fee", "MOB")]) == {"VAT": (Decimal("12.92"), Decimal("2.58"))}
        tv = by_tariff[("recurring_fee", "TV")]  # 10.00 = 8.33 + 1.67 VAT; levy 2 % of 8.33 = 0.17 on top
        assert taxes(tv) == {"VAT": (Decimal("8.33"), Decimal("1.67")), "TVL": (Decimal("8.33"), Decimal("0.17"))}
        assert (tv.net, tv.tax, tv.total) == (Decimal("8.33"), Decimal("1.84"), Decimal("10.17"))
        assert taxes(call) == {"VAT": (Decimal("0.17"), Decimal("0.03"))}  # 0.20 / 1.2 = 0.1667
        # The loyalty discount has no service type: it is spread over the charges and reduces their
        # tax base (issue 10, item 5): 5.00 incl. VAT takes 0.83 VAT back; TV's share 0.01 of levy.
        assert taxes(invoice.lines.get(kind="discount")) == {"VAT": (Decimal("-4.17"), Decimal("-0.83")),
                                                             "TVL": (Decimal("-0.53"), Decimal("-0.01"))}
        # Fees 15 + 32 + 15.50 + 10 + activation 5 + tariff change 1, usage 0.20, discount −5, levy 0.17 − 0.01.
        assert (invoice.total, invoice.tax_total, invoice.subtotal) == (
            Decimal("73.86"), Decimal("12.44"), Decimal("61.42"))
        assert [(t["code"], Decimal(t["base"]), Decimal(t["tax"]), t["inclusive"]) for t in invoice.tax_summary] == [
            ("TVL", Decimal("7.80"), Decimal("0.16"), False), ("VAT", Decimal("61.42"), Decimal("12.28"), True)]
        assert "rounded half up to 0.01 EUR" in invoice.rounding_note
        assert invoice.state == "issued" and invoice.number.endswith("I0000001")
        assert check(period="2025-03")["ok"], check(period="2025-03")
        assert check_ledger()["ok"]
        assert invoice.total == sum(ln.total for ln in invoice.lines.all())
        # Partially paid…
        pay(account, "20.00")
        run_events()
        invoice.refresh_from_db()
        assert invoice.paid_amount == Decimal("20.00") and invoice.state == "partially_paid"
        # … then credited in part, never more than what is left.
        note = services.credit_invoice(invoice, actor=ACTOR, amount="10.00", reason="outage")
        assert note.total == Decimal("-10.00") and note.number.endswith("CN0000001")
        with pytest.raises(Exception) as err:
            services.credit_invoice(invoice, actor=ACTOR, amount=str(invoice.total), reason="too much")
        assert getattr(err.value, "code", "") == "credit_too_large"
        assert check(period="2025-03")["ok"], check(period="2025-03")
        assert check_ledger()["ok"]


def test_payments_go_to_the_oldest_invoice_first_unless_the_operator_says_otherwise():
    """February's invoice (10.00) and March's (20.00) are open. A payment of 10.00 the operator
    applies to March stays there; the next payment (25.00) goes to February first, then March."""
    from tarifa.billing.models import Allocation
    from tarifa.kernel.errors import DomainError

    with clock.travel_to(at(2025, 2, 1)) as c:
        make_catalog(start=dt.date(2025, 1, 1))
        cycle = make_cycle(payment_terms_days=30)
        account = postpaid_org(cycle)
        services.add_pending_item(actor=ACTOR, billing_account=account, kind="one_time_fee", description="Setup",
                                  amount="10.00", day=dt.date(2025, 2, 3))
        c.add_days(29)  # 2 March
        february = services.generate_invoice(actor=ACTOR, billing_account=account, period="2025-02")
        services.add_pending_item(actor=ACTOR, billing_account=account, kind="one_time_fee", description="Router",
                                  amount="20.00", day=dt.date(2025, 3, 5))
        c.add_days(31)  # 2 April
        march = services.generate_invoice(actor=ACTOR, billing_account=account, period="2025-03")
        assert (february.total, march.total) == (Decimal("10.00"), Decimal("20.00"))
        first = pay(account, "10.00")
        with pytest.raises(DomainError) as err:
            services.allocate_payment(actor=ACTOR, invoice=march, transfer=first, amount="10.01")
        assert err.value.code == "amount_too_large"
        services.allocate_payment(actor=ACTOR, invoice=march, transfer=first)
        run_events()  # the payment's event: nothing of it is left to allocate
        february.refresh_from_db()
        march.refresh_from_db()
        assert (february.paid_amount, february.state) == (0, "issued")
        assert (march.paid_amount, march.state) == (Decimal("10.00"), "partially_paid")
        second = pay(account, "25.00")
        run_events()
        february.refresh_from_db()
        march.refresh_from_db()
        assert (february.paid_amount, february.state) == (Decimal("10.00"), "paid")
        assert (march.paid_amount, march.state) == (Decimal("20.00"), "paid")
        assert sorted((a.invoice_id == february.pk, a.amount) for a in Allocation.objects.filter(transfer=second)) == [
            (False, Decimal("10.00")), (True, Decimal("10.00"))]
        with pytest.raises(DomainError) as err:
            services.allocate_payment(actor=ACTOR, invoice=march, transfer=second)
        assert err.value.code == "not_open"
