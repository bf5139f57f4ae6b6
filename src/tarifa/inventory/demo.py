"""Demo warehouse: a main warehouse and a depot, a technician's van, items (router, ONT, set-top
box, SIM, cable by the metre; all but the cable priced in the catalog's device price list), devices in several states — in stock, with the technician,
installed at a demo customer, returned broken, written off — a reservation and an open stocktake.
Through the services; `tarifa inventory check` passes after it."""

from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model

from tarifa.crm.models import Customer
from tarifa.identity import services as identity
from tarifa.identity.models import Role

from . import references, services
from .models import Item, Location

TECH_PERMS = ["inventory.view_location", "inventory.view_device", "inventory.view_item", "inventory.view_move",
              "inventory.add_move", "inventory.view_reservation", "inventory.add_reservation",
              "inventory.change_reservation"]


def _technician(actor):
    user_model = get_user_model()
    user = user_model.objects.filter(username="tom.tech").first()
    if user is not None:
        return user
    role = Role.objects.filter(name="Technicians").first() or identity.create_role(
        actor=actor, name="Technicians", description="Demo role: field technicians.",
        permissions=identity.permissions_by_name(TECH_PERMS))
    return identity.create_user(actor=actor, username="tom.tech", first_name="Tom", last_name="Fielding",
                                email="tom.tech@example.com", roles=[role])


def load(*, actor) -> dict:
    if Location.objects.filter(code="WH-MAIN").exists():
        return {"skipped": "already loaded"}
    currency = settings.TARIFA_DEFAULT_CURRENCY
    main = services.create_location(actor=actor, code="WH-MAIN", name="Main warehouse", kind="warehouse",
                                    note="Depot street 1")
    depot = services.create_location(actor=actor, code="WH-NORTH", name="North depot", kind="warehouse")
    services.virtual_location("transit")
    tech = _technician(actor)
    van = services.technician_location(tech, actor=actor)
    priced = {code for code, _label in references.choices()}  # the catalog demo's device price list

    def price(code):
        return code if code in priced else ""

    router = services.create_item(actor=actor, code="RT-AX3000", name="AX3000 Wi-Fi 6 router", vendor="Acme",
                                  kind=Item.Kind.ROUTER, currency=currency, cost=Decimal("42.00"),
                                  catalog_ref=price("DEV-ROUTER-AX"))
    ont = services.create_item(actor=actor, code="ONT-G1", name="G1 GPON ONT", vendor="Fibrix", kind=Item.Kind.ONT,
                               currency=currency, cost=Decimal("35.00"), catalog_ref=price("DEV-ONT"))
    stb = services.create_item(actor=actor, code="STB-4K", name="4K set-top box", vendor="Vistabox",
                               kind=Item.Kind.STB, currency=currency, cost=Decimal("55.00"),
                               catalog_ref=price("DEV-STB-4K"))
    services.create_item(actor=actor, code="SIM-TRIO", name="Triple-cut SIM", vendor="Simco", kind=Item.Kind.SIM,
                         currency=currency, cost=Decimal("0.80"), catalog_ref=price("DEV-SIM"))
    cable = services.create_item(actor=actor, code="CBL-DROP", name="Fibre drop cable", vendor="Fibrix",
                                 kind=Item.Kind.CABLE, tracking=Item.Tracking.QUANTITY, unit=Item.Unit.METRE,
                                 currency=currency, cost=Decimal("0.45"))
    services.receive(actor=actor, warehouse=main, item=router, reason="Delivery note DN-1001",
                     serials=[{"serial": f"AX3K-{n:04d}", "mac": f"00:1A:2B:3C:4D:{n:02X}"} for n in range(1, 9)])
    services.receive(actor=actor, warehouse=main, item=ont, serials=[f"GPON-{n:05d}" for n in range(1, 6)],
                     reason="Delivery note DN-1002")
    services.receive(actor=actor, warehouse=depot, item=stb, serials=["VB4K-0001", "VB4K-0002"],
                     reason="Delivery note DN-1003")
    services.receive(actor=actor, warehouse=main, item=cable, quantity=Decimal("500"), reason="Drum 1")
    # The technician's van: two routers, an ONT and 120 m of cable.
    for serial in ("AX3K-0001", "AX3K-0002"):
        services.issue(actor=actor, serial=serial, warehouse=main, technician_location=van)
    services.issue(actor=actor, serial="GPON-00001", warehouse=main, technician_location=van)
    services.issue(actor=actor, item=cable, quantity=Decimal("120"), warehouse=main, technician_location=van)
    services.move(actor=actor, from_location=main, to_location=depot, serial="AX3K-0008", reason="Depot restock")
    customer = Customer.objects.filter(archived_at__isnull=True).order_by("number").first()
    installed = []
    if customer is not None:
        installed.append(services.install(actor=actor, serial="AX3K-0001", source=van, customer=customer,
                                          ticket_ref="demo", reason="New connection"))
        services.move(actor=actor, from_location=van, to_location=services.premises(customer, actor=actor),
                      item=cable, quantity=Decimal("25"), reason="Drop to the house")
        # A router installed, then returned broken, then written off.
        services.issue(actor=actor, serial="AX3K-0003", warehouse=main, technician_location=van)
        services.install(actor=actor, serial="AX3K-0003", source=van, customer=customer)
        services.return_device(actor=actor, serial="AX3K-0003", to_location=main, condition="broken",
                               reason="No Wi-Fi")
    services.write_off(actor=actor, from_location=main, serial="AX3K-0003", reason="Broken beyond repair")
    services.reserve(actor=actor, reference="order:demo-1", serial="GPON-00002", note="For the next fibre order")
    take = services.open_stocktake(actor=actor, location=depot, reason="Monthly count")
    services.count(take, actor=actor, item=stb, serials=["VB4K-0001", "VB4K-0002"])
    return {"locations": Location.objects.count(), "items": Item.objects.count(), "installed": len(installed)}
