"""Issue 10 item 5: taxes. A discount reduces the tax base; credit notes take back a share of
each line at that line's rates, never more than a line (or a line's tax) charged."""

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tarifa.billing import bulk, generation, services
from tarifa.billing.check import check
from tarifa.billing.models import Invoice
from tarifa.kernel import clock
from tarifa.ledger.selectors import check_ledger

from .helpers import ACTOR, at, customer_account, make_catalog, make_cycle, make_taxes

D = Decimal


def _router_and_discount(account):
    services.add_pending_item(actor=ACTOR, billing_account=account, kind="one_time_fee", description="Router",
                              amount="49.00", service_type="internet", day=dt.date(2025, 3, 5))
    services.add_pending_item(actor=ACTOR, billing_account=account, kind="discount", description="Welcome discount",
                              amount="-10.00", day=dt.date(2025, 3, 5))


def _vat(invoice):
    return {t["code"]: (D(t["base"]), D(t["tax"])) for t in invoice.tax_summary}


@pytest.mark.django_db
def test_a_discount_reduces_the_tax_base_and_a_credit_note_uses_the_lines_rates():
    with clock.travel_to(at(2025, 3, 1)) as c:
        make_catalog(start=dt.date(2025, 1, 1))
        make_taxes()  # VAT 20 % included in every price
        cycle = make_cycle()
        one, other = (customer_account(payment_mode="postpaid", credit_limit="1000") for _ in range(2))
        for account in (one, other):
            services.assign_cycle(actor=ACTOR, billing_account=account, cycle=cycle)
            _router_and_discount(account)
        c.add_days(31)
        invoice = services.generate_invoice(actor=ACTOR, billing_account=one, period="2025-03")
        # 39.00 incl. VAT: 39 − 39 / 1.2 = 6.50 (the discount takes 1.67 VAT off the router's 8.17).
        assert (invoice.total, invoice.tax_total, invoice.subtotal) == (D("39.00"), D("6.50"), D("32.50"))
        assert _vat(invoice) == {"VAT": (D("32.50"), D("6.50"))}
        discount = invoice.lines.get(kind="discount")
        assert [(t["code"], D(t["tax"])) for t in discount.taxes] == [("VAT", D("-1.67"))]
        # The bill run's set-based path computes the same.
        bulk.invoice_batch(cycle=cycle, period="2025-03", account_ids=[other.pk], actor=ACTOR)
        theirs = Invoice.objects.get(billing_account=other, period="2025-03")
        assert (theirs.total, theirs.tax_total, _vat(theirs)) == (invoice.total, invoice.tax_total, _vat(invoice))
        assert check(period="2025-03")["ok"], check(period="2025-03")["problems"]

        # A credit note of 4.00: 4.00 × 20 / 120 = 0.67 VAT (not 4.00 × 6.50 / 39 … of the old ratio, 0.84 once).
        note = services.credit_invoice(invoice, actor=ACTOR, amount="4.00", reason="late delivery")
        assert (note.total, note.tax_total, note.subtotal) == (D("-4.00"), D("-0.67"), D("-3.33"))
        assert _vat(note) == {"VAT": (D("-3.33"), D("-0.67"))}
        shares = {ln.key: ln.total for ln in note.lines.all()}
        router = invoice.lines.get(kind="one_time_fee")
        assert shares == {f"credit:{router.key}": D("-5.03"), f"credit:{discount.key}": D("1.03")}
        # The rest: every line and every tax is taken back exactly to what it charged.
        rest = services.credit_invoice(invoice, actor=ACTOR, reason="cancelled")
        assert rest.total == D("-35.00") and note.tax_total + rest.tax_total == -invoice.tax_total
        for line in invoice.lines.all():
            credited = sum(ln.total for n in (note, rest) for ln in n.lines.filter(key=f"credit:{line.key}"))
            assert credited == -line.total
        with pytest.raises(Exception) as err:
            services.credit_invoice(invoice, actor=ACTOR, amount="0.01", reason="more")
        assert getattr(err.value, "code", "") == "credit_too_large"
        assert check(period="2025-03")["ok"], check(period="2025-03")["problems"]
        assert check_ledger()["ok"]


