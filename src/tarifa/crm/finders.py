"""What the global search (web/search.py) finds in crm: customers by name, number, phone, e-mail,
document or tax number (crm.selectors.search_customers, the indexed search terms)."""

from django.utils.translation import gettext_lazy as _

from tarifa.web.search import Finder, register

from . import selectors
from .models import Customer


def _find(query, limit):
    return selectors.search_customers(query, Customer.objects.order_by("-created_at"))[:limit]


def _detail(customer):
    parts = [customer.get_kind_display(), customer.get_status_display()]
    return " · ".join(str(p) for p in parts if p)


register(Finder("customers", _("Customers"), "crm.view_customer", _find, _detail, order=10))
