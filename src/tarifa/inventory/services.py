"""The only write path of the warehouse. Every function runs in one transaction.

Locks are taken in one fixed order, so two operators never deadlock and one of them wins:
  1. devices, by id (SELECT … FOR UPDATE);
  2. stock rows (location, item), by (location id, item id);
  3. reservations of what is moved.
A device is moved only from where it is; a quantity only when on-hand minus what others reserved
there covers it; a serial is reserved once. Whatever is refused writes nothing (the whole batch).

Tickets and subscriptions are above this app: they pass their ids as `ticket_ref` and
`subscription_ref` (and the reservation's `reference`).
"""

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils.translation import gettext as _

from tarifa.audit import services as recorded
from tarifa.audit.services import actor_label
from tarifa.kernel import events
from tarifa.kernel.clock import now, today
from tarifa.kernel.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from tarifa.kernel.ids import uuid7

from . import references
from .models import Device, Item, Location, Move, Reservation, Stock, Stocktake, StocktakeLine

K = Location.Kind
MK = Move.Kind
MAX_BATCH = 5000


def _require(actor, perm):
    if hasattr(actor, "has_perm") and not actor.has_perm(perm):
        raise PermissionDenied(_("You may not do this (%(perm)s).") % {"perm": perm})


# --- locations and items ---------------------------------------------------------------------

VIRTUAL_NAMES = {K.SUPPLIER: "Supplier", K.SCRAP: "Scrap and loss", K.ADJUSTMENT: "Inventory adjustment",
                 K.TRANSIT: "In transit"}


def virtual_location(kind: str) -> Location:
    """The default location of a virtual kind (supplier, scrap, adjustment) or transit, made when first needed."""
    found = Location.objects.filter(kind=kind, archived_at__isnull=True).order_by("created_at", "id").first()
    if found is not None:
        return found
    return _made_once("system", code=kind.upper(), name=VIRTUAL_NAMES[kind], kind=kind)


def create_location(*, actor, code, name, kind, technician=None, customer=None, address=None, note="") -> Location:
    """A new location. A technician's location names its staff user; customer premises their customer."""
    if kind == K.TECHNICIAN and technician is None:
        raise ValidationFailed(_("A technician's stock names the technician."), code="technician_required",
                               fields={"technician": [_("Required for a technician's stock.")]})
    if kind == K.CUSTOMER and customer is None:
        raise ValidationFailed(_("Customer premises name the customer."), code="customer_required",
                               fields={"customer": [_("Required for customer premises.")]})
    if address is not None and customer is not None and address.customer_id != customer.pk:
        raise ValidationFailed(_("The address is not the customer's."), code="address_not_customers",
                               fields={"address": [_("Not this customer's address.")]})
    return recorded.create(Location, actor=actor, code=code, name=name, kind=kind, technician=technician,
                           customer=customer if kind == K.CUSTOMER else None,
                           address=address if kind == K.CUSTOMER else None, note=note)


def update_location(location, *, actor, name, note="", **_ignored) -> Location:
    return recorded.update(location, actor=actor, name=name, note=note)


def archive_location(location, *, actor, reason) -> Location:
    """Only an empty location is archived (nothing on hand, nothing reserved)."""
    if not location.is_virtual and Stock.objects.filter(location=location).exclude(quantity=0).exists():
        raise Conflict(_("%(location)s still holds stock: move it out first.") % {"location": location},
                       code="location_not_empty")
    return recorded.archive(location, actor=actor, reason=reason)


def technician_location(user, *, actor="system") -> Location:
    """The technician's own stock (a van or a person), made when first needed."""
    found = Location.objects.filter(kind=K.TECHNICIAN, technician=user, archived_at__isnull=True).first()
    if found is not None:
        return found
    name = user.get_full_name() or user.get_username()
    return _made_once(actor, code=f"TECH-{user.get_username()}"[:40], name=_("Van of %(name)s") % {"name": name},
                      kind=K.TECHNICIAN, technician=user)


def premises(customer, address=None, *, actor="system") -> Location:
    """The customer's premises (one location per customer and address), made when first needed."""
    found = Location.objects.filter(kind=K.CUSTOMER, customer=customer, address=address).first()
    if found is not None:
        return found
    code = f"CUST-{customer.number}" + (f"-{str(address.pk)[-6:]}" if address is not None else "")
    name = f"{customer}" + (f", {address.line1}" if address is not None else "")
    return _made_once(actor, code=code[:40], name=name[:200], kind=K.CUSTOMER, customer=customer, address=address)


