"""A subscription's page shows every device at the customer's for it: those sold or rented on it,
and those installed for it without either (a ticket's install of the operator's property)."""

import pytest
from django.urls import reverse

from tarifa.inventory import services as inventory
from tarifa.inventory.models import Item
from tarifa.inventory.selectors import devices_of_subscription
from tarifa.subscriptions import devices
from tarifa.subscriptions import services as subs

from .helpers import ACTOR, customer_account, make_catalog, pay

pytestmark = pytest.mark.django_db


def test_devices_installed_for_the_subscription_are_on_its_page(staff_client, admin_user):
    tariffs = make_catalog()
    account = customer_account(payment_mode="postpaid", credit_limit="1000")
    pay(account, "100")
    sub = subs.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="p1",
                                   activate=True)
    other = subs.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="p2",
                                     activate=True)
    warehouse = inventory.create_location(actor=ACTOR, code="WH", name="Warehouse", kind="warehouse")
    ont = inventory.create_item(actor=ACTOR, code="ONT", name="ONT X", kind=Item.Kind.ONT, currency="EUR", cost="20")
    inventory.receive(actor=ACTOR, warehouse=warehouse, item=ont, serials=["ONT-1", "ONT-2", "ONT-3"])
    customer = account.customer
    inventory.install(actor=ACTOR, serial="ONT-1", source=warehouse, customer=customer, subscription_ref=sub.number)
    inventory.install(actor=ACTOR, serial="ONT-2", source=warehouse, customer=customer, subscription_ref=other.number)
    devices.rent_device(sub, actor=ACTOR, serial="ONT-3", monthly="2.50", source=warehouse)

    assert [d.serial for d in devices_of_subscription(sub.number)] == ["ONT-1", "ONT-3"]
    page = staff_client(admin_user).get(reverse("subscriptions:subscription_detail", args=[sub.pk])).content.decode()
    assert 'data-serial="ONT-1"' in page and "Installed (operator's property)" in page
    assert 'data-serial="ONT-3"' in page and page.count('data-serial="ONT-3"') == 1  # once, as the rent
    assert 'data-serial="ONT-2"' not in page
