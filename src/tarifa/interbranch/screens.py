from django.utils.translation import gettext_lazy as _

from tarifa.web.registry import Action, ModelScreens, Page, register, register_page

from . import services
from .forms import RefundForm
from .models import ForeignPayment, ReceivedPayment

AREA = "Payments"


def _refund(fp, *, actor, reason=""):
    return services.refund_foreign_payment(fp, actor=actor, reason=reason)


register(ModelScreens(
    model=ForeignPayment, area=AREA, menu_label=_("Foreign payments"),
    columns=["number", "owner_branch", "account_number", "amount", "status", "remote_payment_number", "received_at"],
    ordering=["-created_at"], search_fields=["number", "account_number", "remote_payment_number", "payer"],
    filterset_fields=["status", "owner_branch", "channel", "currency"],
    detail_template="interbranch/foreignpayment_detail.html",
    actions=[
        Action("refund", _("Refund to the payer"), "interbranch.refund_foreignpayment", _refund,
               form_class=RefundForm, available=lambda fp: fp.status == ForeignPayment.Status.REFUSED,
               confirm=_("The owner branch refused this payment: pay the amount back to the payer now "
                         "(from the account it was taken into).")),
    ],
))

register(ModelScreens(
    model=ReceivedPayment, area=AREA, menu_label=_("Payments from other branches"),
    columns=["sender", "remote_number", "billing_account", "payment", "amount", "received_at"],
    ordering=["-created_at"], search_fields=["remote_number", "billing_account__number", "payment__number"],
    filterset_fields=["sender", "currency"],
    detail_fields=["sender", "remote_number", "billing_account", "payment", "amount", "currency", "received_at",
                   "created_at"],
))

register_page(Page("interbranch:take_payment", _("Take a payment for another branch"), AREA,
                   "interbranch.add_foreignpayment"))
register_page(Page("interbranch:search", _("Find a subscriber in the federation"), AREA,
                   "interbranch.view_subscribercard"))