def _made_once(actor, *, code, **fields) -> Location:
    """A location made on first need; two operators needing it at once get the same one."""
    try:
        with transaction.atomic():
            location, created = Location.objects.get_or_create(code=code, defaults=fields)
    except IntegrityError:
        location, created = Location.objects.get(code=code), False
    if created:
        recorded.record(location, actor=actor, action="create", changes={"code": [None, code]})
    return location


def create_item(*, actor, code, name, kind, currency, tracking=Item.Tracking.SERIAL, unit=Item.Unit.PIECE,
                vendor="", cost=Decimal(0), catalog_ref="") -> Item:
    if tracking == Item.Tracking.SERIAL and unit != Item.Unit.PIECE:
        raise ValidationFailed(_("Serial-tracked items are counted in pieces."), code="serial_unit",
                               fields={"unit": [_("Pieces only for serial-tracked items.")]})
    catalog_ref = references.check(catalog_ref)
    return recorded.create(Item, actor=actor, code=code, name=name, kind=kind, currency=currency, tracking=tracking,
                           unit=unit, vendor=vendor, cost=cost, catalog_ref=catalog_ref)


def update_item(item, *, actor, name, vendor=None, cost=None, catalog_ref=None, **_ignored) -> Item:
    """Change an item; a field not given (None) keeps its value. `catalog_ref` must name a device
    price of the catalog ("" for none; code `unknown_catalog_ref` otherwise)."""
    changes = {"name": name}
    if vendor is not None:
        changes["vendor"] = vendor
    if catalog_ref is not None:
        changes["catalog_ref"] = references.check(catalog_ref, current=item.catalog_ref)
    if cost is not None:
        changes["cost"] = cost
    return recorded.update(item, actor=actor, **changes)


def archive_item(item, *, actor, reason) -> Item:
    return recorded.archive(item, actor=actor, reason=reason)


# --- moves -------------------------------------------------------------------------------------

def infer_kind(source: Location, target: Location) -> str:
    """The kind of a move between two locations, or a refusal naming why it is not allowed."""
    s, t = source.kind, target.kind
    if s == t and s in Location.VIRTUAL:
        raise ValidationFailed(_("Goods do not move between virtual locations."), code="move_not_allowed")
    if s == K.SUPPLIER:
        return MK.RECEIPT
    if K.ADJUSTMENT in (s, t):
        return MK.ADJUSTMENT
    if s == K.SCRAP:
        raise Conflict(_("Nothing leaves scrap (reverse the write-off instead)."), code="move_not_allowed")
    if t == K.SCRAP:
        return MK.WRITE_OFF
    if t == K.SUPPLIER:
        return MK.RETURN
    if s == K.CUSTOMER:
        if t == K.CUSTOMER:
            raise Conflict(_("Devices go from one customer to another through a warehouse or a technician."),
                           code="move_not_allowed")
        return MK.RETURN
    if t == K.CUSTOMER:
        return MK.INSTALL
    if s == K.WAREHOUSE and t == K.TECHNICIAN:
        return MK.ISSUE
    return MK.TRANSFER


@dataclass
class Line:
    """One line of a batch: a device, or a quantity of an item, from a location to another."""

    from_location: Location
    to_location: Location
    device: Device | None = None
    item: Item | None = None
    quantity: Decimal = Decimal(1)
    unit_cost: Decimal | None = None
    extra: dict = field(default_factory=dict)


def _lock_devices(ids) -> dict:
    ids = sorted({i for i in ids if i is not None})
    return {d.pk: d for d in Device.objects.select_for_update().filter(pk__in=ids).order_by("pk")}


def _lock_stock(pairs) -> dict:
    """Stock rows of (location, item) pairs, made if missing, locked in (location id, item id) order."""
    pairs = sorted({(loc.pk, item.pk, loc.is_virtual) for loc, item in pairs})
    Stock.objects.bulk_create([Stock(location_id=l_id, item_id=i_id, virtual=v) for l_id, i_id, v in pairs],
                              ignore_conflicts=True)
    wanted = {(l_id, i_id) for l_id, i_id, _v in pairs}
    rows = (Stock.objects.select_for_update().filter(location_id__in={p[0] for p in wanted},
                                                     item_id__in={p[1] for p in wanted}).order_by("location_id",
                                                                                                   "item_id"))
    return {(r.location_id, r.item_id): r for r in rows if (r.location_id, r.item_id) in wanted}


