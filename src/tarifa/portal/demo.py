"""Demo portal logins (README, "Self-care portal"): an individual and a business customer.

- maria.garcia@example.com / Maria-portal-2026 — Maria Garcia (internet, mobile, TV);
- admin@acme-logistics.example / Acme-admin-2026 — Acme Logistics LLC, administrator;
  accounts@acme-logistics.example / Acme-accounts-2026 (accountant),
  noc@acme-logistics.example / Acme-noc-2026 (technical, department "Warehouse").
"""

from tarifa.catalog.models import Tariff
from tarifa.crm.models import Customer

from . import services
from .models import PortalUser

LOGINS = [
    ("maria.garcia@example.com", "Maria-portal-2026", "Maria Garcia", "administrator", None),
    ("admin@acme-logistics.example", "Acme-admin-2026", "Acme Logistics LLC", "administrator", None),
    ("accounts@acme-logistics.example", "Acme-accounts-2026", "Acme Logistics LLC", "accountant", None),
    ("noc@acme-logistics.example", "Acme-noc-2026", "Acme Logistics LLC", "technical", "Warehouse"),
]


def _customer(name):
    first, _, last = name.partition(" ")
    return (Customer.objects.filter(legal_name=name).first()
            or Customer.objects.filter(first_name=first, last_name=last).first())


def load(*, actor) -> dict:
    portal_settings = services.current_settings()
    if PortalUser.objects.exists():
        return {"portal_users": PortalUser.objects.count()}
    services.update_settings(portal_settings, actor=actor, editable_fields=["email", "phone", "preferred_channel"],
                             notice="", allowed_tariffs=list(Tariff.objects.filter(
                                 code__in=["NET-100", "NET-500", "MOB-DAY"], archived_at__isnull=True)))
    departments = {}
    made = 0
    for login, password, name, role, department in LOGINS:
        customer = _customer(name)
        if customer is None:
            continue
        depts = []
        if department:
            if department not in departments:
                lines = [s for s in customer.billing_accounts.first().subscriptions.all()[:1]] \
                    if customer.billing_accounts.exists() else []
                departments[department] = services.create_department(actor=actor, customer=customer, name=department,
                                                                     subscriptions=lines)
            depts = [departments[department]]
        services.create_portal_user(actor=actor, customer=customer, login=login, password=password, role=role,
                                    name=name if role == "administrator" else f"{name} ({role})", departments=depts)
        made += 1
    return {"portal_users": made, "departments": len(departments)}
