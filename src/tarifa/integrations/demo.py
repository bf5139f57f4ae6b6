"""Demo notification templates (e-mail and SMS, English) and one logged notification."""

from tarifa.crm.models import Customer

from . import services
from .models import Notification, NotificationTemplate

TEMPLATES = {
    "low_balance": ("Your balance is low",
                    "Dear {{ customer.display_name }}, the balance of account {{ account.number }} is {{ balance }} "
                    "{{ currency }}. Please top up to keep your services running."),
    "suspended": ("Service suspended",
                  "Dear {{ customer.display_name }}, subscription {{ subscription.number }} is suspended "
                  "({{ cause }}). Balance: {{ balance }} {{ currency }}."),
    "resumed": ("Service resumed",
                "Dear {{ customer.display_name }}, subscription {{ subscription.number }} works again. Thank you!"),
    "fee_charged": ("Fee charged",
                    "{{ fee }} fee of {{ amount }} {{ currency }} charged for {{ subscription.number }}."),
    "invoice_issued": ("Invoice {{ invoice.number }}",
                       "Dear {{ customer.display_name }}, invoice {{ invoice.number }} of {{ total }} {{ currency }} "
                       "is attached; please pay by {{ due_date }}."),
    "credit_note_issued": ("Credit note {{ credit_note.number }} for invoice {{ invoice.number }}",
                           "Dear {{ customer.display_name }}, credit note {{ credit_note.number }} credits you "
                           "{{ amount }} {{ currency }} of invoice {{ invoice.number }} ({{ reason }}); it is "
                           "attached. There is nothing to pay: it is deducted from what you owe."),
    "dunning_notice": ("Overdue invoices on account {{ account.number }}",
                       "Dear {{ customer.display_name }}, {{ amount_overdue }} {{ currency }} is {{ days_overdue }} "
                       "days overdue ({{ step }}). Please pay to keep your services."),
    "script_message": ("{{ subject }}", "{{ text }}"),
    "ticket_message": ("Your request {{ ticket }}",
                       "Dear {{ customer.display_name }}, about your request {{ ticket }}: {{ text }}"),
    "payment_received": ("Payment received",
                         "We received {{ amount }} {{ currency }} on account {{ account.number }}. "
                         "Balance: {{ balance }} {{ currency }}."),
}


def load(*, actor) -> dict:
    for event, (subject, body) in TEMPLATES.items():
        if not NotificationTemplate.objects.filter(event=event, channel="email", language="en").exists():
            services.create_template(actor=actor, event=event, channel="email", language="en", subject=subject,
                                     body=body)
        if not NotificationTemplate.objects.filter(event=event, channel="sms", language="en").exists():
            services.create_template(actor=actor, event=event, channel="sms", language="en", body=body)
    customer = Customer.objects.order_by("number").first()
    if customer is not None and not Notification.objects.exists():
        account = customer.billing_accounts.first()
        note = services.notify(event="payment_received", customer=customer, source_event="demo",
                               context={"amount": "10.00", "currency": getattr(account, "currency", ""),
                                        "balance": "10.00", "account": account})
        # Demo messages are never sent to the demo's made-up addresses: they land in the local
        # outbox (Operations › Local outbox), where the operator reads them.
        services.deliver_now(note.pk, to_outbox=True)
    return {"templates": NotificationTemplate.objects.count(), "notifications": Notification.objects.count()}