def _reserved_by_others(location, item, reference) -> Decimal:
    qs = Reservation.objects.filter(location=location, item=item, device__isnull=True,
                                    state=Reservation.State.ACTIVE)
    if reference:
        qs = qs.exclude(reference=reference)
    return qs.aggregate(total=Sum("quantity"))["total"] or Decimal(0)


def _fmt(q: Decimal) -> str:
    return f"{q.normalize():f}"


def post_moves(*, actor, lines: list[Line], reason="", kind=None, condition="", ticket_ref="", subscription_ref="",
               reservation_ref="", reverses=None, batch=None) -> list[Move]:
    """Post a batch of moves: all or nothing.

    Each device must be where its line takes it from and not reserved for another reference
    (`reservation_ref` consumes the reservation it names); each quantity must be on hand, minus
    what others reserved, at a real source. On-hand, device locations and reservations are
    updated in the same transaction. Refusals are 409 (`Conflict`) naming the line."""
    if not lines:
        raise ValidationFailed(_("Nothing to move."), code="empty_move")
    if len(lines) > MAX_BATCH:
        raise ValidationFailed(_("At most %(n)s lines in one batch.") % {"n": MAX_BATCH}, code="batch_too_large")
    label = actor_label(actor)
    with transaction.atomic():
        devices = _lock_devices(line.device.pk for line in lines if line.device is not None)
        kinds = []
        for number, line in enumerate(lines, start=1):
            if line.device is not None:
                line.device = devices[line.device.pk]
                line.item = line.device.item
                line.quantity = Decimal(1)
            if line.item is None:
                raise ValidationFailed(_("Line %(n)s: name a serial or an item.") % {"n": number}, code="no_item")
            if line.item.by_serial and line.device is None:
                raise ValidationFailed(_("Line %(n)s: %(item)s is tracked by serial: name the serial.") % {
                    "n": number, "item": line.item}, code="serial_required", fields={"serial": [_("Required.")]})
            if line.quantity is None or line.quantity <= 0:
                raise ValidationFailed(_("Line %(n)s: the quantity must be positive.") % {"n": number},
                                       code="invalid_quantity", fields={"quantity": [_("Must be positive.")]})
            if line.from_location.pk == line.to_location.pk:
                raise ValidationFailed(_("Line %(n)s: from and to are the same location.") % {"n": number},
                                       code="same_location")
            if line.to_location.is_archived:
                raise Conflict(_("Line %(n)s: %(loc)s is archived.") % {"n": number, "loc": line.to_location},
                               code="location_archived")
            inferred = MK.REVERSAL if reverses is not None else infer_kind(line.from_location, line.to_location)
            if kind and kind != inferred:
                raise Conflict(_("Line %(n)s: from %(a)s to %(b)s is a %(inferred)s, not a %(kind)s.") % {
                    "n": number, "a": line.from_location.get_kind_display(), "b": line.to_location.get_kind_display(),
                    "inferred": MK(inferred).label, "kind": MK(kind).label}, code="wrong_kind")
            kinds.append(inferred)
        serials = Counter(line.device.pk for line in lines if line.device is not None)
        twice = [devices[pk].serial for pk, n in serials.items() if n > 1]
        if twice:
            raise ValidationFailed(_("A serial appears twice in the batch: %(s)s.") % {"s": ", ".join(twice)},
                                   code="duplicate_serial")
        stock = _lock_stock([(line.from_location, line.item) for line in lines]
                            + [(line.to_location, line.item) for line in lines])
        # Reservations of the moved devices, and the quantities asked per (location, item).
        reserved = {r.device_id: r for r in Reservation.objects.select_for_update().filter(
            device_id__in=list(devices), state=Reservation.State.ACTIVE).order_by("pk")}
        asked: Counter = Counter()
        for number, line in enumerate(lines, start=1):
            if line.device is not None:
                device = line.device
                if device.location_id != line.from_location.pk:
                    raise Conflict(_("Line %(n)s: %(serial)s is at %(here)s, not at %(there)s.") % {
                        "n": number, "serial": device.serial, "here": device.location,
                        "there": line.from_location}, code="device_not_here", fields={"serial": [device.serial]})
                held = reserved.get(device.pk)
                if held is not None and held.reference != reservation_ref:
                    raise Conflict(_("Line %(n)s: %(serial)s is reserved for %(ref)s.") % {
                        "n": number, "serial": device.serial, "ref": held.reference},
                        code="device_reserved", fields={"serial": [device.serial]})
            elif not line.from_location.is_virtual:
                asked[(line.from_location.pk, line.item.pk)] += line.quantity
        for (loc_id, item_id), quantity in asked.items():
            row = stock[(loc_id, item_id)]
            location = next(li.from_location for li in lines if li.from_location.pk == loc_id)
            item = next(li.item for li in lines if li.item.pk == item_id)
            free = row.quantity - _reserved_by_others(location, item, reservation_ref)
            if quantity > free:
                raise Conflict(_("Only %(free)s %(unit)s of %(item)s free at %(loc)s; %(asked)s asked.") % {
                    "free": _fmt(free), "unit": item.get_unit_display(), "item": item, "loc": location,
                    "asked": _fmt(quantity)}, code="insufficient_stock", fields={"quantity": [_fmt(free)]})
        previous_subscription = {pk: d.subscription_ref for pk, d in devices.items()}
        batch = batch or (uuid7() if len(lines) > 1 else None)
        moves = []
        at = now()
        for line, move_kind in zip(lines, kinds):
            item, device = line.item, line.device
            cost = line.unit_cost if line.unit_cost is not None else (device.cost if device else item.cost)
            moves.append(Move(kind=move_kind, item=item, device=device, quantity=line.quantity,
                              from_location=line.from_location, to_location=line.to_location, unit_cost=cost,
                              currency=item.currency, condition=line.extra.get("condition", condition) or "",
                              reason=reason, ticket_ref=ticket_ref, batch=batch,
                              subscription_ref=subscription_ref or (previous_subscription.get(device.pk, "")
                                                                    if device is not None else ""),
                              reverses=reverses, actor=label, created_at=at))
            stock[(line.from_location.pk, item.pk)].quantity -= line.quantity
            stock[(line.to_location.pk, item.pk)].quantity += line.quantity
            if device is not None:
                device.location = line.to_location
                new_condition = line.extra.get("condition", condition)
                if new_condition:
                    device.condition = new_condition
                if line.to_location.kind == K.CUSTOMER:
                    device.subscription_ref = subscription_ref
                elif line.from_location.kind == K.CUSTOMER:
                    device.subscription_ref = ""
                device.updated_at = at
        Move.objects.bulk_create(moves)
        Stock.objects.bulk_update(list(stock.values()), ["quantity"])
        moved = [line.device for line in lines if line.device is not None]
        if moved:
            Device.objects.bulk_update(moved, ["location", "condition", "subscription_ref", "updated_at"])
        # Upward effects (rent ends when a device leaves the customer's premises, say) travel as events.
        for m in moves:
            if m.device_id is not None and K.CUSTOMER in (m.from_location.kind, m.to_location.kind):
                name = "inventory.device_installed" if m.to_location.kind == K.CUSTOMER else "inventory.device_removed"
                events.emit(name, obj=m.device, payload={
                    "move": str(m.pk), "serial": m.device.serial, "kind": m.kind, "day": str(today()),
                    "subscription_ref": m.subscription_ref,
                    "ticket_ref": m.ticket_ref})
        # The reservation a move carries out is consumed by it.
        if reservation_ref:
            consumed = [r.pk for r in reserved.values() if r.reference == reservation_ref]
            qty_items = {(li.from_location.pk, li.item.pk) for li in lines if li.device is None}
            for loc_id, item_id in qty_items:
                consumed += list(Reservation.objects.select_for_update().filter(
                    location_id=loc_id, item_id=item_id, device__isnull=True, reference=reservation_ref,
                    state=Reservation.State.ACTIVE).values_list("pk", flat=True))
            Reservation.objects.filter(pk__in=consumed).update(state=Reservation.State.CONSUMED, resolved_at=at)
        return moves


