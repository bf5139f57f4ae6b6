"""Domain events → customer notifications (the integrations layer sits above every app)."""

from tarifa.kernel.events import subscribe
from tarifa.ledger.models import BillingAccount
from tarifa.subscriptions.models import Subscription

from .services import notify


def _sub(event):
    return (Subscription.objects.select_related("billing_account__customer", "tariff", "service")
            .filter(pk=event.payload.get("subscription")).first())


def _balance(account):
    account.ledger_account.refresh_from_db()
    return account.ledger_account.balance


@subscribe("subscription.suspended")
def on_suspended(event):
    sub = _sub(event)
    if sub is not None:
        notify(event="suspended", customer=sub.billing_account.customer, source_event=str(event.pk),
               context={"subscription": sub, "cause": event.payload.get("cause", ""),
                        "balance": _balance(sub.billing_account), "currency": sub.billing_account.currency})


@subscribe("subscription.resumed")
def on_resumed(event):
    sub = _sub(event)
    if sub is not None:
        notify(event="resumed", customer=sub.billing_account.customer, source_event=str(event.pk),
               context={"subscription": sub, "balance": _balance(sub.billing_account),
                        "currency": sub.billing_account.currency})


@subscribe("subscription.fee_charged")
def on_fee(event):
    sub = _sub(event)
    if sub is not None:
        notify(event="fee_charged", customer=sub.billing_account.customer, source_event=str(event.pk),
               context={"subscription": sub, "fee": event.payload.get("fee", ""),
                        "amount": event.payload.get("amount", ""), "currency": event.payload.get("currency", "")})


@subscribe("account.low_balance")
def on_low_balance(event):
    account = BillingAccount.objects.select_related("customer").filter(pk=event.payload.get("billing_account")).first()
    if account is not None:
        notify(event="low_balance", customer=account.customer, source_event=str(event.pk),
               context={"account": account, "balance": event.payload.get("balance", ""),
                        "currency": account.currency})


@subscribe("ledger.account_credited")
def on_payment(event):
    if event.payload.get("kind") != "payment":
        return
    account = BillingAccount.objects.select_related("customer").filter(pk=event.payload.get("billing_account")).first()
    if account is not None:
        notify(event="payment_received", customer=account.customer, source_event=str(event.pk),
               context={"account": account, "amount": event.payload.get("amount", ""),
                        "currency": event.payload.get("currency", ""), "balance": _balance(account)})
