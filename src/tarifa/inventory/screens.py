"""Operator screens of the warehouse: items, locations with on-hand, devices with their history,
moves, reservations, stocktakes; pages for the scanner receipt, moving goods, reports and the check;
the customer page's "Devices" panel."""

from decimal import Decimal

from django.db.models import Q, Sum
from django.utils.translation import gettext_lazy as _

from tarifa.crm.panels import register_panel
from tarifa.web.registry import Action, ModelScreens, Page, register, register_page

from . import selectors, services
from .forms import (
    CountForm,
    InstallForm,
    ItemForm,
    LocationForm,
    MoveDeviceForm,
    OptionalReasonForm,
    ReasonForm,
    ReservationForm,
    StocktakeForm,
)
from .models import Device, Item, Location, Move, Reservation, Stock, Stocktake

K = Location.Kind


# --- items --------------------------------------------------------------------------------------

register(ModelScreens(
    model=Item, area="Warehouse", menu_label=_("Items"),
    columns=["code", "name", "vendor", "kind", "tracking", "unit", "cost", "currency", "in_stock"],
    form_class=ItemForm, create=services.create_item, update=services.update_item, archive=services.archive_item,
    import_fields=["code", "name", "vendor", "kind", "tracking", "unit", "cost", "currency", "catalog_ref"],
    filterset_fields=["kind", "tracking", "currency"], search_fields=["code", "name", "vendor"],
    queryset=lambda request: Item.objects.annotate(in_stock=Sum(
        "stock__quantity", filter=Q(stock__location__kind__in=[K.WAREHOUSE, K.TECHNICIAN, K.TRANSIT]))),
    formats={"in_stock": lambda item: f"{(item.in_stock or Decimal(0)).normalize():f} {item.get_unit_display()}"},
    ordering=["name"],
    form_sample=lambda view, obj, user: {"code": "SUITE-ITEM"} if view == "add" else {},
))


# --- locations --------------------------------------------------------------------------------

def _location_context(request, location):
    return {"on_hand": selectors.stock_at(location), "devices": selectors.devices_at(location)[:500],
            "recent": Move.objects.filter(Q(from_location=location) | Q(to_location=location))
            .select_related("item", "device", "from_location", "to_location").order_by("-id")[:30],
            "can_view_devices": request.user.has_perm("inventory.view_device")}


def _create_location(*, actor, code, name, kind, technician=None, customer=None, note=""):
    return services.create_location(actor=actor, code=code, name=name, kind=kind, technician=technician,
                                    customer=customer, note=note)


register(ModelScreens(
    model=Location, area="Warehouse", menu_label=_("Locations"),
    columns=["code", "name", "kind", "technician", "customer"],
    form_class=LocationForm, create=_create_location, update=services.update_location,
    archive=services.archive_location,
    filterset_fields=["kind"], search_fields=["code", "name", "customer__number"],
    queryset=lambda request: Location.objects.select_related("technician", "customer"),
    ordering=["kind", "name"],
    detail_template="inventory/location_detail.html", detail_context=_location_context,
    form_sample=lambda view, obj, user: {"code": "SUITE-LOC", "kind": K.WAREHOUSE} if view == "add" else {},
    sample=lambda view: _empty_location() if view == "archive" else None,
))


def _empty_location():
    return Location.objects.filter(archived_at__isnull=True, kind=K.TRANSIT).first() or services.create_location(
        actor="system", code="EMPTY-TRANSIT", name="Empty transit", kind=K.TRANSIT)


# --- devices ------------------------------------------------------------------------------------

def _device_context(request, device):
    return {"moves": selectors.history(device), "reservation": selectors.active_reservation(device)}


def _in_stock(device):
    return device.location.kind in (K.WAREHOUSE, K.TECHNICIAN, K.TRANSIT)


def _at_customer(device):
    return device.location.kind == K.CUSTOMER


def _move_device(device, *, actor, to_location, condition="", reason=""):
    services.move(actor=actor, from_location=device.location, to_location=to_location, device=device,
                  condition=condition, reason=reason)
    return device