def _line_for(*, from_location, to_location, serial=None, device=None, item=None, quantity=None, unit_cost=None):
    if device is None and serial:
        device = device_by_serial(serial)
    if device is None and item is None:
        raise ValidationFailed(_("Name a serial, or an item and a quantity."), code="no_item",
                               fields={"serial": [_("Required without an item.")]})
    return Line(from_location=from_location, to_location=to_location, device=device,
                item=None if device is not None else item,
                quantity=Decimal(1) if device is not None else (quantity if quantity is not None else Decimal(1)),
                unit_cost=unit_cost)


def device_by_serial(serial: str) -> Device:
    device = Device.objects.select_related("item", "location").filter(serial=serial.strip()).first()
    if device is None:
        raise NotFound(_("No device with serial %(serial)s.") % {"serial": serial}, code="unknown_serial",
                       fields={"serial": [_("Unknown serial.")]})
    return device


def move(*, actor, from_location, to_location, serial=None, device=None, item=None, quantity=None, reason="",
         kind=None, condition="", ticket_ref="", subscription_ref="", reservation_ref="") -> Move:
    """Move one serial, or a quantity of an item, between two locations (the kind follows from them)."""
    _require(actor, "inventory.add_move")
    line = _line_for(from_location=from_location, to_location=to_location, serial=serial, device=device, item=item,
                     quantity=quantity)
    return post_moves(actor=actor, lines=[line], reason=reason, kind=kind, condition=condition,
                      ticket_ref=ticket_ref, subscription_ref=subscription_ref,
                      reservation_ref=reservation_ref)[0]


