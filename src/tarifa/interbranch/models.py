"""Serving another branch's subscriber (FEDERATION.md piece 3; docs/federation.md "Foreign payments").

`ForeignPayment` is this branch's record of a payment it took for a subscriber of another branch (the
owner): its own receipt number, the money booked into this branch's cash / clearing account against
"due to <owner>", and the message to the owner. The owner applies it and answers; the record then
shows "applied" (with the owner's payment number) or "refused" (then refunded here).

`ReceivedPayment` is the owner's record of a foreign payment it applied to one of its accounts
(booked against "due from <sender>")."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.kernel.models import BusinessRecord
from tarifa.kernel.money import CURRENCY_CHOICES


def money_field(verbose_name, **kwargs):
    return models.DecimalField(verbose_name, max_digits=20, decimal_places=6, **kwargs)


class ForeignPayment(BusinessRecord):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending at the owner branch")
        APPLIED = "applied", _("Applied at the owner branch")
        REFUSED = "refused", _("Refused at the owner branch")
        REFUNDED = "refunded", _("Refused and refunded")

    number = models.CharField(_("receipt number"), max_length=32, unique=True, editable=False)
    owner_branch = models.CharField(_("owner branch"), max_length=16, db_index=True)
    account_number = models.CharField(_("account at the owner"), max_length=64, db_index=True)
    amount = money_field(_("amount"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    channel = models.CharField(_("channel"), max_length=16)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING,
                              db_index=True)
    desk = models.ForeignKey("payments.CashDesk", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                             verbose_name=_("cash desk"))
    debit_account = models.ForeignKey("ledger.LedgerAccount", on_delete=models.PROTECT, related_name="+",
                                      verbose_name=_("received into"))
    transfer = models.OneToOneField("ledger.Transfer", on_delete=models.PROTECT, related_name="+",
                                    verbose_name=_("ledger transfer"))
    message = models.OneToOneField("federation.OutboundMessage", on_delete=models.PROTECT, related_name="+",
                                   verbose_name=_("message to the owner"))
    payer = models.CharField(_("payer"), max_length=200, blank=True)
    memo = models.TextField(_("memo"), blank=True)
    received_at = models.DateTimeField(_("received"), default=now)
    idempotency_key = models.CharField(_("idempotency key"), max_length=250, unique=True)
    actor = models.CharField(_("taken by"), max_length=150, blank=True)
    remote_payment_number = models.CharField(_("owner's payment number"), max_length=32, blank=True)
    resolved_at = models.DateTimeField(_("answered"), null=True, blank=True)
    refusal_code = models.CharField(_("refusal code"), max_length=64, blank=True)
    refusal_message = models.TextField(_("refusal"), blank=True)
    refused_transfer = models.OneToOneField("ledger.Transfer", on_delete=models.PROTECT, null=True, blank=True,
                                            related_name="+", verbose_name=_("moved to refunds due"))
    refund_transfer = models.OneToOneField("ledger.Transfer", on_delete=models.PROTECT, null=True, blank=True,
                                           related_name="+", verbose_name=_("refund transfer"))
    refunded_at = models.DateTimeField(_("refunded"), null=True, blank=True)
    refund_reason = models.TextField(_("refund reason"), blank=True)

    class Meta:
        verbose_name = _("foreign payment")
        verbose_name_plural = _("foreign payments")
        ordering = ["-created_at"]
        default_permissions = ("view", "add")
        permissions = [("refund_foreignpayment", "Can refund a foreign payment the owner branch refused")]

    def __str__(self):
        return f"{self.number} → {self.account_number}"


class ReceivedPayment(BusinessRecord):
    """A foreign payment applied here (this branch owns the account); one per (sender, remote id)."""

    sender = models.CharField(_("taken at branch"), max_length=16, db_index=True)
    remote_id = models.UUIDField(_("sender's payment id"))
    remote_number = models.CharField(_("sender's receipt number"), max_length=32)
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT, related_name="+",
                                        verbose_name=_("billing account"))
    payment = models.OneToOneField("payments.Payment", on_delete=models.PROTECT, related_name="+",
                                   verbose_name=_("payment"))
    amount = money_field(_("amount"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    received_at = models.DateTimeField(_("received at the sender"))

    class Meta:
        verbose_name = _("payment from another branch")
        verbose_name_plural = _("payments from other branches")
        ordering = ["-created_at"]
        default_permissions = ("view",)
        constraints = [models.UniqueConstraint(fields=["sender", "remote_id"], name="interbranch_received_once")]

    def __str__(self):
        return f"{self.sender} {self.remote_number} → {self.payment.number if self.payment_id else '?'}"


class SubscriberCard(models.Model):
    """The last card of another branch's subscriber this branch saw (shown, marked stale, when the owner
    does not answer). One row per (owner branch, number looked up): the customer's number and each of
    their account numbers. A cache: written by `services.remember_card` after each live answer."""

    id = models.BigAutoField(primary_key=True)
    owner_branch = models.CharField(_("owner branch"), max_length=16)
    number = models.CharField(_("number"), max_length=64)
    card = models.JSONField(_("card"), default=dict)
    fetched_at = models.DateTimeField(_("fetched"), default=now)

    class Meta:
        verbose_name = _("card of another branch's subscriber")
        verbose_name_plural = _("cards of other branches' subscribers")
        default_permissions = ("view",)
        constraints = [models.UniqueConstraint(fields=["owner_branch", "number"], name="interbranch_card_once")]

    def __str__(self):
        return f"{self.owner_branch} {self.number}"
