"""Devices sold, rented or sold in installments to a subscription (the money side of inventory).

Inventory knows where a device is; this record knows what the customer pays for it:
- sale: one one-time fee, booked when sold;
- rent: a monthly fee prorated by day for every day the device is installed, ended (prorated)
  when it leaves the customer's premises;
- installments: `installments` monthly fees of amount / installments (the last takes the rounding).
"""

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.models import BusinessRecord
from tarifa.kernel.money import CURRENCY_CHOICES


class DeviceAgreement(BusinessRecord):
    class Mode(models.TextChoices):
        SALE = "sale", _("Sale")
        RENT = "rent", _("Rent")
        INSTALLMENTS = "installments", _("Installments")

    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.PROTECT,
                                     related_name="device_agreements", verbose_name=_("subscription"))
    device = models.ForeignKey("inventory.Device", on_delete=models.PROTECT, related_name="agreements",
                               verbose_name=_("device"))
    mode = models.CharField(_("mode"), max_length=12, choices=Mode.choices)
    amount = models.DecimalField(_("amount"), max_digits=20, decimal_places=6,
                                 help_text=_("Sale price, monthly rent, or the total paid in installments."))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    installments = models.PositiveSmallIntegerField(_("installments"), default=0)
    installments_charged = models.PositiveSmallIntegerField(_("installments charged"), default=0, editable=False)
    started_on = models.DateField(_("from"))
    charged_through = models.DateField(_("rent charged through"), null=True, blank=True, editable=False)
    ended_on = models.DateField(_("ended"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("device agreement")
        verbose_name_plural = _("device agreements")
        ordering = ["-started_on", "-created_at"]
        default_permissions = ("view", "add")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="subscriptions_device_agreement_amount"),
            models.CheckConstraint(condition=~Q(mode="installments") | Q(installments__gte=1),
                                   name="subscriptions_device_agreement_installments"),
            models.UniqueConstraint(fields=["device"], condition=Q(ended_on__isnull=True, mode="rent"),
                                    name="subscriptions_device_rented_once"),
        ]

    def __str__(self):
        return f"{self.get_mode_display()} {self.device}"

    @property
    def installment_amount(self) -> Decimal:
        return (self.amount / self.installments).quantize(Decimal("0.01")) if self.installments else Decimal(0)