def move_batch(*, actor, lines: list[dict], reason="", kind=None, condition="", ticket_ref="",
               subscription_ref="") -> list[Move]:
    """Several moves at once ({serial | item, quantity, from_location, to_location}): all or nothing."""
    _require(actor, "inventory.add_move")
    built = []
    for number, spec in enumerate(lines, start=1):
        try:
            built.append(_line_for(**spec))
        except NotFound as exc:
            raise Conflict(_("Line %(n)s: %(msg)s") % {"n": number, "msg": exc.message}, code=exc.code) from None
    return post_moves(actor=actor, lines=built, reason=reason, kind=kind, condition=condition,
                      ticket_ref=ticket_ref, subscription_ref=subscription_ref)


def issue(*, actor, device=None, serial=None, warehouse, technician_location, item=None, quantity=None,
          reason="") -> Move:
    return move(actor=actor, from_location=warehouse, to_location=technician_location, device=device, serial=serial,
                item=item, quantity=quantity, reason=reason, kind=MK.ISSUE)


def install(*, actor, device=None, serial=None, source, customer, address=None, subscription_ref="", ticket_ref="",
            reservation_ref="", item=None, quantity=None, reason="") -> Move:
    """From a technician's (or a warehouse's) stock to the customer's premises, linked to the
    subscription and the ticket."""
    target = premises(customer, address, actor=actor)
    return move(actor=actor, from_location=source, to_location=target, device=device, serial=serial, item=item,
                quantity=quantity, reason=reason or _("Installed"), kind=MK.INSTALL, ticket_ref=ticket_ref,
                subscription_ref=subscription_ref, reservation_ref=reservation_ref)


def return_device(*, actor, device=None, serial=None, to_location, condition=Device.Condition.USED, reason="",
                  ticket_ref="") -> Move:
    """Back from the customer's premises, as used or broken."""
    if condition not in (Device.Condition.USED, Device.Condition.BROKEN, Device.Condition.NEW):
        raise ValidationFailed(_("Returned as used or broken."), code="invalid_condition")
    device = device or device_by_serial(serial)
    return move(actor=actor, from_location=device.location, to_location=to_location, device=device,
                condition=condition, reason=reason or _("Returned"), ticket_ref=ticket_ref)


def write_off(*, actor, from_location, device=None, serial=None, item=None, quantity=None, reason) -> Move:
    if not reason:
        raise ValidationFailed(_("Say why it is written off."), code="reason_required",
                               fields={"reason": [_("Required.")]})
    return move(actor=actor, from_location=from_location, to_location=virtual_location(K.SCRAP), device=device,
                serial=serial, item=item, quantity=quantity, reason=reason, kind=MK.WRITE_OFF)


def reverse_move(original: Move, *, actor, reason) -> Move:
    """The mirror move (to → from, same device or quantity), at most once; refused when the stock
    has since moved on (the device is elsewhere, the quantity is gone)."""
    _require(actor, "inventory.reverse_move")
    if not reason:
        raise ValidationFailed(_("Say why the move is reversed."), code="reason_required",
                               fields={"reason": [_("Required.")]})
    with transaction.atomic():
        original = Move.objects.select_for_update(of=("self",)).select_related("device", "item", "from_location",
                                                                    "to_location").get(pk=original.pk)
        if original.kind == MK.REVERSAL:
            raise Conflict(_("A reversal is not reversed; move the goods again."), code="not_reversible")
        if Move.objects.filter(reverses=original).exists():
            raise Conflict(_("This move was reversed already."), code="already_reversed")
        line = Line(from_location=original.to_location, to_location=original.from_location, device=original.device,
                    item=original.item, quantity=original.quantity, unit_cost=original.unit_cost)
        try:
            with transaction.atomic():
                reversal = post_moves(actor=actor, lines=[line], reason=reason, reverses=original,
                                      ticket_ref=original.ticket_ref, subscription_ref=original.subscription_ref,
                                      condition=_condition_before(original))[0]
        except IntegrityError:
            raise Conflict(_("This move was reversed already."), code="already_reversed") from None
        recorded.record(original, actor=actor, action="reverse", message=reason)
        return reversal


