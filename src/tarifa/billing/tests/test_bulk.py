"""The set-based bill-run path against the pure function (its reference), on random data.

For random accounts (random fees over random days and tariffs, one-time fees, usage charges,
ledger adjustments both ways, pending one-time fees, adjustments and discounts, taxes
inclusive and exclusive under two tax schemes, both rounding rules), the invoices the SQL
path writes equal the drafts `generation.generate` computes from the same sources: the same
lines (key, kind, description, period, quantity, amounts, taxes), the same tax summary and
totals. Then a second run invoices nothing more.
"""

import datetime as dt
import random
from decimal import Decimal

import pytest

from tarifa.billing import bulk, generation, services, sources
from tarifa.billing.models import Invoice
from tarifa.catalog.models import ServiceType
from tarifa.crm import services as crm
from tarifa.kernel import clock
from tarifa.ledger import services as ledger
from tarifa.ledger.selectors import check_ledger
from tarifa.subscriptions import services as subs

from .helpers import ACTOR, at, customer_account, make_catalog, make_cycle, make_taxes

pytestmark = pytest.mark.django_db

D = Decimal


def _amount(rng, hi=60):
    return D(rng.randint(1, hi * 1_000_000)) / D(1_000_000)


def _random_account(rng, tariffs, schemes, cycle, n):
    scheme = rng.choice(schemes)
    account = customer_account(kind=rng.choice(["individual", "organization"]), payment_mode="postpaid",
                               credit_limit="100000", tax_scheme=scheme)
    services.assign_cycle(actor=ACTOR, billing_account=account, cycle=cycle)
    sub_list = []
    for code, ident in (("NET-31", {"login": f"u{n}"}), ("MOB", {"phone_number": f"+1555{n:07d}"}),
                        ("TV", {"smart_card": f"SC{n}"})):
        if rng.random() < 0.8:
            sub_list.append(subs.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs[code],
                                                     **ident))
    for sub in sub_list:
        st = sub.service.service_type.code
        revenue = ledger.system_account(f"revenue:{st}", "EUR")
        for k in range(rng.randint(0, 6)):
            day = dt.date(2025, 3, rng.randint(1, 31))
            fee = rng.choice(["recurring", "recurring", "package-sport", "activation", "sim_replacement"])
            tariff = rng.choice([sub.tariff.code, "OLD-" + sub.tariff.code])
            ledger.post_transfer(actor=ACTOR, debit=account, credit=revenue, amount=_amount(rng), currency="EUR",
                                 kind="charge", idempotency_key=f"t{n}:{sub.pk}:{k}", enforce_limit=False,
                                 tags={"subscription": str(sub.pk), "tariff": tariff, "fee": fee,
                                       "period": day.isoformat()})
        if rng.random() < 0.5:
            for k in range(rng.randint(1, 4)):
                ledger.post_transfer(actor=ACTOR, debit=account, credit=revenue, amount=_amount(rng, 3),
                                     currency="EUR", kind="charge", idempotency_key=f"u{n}:{sub.pk}:{k}",
                                     enforce_limit=False,
                                     tags={"subscription": str(sub.pk), "usage_type": rng.choice(["voice", "data"]),
                                           "destination": rng.choice(["national", "mobile", ""]),
                                           "period": dt.date(2025, 3, rng.randint(1, 31)).isoformat()})
    if rng.random() < 0.5:
        ledger.adjust(actor=ACTOR, account=account, amount=str(_amount(rng, 10) * rng.choice([1, -1])),
                      reason="goodwill", idempotency_key=f"adj{n}")
    for k in range(rng.randint(0, 3)):
        kind = rng.choice(["one_time_fee", "adjustment", "discount"])
        amount = _amount(rng, 20)
        services.add_pending_item(actor=ACTOR, billing_account=account, kind=kind, description=f"item {k}",
                                  amount=-amount if kind == "discount" else amount,
                                  service_type=rng.choice(["", "internet", "iptv"]), day=dt.date(2025, 3, 20))
    return account


def _lines_of(invoice):
    return [(ln.key, ln.kind, ln.description, ln.period_start, ln.period_end, ln.quantity, ln.free_units, ln.amount,
             ln.net, ln.tax, ln.total,
             [(t["code"], D(t["rate"]), t["inclusive"], D(t["base"]), D(t["tax"])) for t in ln.taxes])
            for ln in invoice.lines.order_by("position")]


def _lines_of_draft(draft):
    return [(ln.key, ln.kind, ln.description, ln.period_start, ln.period_end, ln.quantity, ln.free_units, ln.amount,
             ln.net, ln.tax, ln.total,
             [(t["code"], D(t["rate"]), t["inclusive"], D(t["base"]), D(t["tax"])) for t in ln.taxes])
            for ln in draft.lines]


