"""The built-in functions scripts call (docs/scripts.md lists them with examples).

Records are named by their numbers (customer HQ-C…, account HQ-A…, subscription HQ-S…) and
tariffs by code; amounts are decimal text in the currency's units ("12.50", rounded half-up; the
ledger's exact balance is `balance_exact`; `tonumber()` to compare in a script). Each runs as the run's actor and needs the permission it is exposed with.
"""

import datetime as dt

from django.db.models import Q

from tarifa.crm import services as crm_services
from tarifa.crm.models import Customer
from tarifa.crm.selectors import preferred_contact
from tarifa.kernel import clock
from tarifa.kernel.errors import NotFound, ValidationFailed
from tarifa.kernel.events import emit
from tarifa.kernel.money import format_amount
from tarifa.ledger.models import BillingAccount
from tarifa.subscriptions import services as subscription_services
from tarifa.subscriptions.models import Subscription, Suspension

from .registry import expose


def _text(value, name, *, required=True) -> str:
    if value is None or value == "":
        if required:
            raise ValidationFailed(f"{name} is required.", code="argument_required", fields={name: ["Required."]})
        return ""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ValidationFailed(f"{name} must be text.", code="invalid_argument", fields={name: ["Text."]})
    return str(value).strip()


def _customer(number) -> Customer:
    customer = Customer.objects.filter(number=_text(number, "customer")).first()
    if customer is None:
        raise NotFound(f"No customer {number}.", code="customer_not_found")
    return customer


def _account(number) -> BillingAccount:
    account = (BillingAccount.objects.select_related("customer", "ledger_account")
               .filter(number=_text(number, "account")).first())
    if account is None:
        raise NotFound(f"No account {number}.", code="account_not_found")
    return account


def _subscription(number) -> Subscription:
    sub = (Subscription.objects.select_related("billing_account", "tariff", "service")
           .filter(number=_text(number, "subscription")).first())
    if sub is None:
        raise NotFound(f"No subscription {number}.", code="subscription_not_found")
    return sub


def _date(value):
    return value.isoformat() if value else None


def customer_data(customer: Customer) -> dict:
    email, phone = preferred_contact(customer, "email"), preferred_contact(customer, "phone")
    return {"number": customer.number, "kind": customer.kind, "name": customer.display_name,
            "status": customer.status, "language": customer.language,
            "email": email.value if email else None, "phone": phone.value if phone else None,
            "accounts": [a.number for a in customer.billing_accounts.order_by("number")]}


def account_data(account: BillingAccount) -> dict:
    ledger = account.ledger_account
    def units(amount):
        return format_amount(amount, account.currency, code=False, grouping=False)

    return {"number": account.number, "customer": account.customer.number, "currency": account.currency,
            "payment_mode": account.payment_mode, "status": account.status,
            "balance": units(ledger.balance), "available": units(ledger.available),
            "credit_limit": units(account.credit_limit), "balance_exact": f"{ledger.balance:f}"}


def subscription_data(sub: Subscription) -> dict:
    open_causes = list(sub.suspensions.filter(ended_at__isnull=True).order_by("started_at")
                       .values_list("cause", flat=True))
    return {"number": sub.number, "account": sub.billing_account.number, "status": sub.status,
            "service": sub.service.code, "tariff": sub.tariff.code, "tariff_name": sub.tariff.name,
            "login": sub.login, "phone_number": sub.phone_number, "activated_on": _date(sub.activated_on),
            "terminated_on": _date(sub.terminated_on), "suspended_for": open_causes,
            "parameters": sub.parameters or {}}


# Reading ---------------------------------------------------------------------------------------

def customer(number, *, actor):
    """customer(number) → the customer: number, kind, name, status, language, email, phone, accounts."""
    return customer_data(_customer(number))


def account(number, *, actor):
    """account(number) → the billing account: number, customer, currency, payment_mode, status,
    balance, available, credit_limit (decimal text in the currency's units), balance_exact."""
    return account_data(_account(number))


def accounts(customer, *, actor):
    """accounts(customer_number) → the customer's billing accounts (as account() gives them)."""
    found = _customer(customer)
    return [account_data(a) for a in BillingAccount.objects.select_related("customer", "ledger_account")
            .filter(customer=found).order_by("number")]


def subscription(number, *, actor):
    """subscription(number) → number, account, status, service, tariff (code), tariff_name, login,
    phone_number, activated_on, terminated_on, suspended_for (open causes), parameters."""
    return subscription_data(_subscription(number))


def subscriptions(owner, *, actor, status=None):
    """subscriptions(customer_or_account_number [, status]) → the subscriptions (as subscription() gives them)."""
    owner = _text(owner, "owner")
    qs = (Subscription.objects.select_related("billing_account", "tariff", "service")
          .filter(Q(billing_account__number=owner) | Q(billing_account__customer__number=owner)))
    if status:
        qs = qs.filter(status=_text(status, "status"))
    return [subscription_data(s) for s in qs.order_by("number")[:500]]