def _condition_before(move_: Move) -> str:
    if move_.device_id is None:
        return ""
    before = (Move.objects.filter(device_id=move_.device_id, id__lt=move_.id).exclude(condition="")
              .order_by("-id").values_list("condition", flat=True).first())
    return before or Device.Condition.NEW


# --- receipts ------------------------------------------------------------------------------------

def parse_serials(text: str) -> list[dict]:
    """Serials from a pasted list or CSV: one a line; `serial[,mac[,iccid]]` (commas, semicolons or tabs).
    Blank lines and a header line starting with "serial" are skipped. Each has its line number."""
    rows = []
    for number, raw in enumerate((text or "").splitlines(), start=1):
        raw = raw.strip().strip("\ufeff")
        if not raw:
            continue
        parts = [p.strip().strip('"') for p in raw.replace(";", ",").replace("\t", ",").split(",")]
        if number == 1 and parts[0].lower() == "serial":
            continue
        rows.append({"line": number, "serial": parts[0], "mac": parts[1] if len(parts) > 1 else "",
                     "iccid": parts[2] if len(parts) > 2 else ""})
    return rows


def receive(*, actor, warehouse, item, serials=None, quantity=None, unit_cost=None, supplier=None,
            reason="") -> list[Move]:
    """A goods receipt from a supplier into a warehouse, at cost: a batch of serials (strings or
    {serial, mac, iccid, line}) or a quantity. All or nothing: a serial twice in the batch, already
    known, or empty refuses the whole batch, naming each offending line and why (409)."""
    _require(actor, "inventory.add_move")
    supplier = supplier or virtual_location(K.SUPPLIER)
    if supplier.kind not in (K.SUPPLIER, K.ADJUSTMENT):
        raise ValidationFailed(_("A receipt comes from a supplier."), code="not_a_supplier")
    if warehouse.is_virtual:
        raise ValidationFailed(_("Goods are received into a real location."), code="not_a_warehouse")
    cost = item.cost if unit_cost is None else unit_cost
    if cost < 0:
        raise ValidationFailed(_("The cost cannot be negative."), code="invalid_amount",
                               fields={"unit_cost": [_("Not negative.")]})
    if not item.by_serial:
        if serials:
            raise ValidationFailed(_("%(item)s is counted by quantity, not by serial.") % {"item": item},
                                   code="not_serial_tracked")
        return post_moves(actor=actor, lines=[Line(from_location=supplier, to_location=warehouse, item=item,
                                                   quantity=quantity, unit_cost=cost)], reason=reason)
    rows = [s if isinstance(s, dict) else {"serial": s} for s in (serials or [])]
    for number, row in enumerate(rows, start=1):
        row.setdefault("line", number)
        row["serial"] = str(row.get("serial") or "").strip()
    if not rows:
        raise ValidationFailed(_("Scan or paste at least one serial."), code="no_serials",
                               fields={"serials": [_("Required.")]})
    if len(rows) > MAX_BATCH:
        raise ValidationFailed(_("At most %(n)s serials in one receipt.") % {"n": MAX_BATCH}, code="batch_too_large")
    problems = []
    first_line = {}
    for row in rows:
        serial = row["serial"]
        if not serial:
            problems.append(_("line %(line)s: empty serial") % row)
        elif len(serial) > 64:
            problems.append(_("line %(line)s: %(serial)s is longer than 64 characters") % row)
        elif serial in first_line:
            problems.append(_("line %(line)s: %(serial)s is a duplicate of line %(first)s") % {
                **row, "first": first_line[serial]})
        else:
            first_line[serial] = row["line"]
    with transaction.atomic():
        known = dict(Device.objects.filter(serial__in=list(first_line)).values_list("serial", "location__name"))
        for serial, location_name in known.items():
            problems.append(_("line %(line)s: %(serial)s is already known (at %(loc)s)") % {
                "line": first_line[serial], "serial": serial, "loc": location_name})
        if problems:
            raise Conflict(_("Nothing was received: %(problems)s.") % {"problems": "; ".join(problems[:20])},
                           code="serials_refused", fields={"serials": problems})
        devices = [Device(item=item, serial=row["serial"], mac=(row.get("mac") or "")[:17],
                          iccid=(row.get("iccid") or "")[:22], location=supplier, cost=cost) for row in rows]
        try:
            with transaction.atomic():
                Device.objects.bulk_create(devices)
        except IntegrityError:  # another receipt took one of these serials meanwhile
            raise Conflict(_("Nothing was received: a serial was received by someone else meanwhile."),
                           code="serials_refused") from None
        lines = [Line(from_location=supplier, to_location=warehouse, device=d, unit_cost=cost) for d in devices]
        return post_moves(actor=actor, lines=lines, reason=reason, condition=Device.Condition.NEW)


