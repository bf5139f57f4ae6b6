"""Notifications: the only write path for templates and the delivery log.

`notify()` records one notification per (source event, customer, event) — a retried
event handler notifies once — choosing the customer's preferred channel when it has a
template and an address, else the other channel, else records it as skipped. Sending
is a job enqueued in the same transaction (`integrations.deliver`); a failed attempt
is retried with exponential backoff up to MAX_ATTEMPTS, then marked failed. Every
attempt's outcome stays in the log.
"""

import datetime as dt
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.db import models

from tarifa.audit import services as recorded
from tarifa.kernel import sandbox
from tarifa.kernel.clock import now
from tarifa.kernel.errors import DomainError, ValidationFailed
from tarifa.kernel.money import CURRENCIES, round_minor

from . import senders
from .models import Channel, Notification, NotificationTemplate, OutboxMessage

MAX_ATTEMPTS = 5
BASE_BACKOFF = dt.timedelta(minutes=1)
# event -> attachments(notification) -> [(file name, bytes, MIME type)], made at delivery
# (an invoice's PDF is rendered then, lazily); registered by handlers.py.
ATTACHMENTS: dict = {}


# What a notification template sees of each record: plain dicts of these fields (the template
# sandbox, tarifa.kernel.sandbox: no model objects, no {% load %} / {% include %}; docs/notifications.md).
TEMPLATE_FIELDS = {
    "crm.customer": ["number", "kind", "display_name", "first_name", "last_name", "legal_name", "language"],
    "ledger.billingaccount": ["number", "currency", "payment_mode", "payment_mode_display", "status",
                              "status_display"],
    "subscriptions.subscription": ["number", "status", "status_display", "login", "phone_number", "service__name",
                                   "tariff__name", "activated_on"],
    "billing.invoice": ["number", "kind", "kind_display", "period", "invoice_date", "due_date", "currency",
                        "subtotal", "tax_total", "total", "outstanding"],
}


