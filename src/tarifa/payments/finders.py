"""What the global search finds in payments: payments by number, external reference or the
provider's transaction id."""

from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.money import format_amount
from tarifa.web.finding import number_filter
from tarifa.web.search import Finder, register

from .models import Payment


def _find(query, limit):
    q = query.strip()
    cond = number_filter("number", q) | Q(provider_txn_id=q)
    if len(q) >= 4:
        cond |= Q(external_reference__iexact=q)
    return Payment.objects.select_related("billing_account").filter(cond).order_by("-received_at")[:limit]


def _detail(payment):
    return (f"{format_amount(payment.amount, payment.currency)} · {payment.billing_account.number} · "
            f"{payment.get_channel_display()} · {payment.get_status_display()}")


register(Finder("payments", _("Payments"), "payments.view_payment", _find, _detail, order=50))