def _install(device, *, actor, customer, subscription_ref="", reason=""):
    services.install(actor=actor, device=device, source=device.location, customer=customer,
                     subscription_ref=subscription_ref, reason=reason)
    return device


def _write_off(device, *, actor, reason):
    services.write_off(actor=actor, from_location=device.location, device=device, reason=reason)
    return device


def _move_sample(device, user):
    """A target the device may go to from where it is (the form-submission suite)."""
    if device.location.kind == K.CUSTOMER:
        target = Location.objects.filter(kind=K.WAREHOUSE, archived_at__isnull=True).first()
    else:
        target = (Location.objects.filter(kind__in=[K.WAREHOUSE, K.TECHNICIAN], archived_at__isnull=True)
                  .exclude(pk=device.location_id).order_by("-kind").first())
    return {"to_location": str(target.pk)} if target else {}


def _install_sample(device, user):
    from tarifa.crm.models import Customer

    customer = Customer.objects.filter(archived_at__isnull=True).order_by("pk").first()
    return {"customer": customer.number, "subscription_ref": ""}


def _unreserved(check):
    return lambda device: check(device) and selectors.active_reservation(device) is None


register(ModelScreens(
    model=Device, area="Warehouse", menu_label=_("Devices"),
    columns=["serial", "item", "location", "condition", "mac", "iccid", "cost", "subscription_ref"],
    filterset_fields=["item", "location", "condition", "location__kind"], search_fields=["serial", "mac", "iccid"],
    queryset=lambda request: Device.objects.select_related("item", "location"),
    money={"cost": "item__currency"},
    ordering=["serial"],
    detail_template="inventory/device_detail.html", detail_context=_device_context,
    actions=[
        Action("move", _("Move"), "inventory.add_move", _move_device, form_class=MoveDeviceForm,
               available=_unreserved(lambda d: not d.location.is_virtual), form_sample=_move_sample),
        Action("install", _("Install at a customer"), "inventory.add_move", _install, form_class=InstallForm,
               available=_unreserved(_in_stock), form_sample=_install_sample),
        Action("write-off", _("Write off"), "inventory.add_move", _write_off, form_class=ReasonForm, danger=True,
               available=_unreserved(lambda d: not d.location.is_virtual),
               confirm=_("The device goes to scrap and loss. Only reversing the write-off brings it back.")),
    ],
))


# --- moves --------------------------------------------------------------------------------------

def _reversible(move):
    if move.kind == Move.Kind.REVERSAL or Move.objects.filter(reverses=move).exists():
        return False
    if move.device_id is not None:
        return move.device.location_id == move.to_location_id and selectors.active_reservation(move.device) is None
    if move.to_location.is_virtual:
        return True
    return selectors.on_hand(move.to_location, move.item) >= move.quantity


register(ModelScreens(
    model=Move, area="Warehouse", menu_label=_("Stock moves"),
    columns=["created_at", "kind", "item", "device", "quantity", "from_location", "to_location", "reason", "actor"],
    filterset_fields=["kind", "item", "from_location", "to_location"],
    search_fields=["device__serial", "reason", "ticket_ref", "subscription_ref"],
    queryset=lambda request: Move.objects.select_related("item", "device", "from_location", "to_location"),
    formats={"quantity": lambda m: f"{m.quantity.normalize():f} {m.item.get_unit_display()}"},
    money={"unit_cost": "currency"},
    detail_fields=["created_at", "kind", "item", "device", "quantity", "from_location", "to_location", "unit_cost",
                   "condition", "reason", "ticket_ref", "subscription_ref", "reverses", "actor"],
    ordering=["-id"],
    actions=[Action("reverse", _("Reverse"), "inventory.reverse_move",
                    lambda move, *, actor, reason: services.reverse_move(move, actor=actor, reason=reason),
                    form_class=ReasonForm, danger=True, available=_reversible,
                    confirm=_("Posts the mirror move (the goods go back where they came from). A move is reversed "
                              "at most once, and only while the goods are still where it took them."))],
))


# --- reservations -------------------------------------------------------------------------------

