"""Test helpers: customers and accounts made through the services."""

import itertools

from tarifa.crm import services as crm
from tarifa.ledger import services

_seq = itertools.count(1)


def customer(**fields):
    n = next(_seq)
    fields.setdefault("kind", "individual")
    fields.setdefault("first_name", "Test")
    fields.setdefault("last_name", f"Customer{n}")
    return crm.create_customer(actor="test", **fields)


def account(cust=None, *, currency="USD", payment_mode="prepaid", credit_limit="0"):
    return services.open_account(actor="test", customer=cust or customer(), currency=currency,
                                 payment_mode=payment_mode, credit_limit=credit_limit)


def cash(currency="USD", desk="DESK1"):
    return services.system_account(f"cash:{desk}", currency)


def revenue(currency="USD", service="internet"):
    return services.system_account(f"revenue:{service}", currency)


def key(prefix="k"):
    return f"{prefix}-{next(_seq)}"


def pay(acc, amount, *, idempotency_key=None, desk="DESK1"):
    return services.post_transfer(actor="test", debit=cash(acc.currency, desk), credit=acc, amount=amount,
                                  currency=acc.currency, kind="payment", idempotency_key=idempotency_key or key("pay"))


def charge(acc, amount, *, idempotency_key=None, **kwargs):
    return services.post_transfer(actor="test", debit=acc, credit=revenue(acc.currency), amount=amount,
                                  currency=acc.currency, kind="charge",
                                  idempotency_key=idempotency_key or key("charge"), **kwargs)


def balance(acc):
    acc.ledger_account.refresh_from_db()
    return acc.ledger_account.balance
