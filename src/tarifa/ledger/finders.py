"""What the global search finds in the ledger: billing accounts by number."""

from django.utils.translation import gettext_lazy as _

from tarifa.web.finding import number_filter
from tarifa.web.search import Finder, register

from .models import BillingAccount


def _find(query, limit):
    return BillingAccount.objects.select_related("customer").filter(number_filter("number", query)).order_by("number")[:limit]


def _detail(account):
    return f"{account.customer} · {account.currency} · {account.get_payment_mode_display()}"


register(Finder("billing_accounts", _("Billing accounts"), "ledger.view_billingaccount", _find, _detail, order=20))
