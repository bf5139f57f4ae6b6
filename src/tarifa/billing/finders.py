"""What the global search finds in billing: invoices and credit notes by number."""

from django.utils.translation import gettext_lazy as _

from tarifa.kernel.money import format_amount
from tarifa.web.finding import number_filter
from tarifa.web.search import Finder, register

from .models import Invoice


def _find(query, limit):
    return (Invoice.objects.select_related("billing_account").exclude(number="")
            .filter(number_filter("number", query)).order_by("-number")[:limit])


def _detail(invoice):
    return (f"{invoice.get_kind_display()} · {invoice.billing_account.number} · "
            f"{format_amount(invoice.total, invoice.currency)} · {invoice.get_state_display()}")


register(Finder("invoices", _("Invoices"), "billing.view_invoice", _find, _detail, order=40))
