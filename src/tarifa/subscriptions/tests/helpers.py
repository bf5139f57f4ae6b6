"""Story helpers: a catalog, customers, payments at the cash desk, the events worker."""

import datetime as dt
from decimal import Decimal

from tarifa.catalog import services as catalog
from tarifa.crm import services as crm
from tarifa.kernel.events import handle
from tarifa.kernel.models import DomainEvent
from tarifa.ledger import services as ledger
from tarifa.ledger.models import Transfer

ACTOR = "test"
_n = [0]


def make_catalog(start=dt.date(2024, 1, 1)):
    inet = catalog.create_service_type(actor=ACTOR, code="internet", name="Internet", category="internet",
                                       identifier_kinds=["login", "ip_address", "mac_address"])
    mob = catalog.create_service_type(actor=ACTOR, code="mobile", name="Mobile", category="mobile",
                                      identifier_kinds=["phone_number", "iccid", "imsi"])
    tv = catalog.create_service_type(actor=ACTOR, code="iptv", name="IPTV", category="iptv",
                                     identifier_kinds=["smart_card"])
    home = catalog.create_service(actor=ACTOR, code="home", name="Home internet", service_type=inet)
    mobile = catalog.create_service(actor=ACTOR, code="mobile", name="Mobile", service_type=mob)
    television = catalog.create_service(actor=ACTOR, code="tv", name="TV", service_type=tv)
    pkg = catalog.create_channel_package(actor=ACTOR, code="sport", name="Sport", channels=[
        catalog.create_channel(actor=ACTOR, code="sport1", name="Sport 1", number=1)])
    t = {
        "NET-31": catalog.create_tariff(actor=ACTOR, code="NET-31", name="Net 31", service=home, currency="EUR",
                                        recurring_fee="31.00", valid_from=start, suspend_below="0", resume_at="0",
                                        warn_below="5", promised_payment_amount="20", promised_payment_days=3,
                                        one_time_fees={"activation": "5.00"}),
        "NET-62": catalog.create_tariff(actor=ACTOR, code="NET-62", name="Net 62", service=home, currency="EUR",
                                        recurring_fee="62.00", valid_from=start,
                                        one_time_fees={"tariff_change": "1.00"}),
        "MOB": catalog.create_tariff(actor=ACTOR, code="MOB", name="Mobile daily", service=mobile, currency="EUR",
                                     period="day", recurring_fee="0.50", valid_from=start,
                                     one_time_fees={"sim_replacement": "5.00", "number_change": "4.00"}),
        "TV": catalog.create_tariff(actor=ACTOR, code="TV", name="TV", service=television, currency="EUR",
                                    proration="none", recurring_fee="10.00", valid_from=start,
                                    channel_prices=[{"package": pkg, "amount": "3.00"}]),
    }
    return t


def customer_account(*, kind="individual", payment_mode="prepaid", credit_limit="0", **fields):
    _n[0] += 1
    if kind == "individual":
        fields.setdefault("first_name", "Ivan")
        fields.setdefault("last_name", f"Petrov{_n[0]}")
    else:
        fields.setdefault("legal_name", f"Acme {_n[0]} Ltd")
        fields.setdefault("tax_id", f"TAX{_n[0]:05d}")
    customer = crm.create_customer(actor=ACTOR, kind=kind, **fields)
    return ledger.open_account(actor=ACTOR, customer=customer, currency="EUR", payment_mode=payment_mode,
                               credit_limit=credit_limit)


def pay(account, amount, *, key=None):
    _n[0] += 1
    cash = ledger.system_account("cash:DESK1", account.currency)
    return ledger.post_transfer(actor=ACTOR, debit=cash, credit=account, amount=amount, currency=account.currency,
                                kind="payment", idempotency_key=key or f"pay-{_n[0]}")


def balance(account) -> Decimal:
    account.ledger_account.refresh_from_db()
    return account.ledger_account.balance


def run_events():
    """What the worker does: hand every pending event to its handlers (until none is left)."""
    for _ in range(5):
        pending = list(DomainEvent.objects.filter(handled_at__isnull=True).order_by("occurred_at", "id"))
        if not pending:
            return
        for event in pending:
            handle(event)


def fee_transfers(sub, fee=None):
    qs = Transfer.objects.filter(reference_type="subscriptions.subscription", reference_id=str(sub.pk), kind="charge")
    if fee:
        qs = qs.filter(tags__fee=fee)
    return qs


def charged(sub, fee=None) -> Decimal:
    return sum((t.amount for t in fee_transfers(sub, fee)), Decimal(0))


def subscription_and_warehouse(*, login="dev1"):
    """A postpaid account (100 paid, credit limit 1,000) with an active NET-31 subscription, and an
    empty warehouse "WH": the world of the device tests (they receive their own items)."""
    from tarifa.inventory import services as inventory
    from tarifa.subscriptions import services as subs

    tariffs = make_catalog()
    account = customer_account(payment_mode="postpaid", credit_limit="1000")
    pay(account, "100")
    sub = subs.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login=login,
                                   activate=True)
    warehouse = inventory.create_location(actor=ACTOR, code="WH", name="Warehouse", kind="warehouse")
    return sub, warehouse


def receive_routers(warehouse, serials, **item):
    """Item "RT" (a router at cost 30 EUR, `item` overriding) received into `warehouse` with `serials`."""
    from tarifa.inventory import services as inventory
    from tarifa.inventory.models import Item

    router = inventory.create_item(actor=ACTOR, **{"code": "RT", "name": "Router", "kind": Item.Kind.ROUTER,
                                                   "currency": "EUR", "cost": "30", **item})
    inventory.receive(actor=ACTOR, warehouse=warehouse, item=router, serials=list(serials))
    return router