def template_data(value):
    """`value` with every record replaced by the dict of its TEMPLATE_FIELDS (another record: its name)."""
    if isinstance(value, models.Model):
        fields = TEMPLATE_FIELDS.get(value._meta.label_lower)
        return sandbox.record(value, fields) if fields else str(value)
    if isinstance(value, dict):
        return {k: template_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [template_data(v) for v in value]
    return value


def _check_template(subject, body):
    """Compile both in the sandbox; a refused tag or a syntax error is a field error (`invalid_template`)."""
    for name, text in (("subject", subject), ("body", body)):
        try:
            sandbox.compile_template(text or "", field=name)
        except sandbox.TemplateRefused as exc:
            raise ValidationFailed(f"{name}: {exc.message}", code="invalid_template", fields=exc.fields) from None


@transaction.atomic
def create_template(*, actor, event, channel, language="en", subject="", body, active=True) -> NotificationTemplate:
    """A template for (event, channel, language); unique; checked for template syntax."""
    if NotificationTemplate.objects.filter(event=event, channel=channel, language=language).exists():
        raise ValidationFailed("A template for this event, channel and language exists.", code="duplicate_template",
                               fields={"language": ["Already has a template."]})
    if channel == Channel.EMAIL and not subject:
        raise ValidationFailed("An e-mail template needs a subject.", code="subject_required",
                               fields={"subject": ["Required for e-mail."]})
    _check_template(subject, body)
    return recorded.create(NotificationTemplate, actor=actor, event=event, channel=channel, language=language,
                           subject=subject, body=body, active=active)


@transaction.atomic
def update_template(template, *, actor, **changes) -> NotificationTemplate:
    _check_template(changes.get("subject", template.subject), changes.get("body", template.body))
    return recorded.update(template, actor=actor, **changes)


def _address(customer, channel):
    kind = "email" if channel == Channel.EMAIL else "phone"
    contact = (customer.contacts.filter(kind=kind, archived_at__isnull=True)
               .order_by("-is_preferred", "created_at").first())
    return contact.value if contact else ""


def _template(event, channel, language):
    qs = NotificationTemplate.objects.filter(event=event, channel=channel, active=True)
    return qs.filter(language=language).first() or qs.filter(language="en").first()


def _choose(customer, event):
    preferred = customer.preferred_channel if customer.preferred_channel in Channel.values else Channel.EMAIL
    order = [preferred] + [c for c in Channel.values if c != preferred]
    for channel in order:
        template = _template(event, channel, customer.language)
        address = _address(customer, channel)
        if template and address:
            return channel, template, address
    return None, None, ""


# Amounts a customer reads, in the currency's units ("4.03 USD", never "4.032258 USD").
MONEY_KEYS = ("amount", "balance", "total", "amount_overdue", "fee_amount")


def in_units(context: dict) -> dict:
    """`context` with its amounts rounded to the currency's minor unit as text (half up)."""
    account = context.get("account")
    currency = context.get("currency") or getattr(account, "currency", "") or ""
    result = dict(context)
    for key in MONEY_KEYS:
        value = context.get(key)
        if value is None or value == "" or isinstance(value, bool):
            continue
        try:
            amount = Decimal(str(value))
        except (InvalidOperation, ValueError):
            continue
        if amount.is_finite():
            result[key] = f"{round_minor(amount, currency if currency in CURRENCIES else 'USD'):f}"
    return result


@transaction.atomic
def notify(*, event, customer, context: dict, source_event: str) -> Notification:
    """Record and enqueue the notification of `event` to `customer` (once per source event)."""
    existing = Notification.objects.filter(source_event=source_event, customer=customer, event=event).first()
    if existing is not None:
        return existing
    channel, template, address = _choose(customer, event)
    values = {"customer": customer, "source_event": str(source_event), "event": event}
    if template is None:
        note = Notification(status=Notification.Status.SKIPPED, language=customer.language,
                            last_error="no active template with a known address for any channel", **values)
    else:
        data = template_data({"customer": customer, **in_units(context)})
        note = Notification(channel=channel, recipient=address, language=template.language,
                            subject=sandbox.render(template.subject, data).strip()[:200],
                            body=sandbox.render(template.body, data).strip(), **values)
    try:
        with transaction.atomic():
            note.save(force_insert=True)
    except IntegrityError:
        return Notification.objects.get(source_event=source_event, customer=customer, event=event)
    if note.status == Notification.Status.PENDING:
        from .tasks import deliver

        deliver.defer(notification_id=str(note.pk))
    return note


@transaction.atomic
def send_message(*, event, customer, channel, recipient: str, subject: str = "", body: str,
                 source_event: str, language: str = "en") -> Notification:
    """Record and enqueue a message written by the caller (no template) to one address — the
    self-care portal's one-time codes, sent to the address the customer typed, which must be
    one of their contacts (the caller checks). Delivered like every notification (the local
    outbox when nothing is configured). Once per `source_event`."""
    existing = Notification.objects.filter(source_event=source_event, customer=customer, event=event).first()
    if existing is not None:
        return existing
    note = Notification(customer=customer, event=event, source_event=str(source_event), channel=channel,
                        recipient=recipient, language=language, subject=subject[:200], body=body)
    note.save(force_insert=True)
    from .tasks import deliver

    deliver.defer(notification_id=str(note.pk))
    return note


class DeliveryFailed(Exception):
    """Raised by the delivery job when a notification's last attempt failed: the job is marked
    failed, so the Jobs screen counts it (the notification itself is `failed`, with its error)."""


def deliver_now(notification_id, *, to_outbox: bool = False) -> Notification:
    """One delivery attempt (the job). Idempotent: a sent notification is not sent again.

    Where nothing is configured to send with (no SMTP host for e-mail, no SMS backend) — or
    `to_outbox` (the demo data) — the message is kept in the local outbox (OutboxMessage,
    status `outbox`) instead: nothing is retried. A failed attempt is retried with backoff
    (1, 2, 4, 8 minutes), the MAX_ATTEMPTS-th failure is final (`failed`, and the returned
    notification has `just_failed` set for the job to report).
    """
    with transaction.atomic():
        note = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if note is None or note.status not in (Notification.Status.PENDING, Notification.Status.RETRYING):
            return note
        note.attempts += 1
        note.just_failed = False
        try:
            files = ATTACHMENTS[note.event](note) if note.channel == Channel.EMAIL and note.event in ATTACHMENTS else ()
            if to_outbox or senders.destination(note.channel) == senders.OUTBOX:
                OutboxMessage.objects.create(
                    notification=note, channel=note.channel, recipient=note.recipient, subject=note.subject,
                    body=note.body, attachments=[{"name": name, "type": mimetype, "size": len(content)}
                                                 for name, content, mimetype in files])
                note.provider_id = "local outbox"  # the message is linked to its notification
                note.status = Notification.Status.OUTBOX
            elif note.channel == Channel.EMAIL:
                note.provider_id = senders.send_email(to=note.recipient, subject=note.subject, body=note.body,
                                                      attachments=files)[:100]
                note.status = Notification.Status.SENT
            else:
                note.provider_id = senders.send_sms(to=note.recipient, text=note.body)[:100]
                note.status = Notification.Status.SENT
            note.sent_at, note.next_attempt_at, note.last_error = now(), None, ""
        except senders.DeliveryError as exc:
            note.last_error = str(exc)[:2000]
            if note.attempts >= MAX_ATTEMPTS:
                note.status, note.next_attempt_at, note.just_failed = Notification.Status.FAILED, None, True
            else:
                delay = BASE_BACKOFF * (2 ** (note.attempts - 1))
                note.status, note.next_attempt_at = Notification.Status.RETRYING, now() + delay
                from .tasks import deliver

                deliver.configure(schedule_in={"seconds": int(delay.total_seconds())}).defer(
                    notification_id=str(note.pk))
        note.updated_at = now()
        note.save(update_fields=["attempts", "provider_id", "status", "sent_at", "next_attempt_at", "last_error",
                                 "updated_at"])
    return note


@transaction.atomic
def resend(note, *, actor) -> Notification:
    """Send a sent, failed, outboxed or waiting-to-retry notification again now (a new attempt series)."""
    note = Notification.objects.select_for_update().get(pk=note.pk)
    if note.status == Notification.Status.PENDING:
        raise DomainError("The notification is still being delivered.", code="delivery_in_progress", status=409)
    if note.status == Notification.Status.SKIPPED:
        raise DomainError("Nothing to send: no template or address.", code="nothing_to_send", status=409)
    recorded.record(note, actor=actor, action="resend", changes={"status": [note.status, "pending"]})
    note.status, note.attempts, note.next_attempt_at = Notification.Status.PENDING, 0, None
    note.save(update_fields=["status", "attempts", "next_attempt_at"])
    from .tasks import deliver

    deliver.defer(notification_id=str(note.pk))
    return note


def send_staff_email(*, to: str, subject: str, body: str, attachments=()) -> str:
    """An e-mail to a member of staff (not a customer's notification): a scheduled report.
    Sent through the configured mail server; where none is configured, kept in the local outbox
    (Operations › Local outbox) with the names and sizes of its files. Returns "sent" or "outbox".
    Raises senders.DeliveryError when the server refuses it (the caller records the failure)."""
    if senders.destination(Channel.EMAIL) == senders.OUTBOX:
        OutboxMessage.objects.create(channel=Channel.EMAIL, recipient=to, subject=subject[:200], body=body,
                                     attachments=[{"name": name, "type": mimetype, "size": len(content)}
                                                  for name, content, mimetype in attachments])
        return "outbox"
    senders.send_email(to=to, subject=subject, body=body, attachments=attachments)
    return "sent"
