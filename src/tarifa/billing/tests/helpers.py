"""Story helpers for billing: the subscriptions' catalog plus taxes, cycles, accounts."""

import datetime as dt

from tarifa.billing import services as billing
from tarifa.catalog import services as catalog
from tarifa.catalog.models import ServiceType
from tarifa.crm import services as crm
from tarifa.subscriptions.tests.helpers import (ACTOR, balance, customer_account, make_catalog, pay,  # noqa: F401
                                                run_events)


def at(y, m, d, h=9):
    return dt.datetime(y, m, d, h, tzinfo=dt.timezone.utc)


def make_taxes():
    """VAT 20 % included in every price; a 2 % TV levy added on top of IPTV."""
    catalog.create_tax(actor=ACTOR, code="VAT", name="VAT", rate="20", inclusive=True)
    catalog.create_tax(actor=ACTOR, code="TVL", name="TV levy", rate="2", inclusive=False,
                       service_types=[ServiceType.objects.get(code="iptv")])


def make_cycle(code="M1", **fields):
    fields.setdefault("name", "Monthly, 1st")
    return billing.create_cycle(actor=ACTOR, code=code, **fields)


def postpaid_org(cycle, *, scheme=None, **fields):
    if scheme is not None:
        fields["tax_scheme"] = scheme
    account = customer_account(kind="organization", payment_mode="postpaid", credit_limit="1000", **fields)
    billing.assign_cycle(actor=ACTOR, billing_account=account, cycle=cycle)
    return account


def standard_scheme():
    return crm.create_tax_scheme(actor=ACTOR, code="standard", name="Standard")