# --- reservations ------------------------------------------------------------------------------

def reserve(*, actor, reference, location=None, device=None, serial=None, item=None, quantity=None,
            note="") -> Reservation:
    """Hold a serial (once) or a quantity at a location for a ticket or an order. Two operators
    reserving the same serial at once: one wins, the other gets 409 `device_reserved`."""
    _require(actor, "inventory.add_reservation")
    if not reference:
        raise ValidationFailed(_("Say what it is reserved for."), code="reference_required",
                               fields={"reference": [_("Required.")]})
    if device is None and serial:
        device = device_by_serial(serial)
    with transaction.atomic():
        if device is not None:
            device = _lock_devices([device.pk])[device.pk]
            if location is not None and device.location_id != location.pk:
                raise Conflict(_("%(serial)s is at %(here)s, not at %(there)s.") % {
                    "serial": device.serial, "here": device.location, "there": location}, code="device_not_here")
            if device.location.is_virtual or device.location.kind == K.CUSTOMER:
                raise Conflict(_("%(serial)s is not in stock (at %(here)s).") % {
                    "serial": device.serial, "here": device.location}, code="not_in_stock")
            held = Reservation.objects.filter(device=device, state=Reservation.State.ACTIVE).first()
            if held is not None:
                raise Conflict(_("%(serial)s is reserved for %(ref)s already.") % {
                    "serial": device.serial, "ref": held.reference}, code="device_reserved")
            try:
                with transaction.atomic():
                    reservation = Reservation.objects.create(
                        item=device.item, device=device, location=device.location, quantity=Decimal(1),
                        reference=reference, note=note, actor=actor_label(actor))
            except IntegrityError:
                raise Conflict(_("%(serial)s is reserved already.") % {"serial": device.serial},
                               code="device_reserved") from None
            recorded.record(reservation, actor=actor, action="create", message=_("Reserved for %(ref)s") % {
                "ref": reference})
            return reservation
        if item is None or location is None:
            raise ValidationFailed(_("Name a serial, or an item, a quantity and a location."), code="no_item")
        if item.by_serial:
            raise ValidationFailed(_("%(item)s is tracked by serial: reserve a serial.") % {"item": item},
                                   code="serial_required")
        if location.kind not in (K.WAREHOUSE, K.TECHNICIAN, K.TRANSIT):
            raise Conflict(_("Only stock in a warehouse, with a technician or in transit is reserved."),
                           code="not_in_stock", fields={"location": [_("Not a stock location.")]})
        quantity = quantity or Decimal(1)
        if quantity <= 0:
            raise ValidationFailed(_("The quantity must be positive."), code="invalid_quantity")
        row = _lock_stock([(location, item)])[(location.pk, item.pk)]
        free = row.quantity - _reserved_by_others(location, item, "")
        if quantity > free:
            raise Conflict(_("Only %(free)s %(unit)s of %(item)s free at %(loc)s.") % {
                "free": _fmt(free), "unit": item.get_unit_display(), "item": item, "loc": location},
                code="insufficient_stock")
        reservation = Reservation.objects.create(item=item, location=location, quantity=quantity,
                                                 reference=reference, note=note, actor=actor_label(actor))
        recorded.record(reservation, actor=actor, action="create", message=_("Reserved for %(ref)s") % {
            "ref": reference})
        return reservation


def release(reservation, *, actor, reason="") -> Reservation:
    """Give a reservation up (once)."""
    _require(actor, "inventory.change_reservation")
    with transaction.atomic():
        reservation = Reservation.objects.select_for_update().get(pk=reservation.pk)
        if reservation.state != Reservation.State.ACTIVE:
            raise Conflict(_("The reservation is %(state)s already.") % {"state": reservation.get_state_display()},
                           code="reservation_not_active")
        reservation.state = Reservation.State.RELEASED
        reservation.resolved_at = now()
        reservation.save(update_fields=["state", "resolved_at"])
        recorded.record(reservation, actor=actor, action="release", message=reason or _("Released"))
        return reservation


