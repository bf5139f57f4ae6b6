"""Demo subscriptions on the demo customers: every state, a TV pick, a promised payment, a charge run.

Goes through the services (fees are real ledger transfers). Loading twice changes nothing.
"""

import datetime as dt

from tarifa.catalog.models import ChannelPackage, Tariff
from tarifa.crm.models import Customer
from tarifa.kernel.clock import today
from tarifa.ledger import services as ledger

from . import services
from .models import ChargeRun, PromisedPayment, Subscription


def _account(customer, actor):
    account = customer.billing_accounts.filter(status="active").order_by("number").first()
    if account is None:
        account = ledger.open_account(actor=actor, customer=customer, currency=ledger.default_currency())
    return account


def load(*, actor) -> dict:
    if Subscription.objects.filter(note__startswith="demo").exists():
        return {"subscriptions": Subscription.objects.count()}
    tariffs = {t.code: t for t in Tariff.objects.filter(code__in=["NET-100", "NET-500", "MOB-DAY", "TV-BASIC"])}
    if len(tariffs) < 4:
        return {"subscriptions": 0}
    customers = list(Customer.objects.filter(status="active", archived_at__isnull=True).order_by("number")[:6])
    if not customers:
        return {"subscriptions": 0}
    cash = ledger.system_account("cash:DEMO", ledger.default_currency())
    made = []
    for i, customer in enumerate(customers):
        account = _account(customer, actor)
        if account.currency != tariffs["NET-100"].currency:
            continue
        ledger.post_transfer(actor=actor, debit=cash, credit=account, amount="60.00", currency=account.currency,
                             kind="payment", idempotency_key=f"demo-subscriptions-topup-{account.number}")
        net = services.create_subscription(actor=actor, billing_account=account,
                                           tariff=tariffs["NET-100" if i % 2 == 0 else "NET-500"],
                                           login=f"demo{i + 1}", ip_address=f"10.0.0.{i + 10}",
                                           note="demo internet", activate=True)
        made.append(net)
        if i == 0:
            mob = services.create_subscription(actor=actor, billing_account=account, tariff=tariffs["MOB-DAY"],
                                               phone_number="+15550100", iccid="8901000000000000100",
                                               imsi="001010000000100", note="demo mobile", activate=True)
            services.replace_sim(mob, actor=actor, iccid="8901000000000000101", imsi="001010000000101")
            tv = services.create_subscription(actor=actor, billing_account=account, tariff=tariffs["TV-BASIC"],
                                              smart_card="SC-DEMO-1", note="demo tv", activate=True)
            services.add_item(tv, actor=actor, package=ChannelPackage.objects.get(code="sport"))
            made += [mob, tv]
            services.grant_promised_payment(account, actor=actor)
        if i == 1:
            services.suspend(net, actor=actor, cause="customer_request", reason="holiday (demo)",
                             planned_end=today() + dt.timedelta(days=14))
        if i == 2:
            services.suspend(net, actor=actor, cause="operator", reason="equipment check (demo)")
        if i == 3:
            pending = services.create_subscription(actor=actor, billing_account=account, tariff=tariffs["MOB-DAY"],
                                                   phone_number="+15550103", note="demo pending mobile")
            made.append(pending)
        if i == 4:
            services.terminate(net, actor=actor, reason="moved away (demo)")
    from .daily import run

    run(as_of=today(), actor=actor)
    return {"subscriptions": len(made), "promised_payments": PromisedPayment.objects.count(),
            "charge_runs": ChargeRun.objects.count()}