# --- the pure computation: a Hypothesis property ---------------------------------------------------

RATES = {"internet": [generation.TaxRate("VAT", D("20"), True)],
         "iptv": [generation.TaxRate("VAT", D("20"), True), generation.TaxRate("TVL", D("2"), False)],
         "mobile": [generation.TaxRate("EXC", D("3.5"), True), generation.TaxRate("VAT", D("20"), True)],
         "other": []}

amounts = st.integers(min_value=1, max_value=80_000_000).map(lambda n: D(n) / D(1_000_000))


@st.composite
def invoices(draw):
    n = draw(st.integers(min_value=1, max_value=7))
    sources = []
    for i in range(n):
        kind = draw(st.sampled_from(["one_time_fee", "usage", "discount", "adjustment"]))
        amount = draw(amounts)
        if kind == "discount" or (kind == "adjustment" and draw(st.booleans())):
            amount = -amount
        service_type = draw(st.sampled_from(["", "internet", "iptv", "mobile", "other"]))
        sources.append(generation.Source(id=f"s{i}", type="item", kind=kind, amount=amount,
                                         day_from=dt.date(2025, 3, 1), day_to=dt.date(2025, 3, 1),
                                         service_type=service_type, fee=f"f{i}", booked=False))
    rounding = draw(st.sampled_from([generation.LINE, generation.INVOICE]))
    return generation.generate(sources=sources, taxes=RATES, rounding=rounding, currency="EUR"), rounding


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invoices(), st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=4), st.data())
def test_invoice_total_is_its_lines_and_credit_notes_never_take_back_more_than_a_line_or_rate(drawn, parts, data):
    draft, rounding = drawn
    # The invoice total is the sum of its lines including tax (per-line rounding), and always net + tax.
    assert draft.total == draft.subtotal + draft.tax_total
    if rounding == generation.LINE:
        assert draft.total == sum((ln.total for ln in draft.lines), D(0))
        assert draft.tax_total == sum((ln.tax for ln in draft.lines), D(0))
    if draft.total <= 0:
        return
    lines = [generation.CreditableLine(key=ln.key, description=ln.description, total=ln.total, taxes=ln.taxes)
             for ln in draft.lines]
    diff = draft.total - sum((ln.total for ln in draft.lines), D(0))
    if diff:
        lines.append(generation.CreditableLine(key="rounding", description="Rounding", total=diff))
    left = draft.total
    for p in parts:
        amount = min(left, max(D("0.01"), (draft.total * p / 100).quantize(D("0.01"))))
        if not data.draw(st.booleans(), label="partial") or amount >= left:
            amount = left
        note = generation.credit_note(lines=lines, amount=amount, rounding=rounding)
        assert sum((ln.total for ln in note.lines), D(0)) == amount
        by_key = {ln.key: ln for ln in lines}
        for cl in note.lines:
            line = by_key[cl.key]
            line.credited += cl.total
            # Never more than the line charged, never the other way.
            assert abs(line.credited) <= abs(line.total) and line.credited * line.total >= 0, (line, cl)
            for t in cl.taxes:
                k = (t["code"], D(t["rate"]), t["inclusive"])
                b, x = line.credited_taxes.get(k, (D(0), D(0)))
                line.credited_taxes[k] = (b + t["base"], x + t["tax"])
                charged = next(D(e["tax"]) for e in line.taxes if (e["code"], D(e["rate"]), e["inclusive"]) == k)
                assert abs(line.credited_taxes[k][1]) <= abs(charged) and line.credited_taxes[k][1] * charged >= 0
        left -= amount
        if left == 0:
            break
    if left == 0:  # fully credited: every line and every tax exactly
        for line in lines:
            assert line.credited == line.total
            for e in line.taxes:
                k = (e["code"], D(e["rate"]), e["inclusive"])
                assert line.credited_taxes.get(k, (D(0), D(0)))[1] == D(e["tax"])