def release_for(reference: str, *, actor) -> int:
    """Release every active reservation of a reference (a cancelled ticket)."""
    n = 0
    for reservation in Reservation.objects.filter(reference=reference, state=Reservation.State.ACTIVE):
        release(reservation, actor=actor, reason=_("Released with %(ref)s") % {"ref": reference})
        n += 1
    return n


# --- stocktakes ----------------------------------------------------------------------------------

def open_stocktake(*, actor, location, reason="") -> Stocktake:
    if location.is_virtual:
        raise ValidationFailed(_("Only real locations are counted."), code="virtual_location")
    stocktake = Stocktake.objects.create(location=location, reason=reason, actor=actor_label(actor))
    recorded.record(stocktake, actor=actor, action="create", changes={"location": [None, str(location)]})
    return stocktake


def count(stocktake, *, actor, item, counted=None, serials=None) -> StocktakeLine:
    """Record what was counted of one item (again: replaces the count). Serial items: the serials seen."""
    if stocktake.state != Stocktake.State.OPEN:
        raise Conflict(_("The stocktake is posted."), code="stocktake_posted")
    if item.by_serial:
        seen = sorted({s.strip() for s in (serials or []) if s and s.strip()})
        counted = Decimal(len(seen))
    else:
        seen = []
        if counted is None or counted < 0:
            raise ValidationFailed(_("Give the counted quantity."), code="invalid_quantity",
                                   fields={"counted": [_("Required, not negative.")]})
    line, _created = StocktakeLine.objects.update_or_create(stocktake=stocktake, item=item,
                                                            defaults={"counted": counted, "serials": seen})
    recorded.record(stocktake, actor=actor, action="count", message=_("Counted %(item)s: %(n)s") % {
        "item": item, "n": _fmt(counted)})
    return line


def post_stocktake(stocktake, *, actor, reason="") -> list[Move]:
    """Book the differences of every counted line as adjustment moves with the reason; once.
    A serial on hand but not seen goes to the adjustment location (lost); a serial seen that the
    system had elsewhere is refused with its place (move it first); an unknown one is received
    from the adjustment location at the item's cost."""
    _require(actor, "inventory.post_stocktake")
    with transaction.atomic():
        stocktake = Stocktake.objects.select_for_update().get(pk=stocktake.pk)
        if stocktake.state != Stocktake.State.OPEN:
            raise Conflict(_("The stocktake is posted already."), code="stocktake_posted")
        location = stocktake.location
        adjustment = virtual_location(K.ADJUSTMENT)
        why = reason or stocktake.reason or _("Stocktake")
        lines = []
        new_devices = []
        for counted in stocktake.lines.select_related("item"):
            item = counted.item
            row = _lock_stock([(location, item)])[(location.pk, item.pk)]
            counted.expected = row.quantity
            counted.save(update_fields=["expected"])
            if item.by_serial:
                here = {d.serial: d for d in Device.objects.filter(location=location, item=item)}
                seen = set(counted.serials)
                for serial in sorted(set(here) - seen):
                    lines.append(Line(from_location=location, to_location=adjustment, device=here[serial]))
                elsewhere = Device.objects.filter(serial__in=seen - set(here)).select_related("location")
                misplaced = [f"{d.serial} ({d.location})" for d in elsewhere]
                if misplaced:
                    raise Conflict(_("Seen here but booked elsewhere: %(list)s. Move them here first.") % {
                        "list": ", ".join(misplaced)}, code="serial_elsewhere")
                for serial in sorted(seen - set(here)):
                    device = Device(item=item, serial=serial, location=adjustment, cost=item.cost)
                    new_devices.append(device)
                    lines.append(Line(from_location=adjustment, to_location=location, device=device))
            else:
                diff = counted.counted - row.quantity
                if diff > 0:
                    lines.append(Line(from_location=adjustment, to_location=location, item=item, quantity=diff))
                elif diff < 0:
                    lines.append(Line(from_location=location, to_location=adjustment, item=item, quantity=-diff))
        if new_devices:
            Device.objects.bulk_create(new_devices)
        moves = post_moves(actor=actor, lines=lines, reason=why, kind=MK.ADJUSTMENT) if lines else []
        stocktake.state = Stocktake.State.POSTED
        stocktake.posted_at = now()
        stocktake.save(update_fields=["state", "posted_at"])
        recorded.record(stocktake, actor=actor, action="post",
                        message=_("Posted: %(n)s adjustment moves") % {"n": len(moves)})
        return moves


def as_uuid(value):
    try:
        return UUID(str(value))
    except ValueError:
        return None