def count_subscriptions(*, actor, status=None, tariff=None, service=None):
    """count_subscriptions{status=…, tariff=…, service=…} → how many subscriptions match (every filter optional)."""
    qs = Subscription.objects.all()
    if status:
        qs = qs.filter(status=_text(status, "status"))
    if tariff:
        qs = qs.filter(tariff__code=_text(tariff, "tariff"))
    if service:
        qs = qs.filter(service__code=_text(service, "service"))
    return qs.count()


def now(*, actor):
    """now() → the current date and time (ISO 8601, with the time zone)."""
    return clock.now().isoformat()


def today(*, actor):
    """today() → today's date (YYYY-MM-DD)."""
    return clock.today().isoformat()


# Acting (as the run's actor, in the caller's transaction) ------------------------------------------

def _cause(value) -> str:
    cause = _text(value or Suspension.Cause.OPERATOR, "cause")
    if cause not in Suspension.Cause.values:
        raise ValidationFailed(f"Unknown cause {cause!r} (one of {', '.join(Suspension.Cause.values)}).",
                               code="invalid_cause", fields={"cause": ["Unknown."]})
    return cause


def suspend(subscription, reason="", *, actor, cause=None):
    """suspend(subscription, reason [, cause]) → the subscription: opens a suspension (cause: operator,
    customer_request, balance or dunning; default operator)."""
    sub = subscription_services.suspend(_subscription(subscription), actor=actor, cause=_cause(cause),
                                        reason=_text(reason, "reason", required=False))
    return subscription_data(sub)


def resume(subscription, reason="", *, actor, cause=None):
    """resume(subscription, reason [, cause]) → the subscription: clears that suspension cause
    (default operator); with none left open the subscription is active again."""
    sub = subscription_services.resume(_subscription(subscription), actor=actor, cause=_cause(cause),
                                       reason=_text(reason, "reason", required=False))
    return subscription_data(sub)


def change_tariff(subscription, tariff, *, actor, effective=None, reason=""):
    """change_tariff(subscription, tariff_code [, effective=YYYY-MM-DD, reason=…]) → the subscription:
    the tariff from `effective` (default today; the same service and currency)."""
    from tarifa.catalog.models import Tariff

    new = Tariff.objects.filter(code=_text(tariff, "tariff"), archived_at__isnull=True).first()
    if new is None:
        raise NotFound(f"No tariff {tariff}.", code="tariff_not_found")
    day = None
    if effective:
        try:
            day = dt.date.fromisoformat(_text(effective, "effective"))
        except ValueError:
            raise ValidationFailed("effective is a date YYYY-MM-DD.", code="invalid_date",
                                   fields={"effective": ["YYYY-MM-DD."]}) from None
    sub = subscription_services.change_tariff(_subscription(subscription), actor=actor, tariff=new, effective=day,
                                              reason=_text(reason, "reason", required=False))
    return subscription_data(sub)


def add_note(customer, text, *, actor):
    """add_note(customer, text) → true: a note on the customer's page (notes are never edited)."""
    crm_services.add_note(_customer(customer), actor=actor, text=_text(text, "text"))
    return True


NOTIFY_EVENTS = ("script_message",)


def notify(customer, subject, text, *, actor):
    """notify(customer, subject, text) → true: a message to the customer on their preferred channel,
    through the notification templates of the event "Message from a script" (after the caller's
    transaction commits; nothing is sent when it rolls back)."""
    found = _customer(customer)
    subject, text = _text(subject, "subject", required=False)[:200], _text(text, "text")[:2000]
    emit("scripts.notify", obj=found, payload={"customer": str(found.pk), "event": "script_message",
                                                "subject": subject, "text": text})
    return True


expose("customer", customer, "crm.view_customer", read_only=True)
expose("account", account, "ledger.view_billingaccount", read_only=True)
expose("accounts", accounts, "ledger.view_billingaccount", read_only=True)
expose("subscription", subscription, "subscriptions.view_subscription", read_only=True)
expose("subscriptions", subscriptions, "subscriptions.view_subscription", read_only=True)
expose("count_subscriptions", count_subscriptions, "subscriptions.view_subscription", read_only=True)
expose("now", now, read_only=True)
expose("today", today, read_only=True)
expose("suspend", suspend, "subscriptions.suspend_subscription")
expose("resume", resume, "subscriptions.suspend_subscription")
expose("change_tariff", change_tariff, "subscriptions.change_tariff")
expose("add_note", add_note, "crm.add_note")
expose("notify", notify, "integrations.add_notification")
