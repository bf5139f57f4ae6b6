"""Notifications: templates per event, channel and language; a delivery log with retries."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.models import BusinessRecord


class Event(models.TextChoices):
    LOW_BALANCE = "low_balance", _("Low balance warning")
    SUSPENDED = "suspended", _("Service suspended")
    RESUMED = "resumed", _("Service resumed")
    FEE_CHARGED = "fee_charged", _("Fee charged")
    PAYMENT_RECEIVED = "payment_received", _("Payment received")
    INVOICE_ISSUED = "invoice_issued", _("Invoice issued (PDF attached)")
    CREDIT_NOTE_ISSUED = "credit_note_issued", _("Credit note issued (PDF attached)")
    DUNNING_NOTICE = "dunning_notice", _("Dunning notice (overdue invoices)")
    SCRIPT_MESSAGE = "script_message", _("Message from a script")
    PORTAL_CODE = "portal_code", _("Self-care portal: one-time code")
    TICKET_MESSAGE = "ticket_message", _("Ticket update (a step's notification)")


class Channel(models.TextChoices):
    EMAIL = "email", _("E-mail")
    SMS = "sms", _("SMS")


class NotificationTemplate(BusinessRecord):
    """What a customer is told on an event, by channel and language (Django template syntax)."""

    event = models.CharField(_("event"), max_length=24, choices=Event.choices)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    language = models.CharField(_("language"), max_length=8, default="en")
    subject = models.CharField(_("subject (e-mail)"), max_length=200, blank=True)
    body = models.TextField(_("body"), help_text=_("Django template: {{ customer }}, {{ subscription }}, {{ amount }}…"))
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("notification template")
        verbose_name_plural = _("notification templates")
        ordering = ["event", "channel", "language"]
        constraints = [models.UniqueConstraint(fields=["event", "channel", "language"],
                                               name="integrations_template_unique")]

    def __str__(self):
        return f"{self.get_event_display()} / {self.get_channel_display()} / {self.language}"


class Notification(BusinessRecord):
    """One message to one customer: the delivery log. Sent by a job, retried with backoff."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        RETRYING = "retrying", _("Retrying")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped (no template or address)")
        OUTBOX = "outbox", _("In the local outbox (not sent)")

    customer = models.ForeignKey("crm.Customer", on_delete=models.PROTECT, related_name="notifications",
                                 verbose_name=_("customer"))
    event = models.CharField(_("event"), max_length=24, choices=Event.choices)
    source_event = models.CharField(_("source event id"), max_length=64)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices, blank=True)
    recipient = models.CharField(_("recipient"), max_length=254, blank=True)
    language = models.CharField(_("language"), max_length=8, blank=True)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    body = models.TextField(_("body"), blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING,
                              db_index=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    provider_id = models.CharField(_("provider message id"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at"]
        permissions = [("resend_notification", "Can resend notifications")]
        constraints = [models.UniqueConstraint(fields=["source_event", "customer", "event"],
                                               name="integrations_notification_once")]
        indexes = [models.Index(fields=["next_attempt_at"], condition=Q(status="retrying"),
                                name="integrations_retry_due")]

    def __str__(self):
        return f"{self.get_event_display()} → {self.recipient or self.customer_id} ({self.status})"


class OutboxMessage(BusinessRecord):
    """A message kept here instead of being sent: no mail server (SMTP settings) or SMS gateway is
    configured (the embedded default), or the demo data's messages. The operator reads them in
    Operations › Local outbox; once a server is configured, "Send again" on the notification sends."""

    notification = models.ForeignKey(Notification, on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="outbox_messages", verbose_name=_("notification"))
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    recipient = models.CharField(_("recipient"), max_length=254)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    body = models.TextField(_("body"), blank=True)
    attachments = models.JSONField(_("attachments"), default=list, blank=True,
                                   help_text=_("Names, types and sizes of the files the message carried."))

    class Meta:
        verbose_name = _("outbox message")
        verbose_name_plural = _("outbox messages")
        ordering = ["-created_at"]
        default_permissions = ("view",)

    def __str__(self):
        return f"{self.get_channel_display()} → {self.recipient}: {self.subject or self.body[:40]}"


LANGUAGES = [code for code, _name in settings.LANGUAGES]
