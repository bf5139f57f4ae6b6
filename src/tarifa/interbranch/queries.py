"""What this branch answers other branches about its own subscribers (synchronous signed queries,
`tarifa.federation.queries`): `interbranch.search` (exact number, phone, login or contract) and
`interbranch.card` (a customer's card: name, accounts and balances, subscriptions and their states).
Read-only; any active node of the registry may ask."""

from django.db.models import Q

from tarifa.crm.models import Contact, Contract, Customer
from tarifa.federation.queries import register_query
from tarifa.kernel.clock import now
from tarifa.kernel.errors import NotFound, ValidationFailed
from tarifa.ledger.models import BillingAccount
from tarifa.subscriptions.models import Subscription

MAX_RESULTS = 20


def _text(params, name, limit=100) -> str:
    value = str(params.get(name) or "").strip()
    if not value or len(value) > limit:
        raise ValidationFailed(f"{name} is required (at most {limit} characters).", code="bad_query",
                               fields={name: ["Required."]})
    return value


def search_local(q: str) -> list[dict]:
    """This branch's customers matching `q` exactly: customer, account, subscription or contract number,
    phone number (a subscription's or a contact's), login. At most MAX_RESULTS."""
    q = q.strip()
    matched: dict = {}

    def add(customer_ids, how):
        for cid in customer_ids:
            matched.setdefault(cid, how)

    add(Customer.objects.filter(number__iexact=q).values_list("id", flat=True), "customer number")
    add(BillingAccount.objects.filter(number__iexact=q).values_list("customer_id", flat=True), "account number")
    add(Contract.objects.filter(number__iexact=q).values_list("customer_id", flat=True), "contract")
    subs = Subscription.objects.filter(Q(number__iexact=q) | Q(phone_number=q) | Q(login__iexact=q))
    add(subs.values_list("billing_account__customer_id", flat=True), "subscription")
    add(Contact.objects.filter(value__iexact=q, archived_at__isnull=True).values_list("customer_id", flat=True),
        "contact")
    ids = list(matched)[:MAX_RESULTS]
    customers = Customer.objects.filter(id__in=ids).prefetch_related("billing_accounts").order_by("number")
    return [{"customer": c.number, "name": c.display_name, "status": c.status, "matched": matched[c.id],
             "accounts": [a.number for a in c.billing_accounts.all().order_by("number")]} for c in customers]


def card_local(number: str) -> dict:
    """The card of the customer with this customer or account number; NotFound otherwise."""
    number = number.strip()
    customer = Customer.objects.filter(number__iexact=number).first()
    if customer is None:
        account = BillingAccount.objects.select_related("customer").filter(number__iexact=number).first()
        customer = account.customer if account is not None else None
    if customer is None:
        raise NotFound(f"No customer or account {number!r} at this branch.", code="subscriber_not_found")
    accounts = list(BillingAccount.objects.select_related("ledger_account").filter(customer=customer)
                    .order_by("number"))
    subs = (Subscription.objects.select_related("tariff", "service", "billing_account")
            .filter(billing_account__customer=customer).order_by("number"))
    return {
        "customer": {"number": customer.number, "name": customer.display_name, "kind": customer.kind,
                     "status": customer.status},
        "accounts": [{"number": a.number, "currency": a.currency, "status": a.status,
                      "payment_mode": a.payment_mode, "balance": f"{a.ledger_account.balance:f}"} for a in accounts],
        "subscriptions": [{"number": s.number, "account": s.billing_account.number, "service": str(s.service),
                           "tariff": str(s.tariff), "status": s.status, "phone_number": s.phone_number,
                           "login": s.login} for s in subs],
        "as_of": now().isoformat(),
    }


@register_query("interbranch.search")
def answer_search(sender: str, params: dict) -> list[dict]:
    return search_local(_text(params, "q"))


@register_query("interbranch.card")
def answer_card(sender: str, params: dict) -> dict:
    return card_local(_text(params, "number", 64))