@pytest.mark.parametrize("seed", range(6))
def test_bulk_path_equals_the_pure_function(seed):
    rng = random.Random(seed)
    with clock.travel_to(at(2025, 3, 1)):
        tariffs = make_catalog(start=dt.date(2025, 1, 1))
        make_taxes()
        from tarifa.catalog import services as catalog

        catalog.create_tax(actor=ACTOR, code="EXC", name="Excise", rate="3.5", inclusive=True,
                           service_types=[ServiceType.objects.get(code="mobile")])
        schemes = [None, crm.create_tax_scheme(actor=ACTOR, code="std", name="Standard"),
                   crm.create_tax_scheme(actor=ACTOR, code="novat", name="No VAT", exempt_tax_codes=["VAT"])]
        cycle = make_cycle(code="C", rounding="line" if seed % 2 == 0 else "invoice")
        accounts = [_random_account(rng, tariffs, schemes, cycle, seed * 100 + i) for i in range(8)]
    with clock.travel_to(at(2025, 4, 2)):
        drafts = {}
        for account in accounts:
            drafts[account.pk], _dates = services.preview_invoice(billing_account=account, period="2025-03")
        result = bulk.invoice_batch(cycle=cycle, period="2025-03", account_ids=[a.pk for a in accounts], actor=ACTOR)
        assert result["invoiced"] == len(accounts)
        for account in accounts:
            invoice = Invoice.objects.get(billing_account=account, period="2025-03")
            draft = drafts[account.pk]
            assert _lines_of(invoice) == _lines_of_draft(draft), account.number
            assert (invoice.subtotal, invoice.tax_total, invoice.total, invoice.ledger_amount) == (
                draft.subtotal, draft.tax_total, draft.total, draft.ledger_amount)
            assert [(t["code"], D(t["rate"]), t["inclusive"], D(t["base"]), D(t["tax"])) for t in invoice.tax_summary] == [
                (t["code"], D(t["rate"]), t["inclusive"], D(t["base"]), D(t["tax"])) for t in draft.tax_summary]
            assert invoice.total == invoice.subtotal + invoice.tax_total
            assert invoice.state in ("issued", "paid") and invoice.number
            # Nothing is left to invoice: the pure function on the sources now returns nothing.
            assert sources.read_sources(account, dt.date(2025, 3, 31)) == []
        again = bulk.invoice_batch(cycle=cycle, period="2025-03", account_ids=[a.pk for a in accounts], actor=ACTOR)
        assert again["invoiced"] == 0
        from tarifa.billing.check import check

        assert check(period="2025-03")["ok"], check(period="2025-03")["problems"]
        assert check_ledger()["ok"]
        numbers = sorted(int(i.number[-7:]) for i in Invoice.objects.filter(kind="invoice"))
        assert numbers == list(range(1, len(accounts) + 1))  # gap-free


def test_generation_returns_only_what_is_missing():
    src = [generation.Source(id=f"s{i}", type="transfer", kind="recurring_fee", amount=D("1.000000"),
                             day_from=dt.date(2025, 3, i), day_to=dt.date(2025, 3, i), service="home",
                             service_type="internet", subscription="sub", subscription_number="S1", tariff="NET",
                             fee="recurring") for i in range(1, 11)]
    rates = {"internet": [generation.TaxRate("VAT", D("20"), True)]}
    first = generation.generate(sources=src[:5], taxes=rates, currency="EUR")
    assert first.total == D("5.00") and first.tax_total == D("0.83") and first.subtotal == D("4.17")
    done = {s for ln in first.lines for s, _t, _a in ln.sources}
    second = generation.generate(sources=src, invoiced=done, taxes=rates, currency="EUR")
    assert [ln.period_start for ln in second.lines] == [dt.date(2025, 3, 6)]
    assert second.total == D("5.00")
    assert generation.generate(sources=src, invoiced={s.id for s in src}, taxes=rates, currency="EUR").empty


def test_per_invoice_rounding_rounds_each_tax_once():
    src = [generation.Source(id=f"s{i}", type="transfer", kind="one_time_fee", amount=D("0.333333"),
                             day_from=dt.date(2025, 3, 1), day_to=dt.date(2025, 3, 1), service_type="iptv",
                             fee=f"f{i}") for i in range(3)]
    rates = {"iptv": [generation.TaxRate("TVL", D("2"), False)]}
    line = generation.generate(sources=src, taxes=rates, rounding="line", currency="EUR")
    whole = generation.generate(sources=src, taxes=rates, rounding="invoice", currency="EUR")
    assert line.total == D("1.02") and line.tax_total == D("0.03")  # 3 × (0.33 + 0.01)
    assert whole.total == D("1.02") and whole.tax_total == D("0.02")  # 1.00 + round(0.02)
    assert whole.rounding_difference == D("1.02") - D("0.999999") - D("0.02")
