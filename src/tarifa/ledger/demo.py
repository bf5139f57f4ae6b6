"""Demo billing accounts for the demo customers: prepaid and postpaid, USD and EUR, payments,
charges, adjustments, a transfer between accounts, a reversal, holds in every state, a mode
switch and a closed account. Through the services only; loading twice changes nothing."""

import datetime as dt

from tarifa.crm.models import Customer
from tarifa.kernel.clock import now

from . import services
from .models import BillingAccount, Hold, Transfer

KEY = "demo-ledger"


def _key(name):
    return f"{KEY}:{name}"


def load(*, actor) -> dict:
    if Transfer.objects.filter(idempotency_key__startswith=f"{KEY}:").exists():
        return _summary()
    customers = list(Customer.objects.filter(status="active", archived_at__isnull=True).order_by("number"))
    if not customers:
        return {"accounts": 0}
    usd = services.default_currency()
    cash = services.system_account("cash:DESK1", usd, name="Front desk")
    revenue = services.system_account("revenue:internet", usd, name="Internet revenue")
    accounts = []
    for i, customer in enumerate(customers):
        account = customer.billing_accounts.filter(status="active", currency=usd).order_by("number").first()
        if account is None:
            organization = customer.kind == Customer.Kind.ORGANIZATION
            account = services.open_account(actor=actor, customer=customer, currency=usd,
                                            payment_mode="postpaid" if organization else "prepaid",
                                            credit_limit="500" if organization else "0")
        accounts.append(account)
        services.post_transfer(actor=actor, debit=cash, credit=account, amount=f"{20 + 15 * i}.00", currency=usd,
                               kind="payment", idempotency_key=_key(f"payment:{account.number}"),
                               tags={"channel": "cash", "cashier": "demo"}, memo="Cash at the front desk")
        services.post_transfer(actor=actor, debit=account, credit=revenue, amount="9.99", currency=usd, kind="charge",
                               idempotency_key=_key(f"charge:{account.number}"),
                               tags={"service_type": "internet", "tariff": "demo"}, memo="Internet, demo month")

    first = accounts[0]
    # A second customer's money in EUR, and a second USD account to move money into.
    eur = services.open_account(actor=actor, customer=first.customer, currency="EUR", payment_mode="prepaid")
    eur_cash = services.system_account("cash:DESK1", "EUR", name="Front desk (EUR)")
    services.post_transfer(actor=actor, debit=eur_cash, credit=eur, amount="50.00", currency="EUR", kind="payment",
                           idempotency_key=_key("payment:eur"), tags={"channel": "cash"})
    savings = services.open_account(actor=actor, customer=first.customer, currency=usd, payment_mode="prepaid")
    services.transfer_between_accounts(actor=actor, source=first, target=savings, amount="5.00",
                                       reason="Customer asked to split the balance", idempotency_key=_key("move"))

    services.adjust(actor=actor, account=first, amount="5.00", reason="Goodwill: outage on the 3rd",
                    idempotency_key=_key("goodwill"))
    if len(accounts) > 1:
        services.adjust(actor=actor, account=accounts[1], amount="-2.50", reason="Correction of a manual entry",
                        idempotency_key=_key("correction"))
        mistaken = services.post_transfer(actor=actor, debit=cash, credit=accounts[1], amount="100.00", currency=usd,
                                          kind="payment", idempotency_key=_key("mistaken"),
                                          tags={"channel": "cash"}, memo="Keyed to the wrong account")
        services.reverse_transfer(mistaken, actor=actor, reason="Keyed to the wrong account",
                                  idempotency_key=_key("mistaken:reversal"))
        services.switch_payment_mode(accounts[1], actor=actor, payment_mode="postpaid", reason="Signed a contract")

    voice = services.system_account("revenue:voice", usd, name="Voice revenue")
    expires = now() + dt.timedelta(days=30)
    pending = services.create_hold(actor=actor, debit=first, credit=voice, amount="3.00", currency=usd,
                                   idempotency_key=_key("hold:pending"), kind="charge", expires_at=expires,
                                   tags={"service_type": "voice"}, memo="Call in progress")
    posted = services.create_hold(actor=actor, debit=first, credit=voice, amount="2.00", currency=usd,
                                  idempotency_key=_key("hold:posted"), kind="charge", expires_at=expires,
                                  tags={"service_type": "voice"}, memo="Call")
    services.post_hold(posted, actor=actor, amount="1.20", idempotency_key=_key("hold:posted:post"))
    voided = services.create_hold(actor=actor, debit=first, credit=voice, amount="1.00", currency=usd,
                                  idempotency_key=_key("hold:voided"), kind="charge", expires_at=expires)
    services.void_hold(voided, actor=actor, reason="Call failed to connect")
    assert pending.state == Hold.State.PENDING

    closed = services.open_account(actor=actor, customer=customers[-1], currency=usd)
    services.close_account(closed, actor=actor, reason="Opened by mistake")
    return _summary()


def _summary() -> dict:
    return {"accounts": BillingAccount.objects.count(), "transfers": Transfer.objects.count(),
            "holds": Hold.objects.count()}
