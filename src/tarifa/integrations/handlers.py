"""Domain events → customer notifications (the integrations layer sits above every app)."""

from tarifa.kernel.events import subscribe
from tarifa.kernel.money import format_amount
from tarifa.ledger.models import BillingAccount
from tarifa.subscriptions.models import Subscription

from .services import ATTACHMENTS, notify, send_staff_email


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


@subscribe("scripts.notify")
def on_script_message(event):
    """A script's notify(customer, subject, text): the "Message from a script" templates render
    {{ subject }} and {{ text }}."""
    from tarifa.crm.models import Customer

    customer = Customer.objects.filter(pk=event.payload.get("customer")).first()
    if customer is not None:
        notify(event="script_message", customer=customer, source_event=str(event.pk),
               context={"subject": event.payload.get("subject", ""), "text": event.payload.get("text", "")})


# Tickets (a sibling app: read by the event's payload, never imported). A step's "notify" handler
# addressed to the customer becomes their notification; an SLA escalation e-mails the staff it names.

@subscribe("ticket.notification")
def on_ticket_notification(event):
    from tarifa.crm.models import Customer

    if event.payload.get("to") != "customer":
        return
    customer = Customer.objects.filter(pk=event.payload.get("customer")).first()
    if customer is not None:
        notify(event="ticket_message", customer=customer, source_event=str(event.pk),
               context={"ticket": event.payload.get("ticket", ""), "text": event.payload.get("message", "")})


@subscribe("ticket.escalated")
def on_ticket_escalated(event):
    """E-mail the overdue ticket's assignee and the members of the escalation role (those with an
    address), once per escalation event."""
    from django.contrib.auth import get_user_model

    from django.db.models import Q

    payload = event.payload
    wanted = Q(pk__in=[payload["assignee_id"]] if payload.get("assignee_id") else [])
    if payload.get("role_id"):
        wanted |= Q(roles__pk=payload["role_id"])
    addresses = (get_user_model().objects.filter(wanted, is_active=True).exclude(email="")
                 .values_list("email", flat=True).distinct())
    subject = f"Ticket {payload.get('ticket', '')} is overdue"
    for address in sorted(set(addresses)):
        send_staff_email(to=address, subject=subject, body=payload.get("message", ""))


def _watcher_addresses(payload):
    """The addresses of the watchers the ticket's event names (active, with an e-mail), never the
    person who did it."""
    from django.contrib.auth import get_user_model

    ids = [pk for pk in payload.get("watchers") or [] if pk and pk != payload.get("actor_id")]
    if not ids:
        return []
    users = get_user_model().objects.filter(pk__in=ids, is_active=True).exclude(email="")
    if payload.get("actor_id"):
        users = users.exclude(pk=payload["actor_id"])
    return sorted(set(users.values_list("email", flat=True)))


@subscribe("ticket.moved")
def on_ticket_moved(event):
    """E-mail the ticket's watchers (tickets names them: those who may see it) that it moved."""
    payload = event.payload
    subject = f"Ticket {payload.get('ticket', '')} is now at “{payload.get('to_name', '')}”"
    body = (f"Ticket {payload.get('ticket', '')}: {payload.get('title', '')}\n"
            f"Moved from “{payload.get('from_name', '')}” to “{payload.get('to_name', '')}” by "
            f"{payload.get('actor', '')}." + (f"\nResolution: {payload['resolution']}" if payload.get("resolution")
                                               else "") + ("\nThe ticket is closed." if payload.get("closed") else ""))
    for address in _watcher_addresses(payload):
        send_staff_email(to=address, subject=subject, body=body)


@subscribe("ticket.commented")
def on_ticket_commented(event):
    """E-mail the ticket's watchers (those who may read its comments) the new comment."""
    payload = event.payload
    subject = f"Ticket {payload.get('ticket', '')}: a comment from {payload.get('actor', '')}"
    body = (f"Ticket {payload.get('ticket', '')}: {payload.get('title', '')}\n"
            + ("Internal comment" if payload.get("internal") else "Comment visible to the customer")
            + f" by {payload.get('actor', '')}:\n\n{payload.get('text', '')}")
    for address in _watcher_addresses(payload):
        send_staff_email(to=address, subject=subject, body=body)


# Billing: the invoice (or credit note) e-mailed on issue with its PDF; dunning notices.

def _invoice(event):
    from tarifa.billing.models import Invoice

    return (Invoice.objects.select_related("customer", "billing_account", "credited_invoice")
            .filter(pk=event.payload.get("invoice")).first())


@subscribe("billing.invoice_issued")
def on_invoice_issued(event):
    invoice = _invoice(event)
    if invoice is not None:
        # Amounts in the currency's units ("49.00", not "49.000000"); the template adds the code.
        notify(event="invoice_issued", customer=invoice.customer, source_event=str(event.pk),
               context={"invoice": invoice, "account": invoice.billing_account,
                        "total": format_amount(invoice.total, invoice.currency, code=False),
                        "currency": invoice.currency, "due_date": invoice.due_date})


@subscribe("billing.credit_note_issued")
def on_credit_note_issued(event):
    """A credit note has its own message: what is credited against which invoice, nothing to pay."""
    note = _invoice(event)
    if note is not None:
        notify(event="credit_note_issued", customer=note.customer, source_event=str(event.pk),
               context={"credit_note": note, "invoice": note.credited_invoice, "account": note.billing_account,
                        "amount": format_amount(-note.total, note.currency, code=False), "currency": note.currency,
                        "reason": note.reason})


def invoice_attachment(note):
    """The PDF of the invoice the notification is about (rendered on first use, then kept)."""
    from tarifa.billing.documents import invoice_pdf
    from tarifa.kernel.models import DomainEvent

    source = DomainEvent.objects.filter(pk=note.source_event).first()
    invoice = _invoice(source) if source is not None else None
    if invoice is None:
        return []
    return [(f"{invoice.number}.pdf", invoice_pdf(invoice), "application/pdf")]


ATTACHMENTS["invoice_issued"] = invoice_attachment
ATTACHMENTS["credit_note_issued"] = invoice_attachment


@subscribe("billing.dunning_notice")
def on_dunning_notice(event):
    account = BillingAccount.objects.select_related("customer").filter(pk=event.payload.get("billing_account")).first()
    if account is not None:
        notify(event="dunning_notice", customer=account.customer, source_event=str(event.pk),
               context={"account": account, **event.payload})