def _reserve(*, actor, reference, serial="", item=None, location=None, quantity=None, note=""):
    return services.reserve(actor=actor, reference=reference, serial=serial or None,
                            item=None if serial else item, location=location, quantity=quantity, note=note)


def _reservation_sample(view, obj, user):
    if view != "add":
        return {}
    row = (Stock.objects.filter(item__tracking="quantity", location__kind=K.WAREHOUSE, quantity__gte=1)
           .order_by("location__name").first())
    return {"serial": "", "item": str(row.item_id), "location": str(row.location_id), "quantity": "1",
            "reference": "order:SUITE"} if row else {}


register(ModelScreens(
    model=Reservation, area="Warehouse", menu_label=_("Reservations"),
    columns=["created_at", "state", "reference", "item", "device", "location", "quantity", "actor"],
    form_class=ReservationForm, create=_reserve,
    filterset_fields=["state", "item", "location"], search_fields=["reference", "device__serial", "note"],
    queryset=lambda request: Reservation.objects.select_related("item", "device", "location"),
    formats={"quantity": lambda r: f"{r.quantity.normalize():f}"},
    ordering=["-created_at"], form_sample=_reservation_sample,
    actions=[Action("release", _("Release"), "inventory.change_reservation",
                    lambda r, *, actor, reason="": services.release(r, actor=actor, reason=reason),
                    form_class=OptionalReasonForm, available=lambda r: r.state == Reservation.State.ACTIVE)],
))


# --- stocktakes ---------------------------------------------------------------------------------

def _count(stocktake, *, actor, item, counted=None, serials=""):
    services.count(stocktake, actor=actor, item=item, counted=counted,
                   serials=[s for s in (serials or "").split() if s])
    return stocktake


def _stocktake_context(request, stocktake):
    lines = []
    for line in stocktake.lines.select_related("item").order_by("item__name"):
        expected = line.expected if line.expected is not None else selectors.on_hand(stocktake.location, line.item)
        lines.append({"line": line, "expected": expected, "difference": line.counted - expected})
    return {"lines": lines}


register(ModelScreens(
    model=Stocktake, area="Warehouse", menu_label=_("Stocktakes"),
    columns=["created_at", "location", "state", "reason", "posted_at", "actor"],
    form_class=StocktakeForm,
    create=lambda *, actor, location, reason="": services.open_stocktake(actor=actor, location=location,
                                                                         reason=reason),
    filterset_fields=["state", "location"], search_fields=["reason"],
    queryset=lambda request: Stocktake.objects.select_related("location"), ordering=["-created_at"],
    detail_template="inventory/stocktake_detail.html", detail_context=_stocktake_context,
    actions=[
        Action("count", _("Count an item"), "inventory.add_stocktake", _count, form_class=CountForm,
               available=lambda s: s.state == Stocktake.State.OPEN),
        Action("post", _("Post the differences"), "inventory.post_stocktake",
               lambda s, *, actor, reason="": services.post_stocktake(s, actor=actor, reason=reason),
               form_class=OptionalReasonForm, danger=True, available=lambda s: s.state == Stocktake.State.OPEN,
               confirm=_("Books the difference between counted and on-hand of every counted item as adjustment "
                         "moves. A stocktake is posted once.")),
    ],
))


# --- pages ----------------------------------------------------------------------------------------

register_page(Page("inventory:receive", _("Goods receipt (scanner)"), "Warehouse", "inventory.add_move"))
register_page(Page("inventory:move", _("Move goods"), "Warehouse", "inventory.add_move"))
register_page(Page("inventory:my_stock", _("My stock"), "Warehouse", "inventory.view_location"))
register_page(Page("inventory:reports", _("Stock reports"), "Warehouse", "inventory.view_location"))
register_page(Page("inventory:check", _("Inventory check"), "Reports", "inventory.check_inventory"))


# --- the customer page ---------------------------------------------------------------------------

register_panel(_("Devices"), "inventory/customer_devices_panel.html",
               context_func=lambda request, customer: {"devices": selectors.devices_of_customer(customer)},
               permission="inventory.view_device", key="inventory.devices", order=40)
