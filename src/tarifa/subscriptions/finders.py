"""What the global search finds in subscriptions: by number, phone number in any notation, login,
SIM (ICCID, IMSI), smart card or MAC/IP address."""

from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tarifa.web.finding import number_filter, phone_filter
from tarifa.web.search import Finder, register

from .models import Subscription


def _find(query, limit):
    q = query.strip()
    base = Subscription.objects.select_related("billing_account__customer", "service")
    cond = number_filter("number", q) | Q(login__iexact=q) | Q(iccid=q) | Q(imsi=q) | Q(smart_card__iexact=q)
    cond |= Q(mac_address__iexact=q) | Q(ip_address=q)
    if len(q) >= 3:
        cond |= Q(login__istartswith=q)
    found = list(base.filter(cond).order_by("number")[:limit])
    if len(found) < limit:
        seen = {s.pk for s in found}
        found += [s for s in phone_filter(base, "phone_number", q).order_by("number")[:limit] if s.pk not in seen]
    return found[:limit]


def _detail(sub):
    ident = sub.phone_number or sub.login or sub.smart_card or sub.iccid
    parts = [str(sub.service), ident, sub.get_status_display(), str(sub.billing_account.customer)]
    return " · ".join(p for p in parts if p)


register(Finder("subscriptions", _("Subscriptions"), "subscriptions.view_subscription", _find, _detail, order=30))
