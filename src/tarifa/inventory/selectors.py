"""Reads of the warehouse other apps may use, the invariant check and the stock reports."""

from decimal import Decimal

from django.db import connection
from django.db.models import DecimalField, ExpressionWrapper, F, Q, QuerySet, Sum

from .models import Device, Item, Location, Move, Reservation, Stock

PROBLEM_LIMIT = 100

CHECKS = {
    # Per item, on-hand over all locations (virtual ones included) sums to zero.
    "items_balance": """
        SELECT i.code, 'on-hand over all locations sums to ' || trim_scale(sum(s.quantity))
        FROM inventory_stock s JOIN inventory_item i ON i.id = s.item_id
        GROUP BY i.code HAVING sum(s.quantity) <> 0 ORDER BY i.code LIMIT %(limit)s""",
    # Each on-hand row equals its moves in minus out.
    "stock_matches_moves": """
        WITH m AS (
            SELECT to_location_id AS location_id, item_id, quantity FROM inventory_move
            UNION ALL SELECT from_location_id, item_id, -quantity FROM inventory_move),
        d AS (SELECT location_id, item_id, sum(quantity) AS q FROM m GROUP BY location_id, item_id)
        SELECT coalesce(l.code, '?') || ' / ' || coalesce(i.code, '?'),
               'on hand ' || trim_scale(coalesce(s.quantity, 0)) || ', moves say ' || trim_scale(coalesce(d.q, 0))
        FROM d FULL OUTER JOIN inventory_stock s ON s.location_id = d.location_id AND s.item_id = d.item_id
        LEFT JOIN inventory_location l ON l.id = coalesce(s.location_id, d.location_id)
        LEFT JOIN inventory_item i ON i.id = coalesce(s.item_id, d.item_id)
        WHERE coalesce(s.quantity, 0) <> coalesce(d.q, 0) LIMIT %(limit)s""",
    # No negative on-hand in a real location; the stock row knows whether its location is virtual.
    "no_negative_real": """
        SELECT l.code || ' / ' || i.code,
               CASE WHEN s.virtual <> (l.kind IN ('supplier', 'scrap', 'adjustment'))
                    THEN 'stock row misnames its location as ' || CASE WHEN s.virtual THEN 'virtual' ELSE 'real' END
                    ELSE 'negative on hand ' || trim_scale(s.quantity) END
        FROM inventory_stock s JOIN inventory_location l ON l.id = s.location_id
        JOIN inventory_item i ON i.id = s.item_id
        WHERE (s.quantity < 0 AND l.kind NOT IN ('supplier', 'scrap', 'adjustment'))
           OR s.virtual <> (l.kind IN ('supplier', 'scrap', 'adjustment'))
        LIMIT %(limit)s""",
    # Each serial is in exactly one location with quantity 1 and 0 everywhere else, counting it
    # once at the (virtual) location it came from before its first move; that location is the device's.
    "serials_in_one_place": """
        WITH m AS (
            SELECT device_id, to_location_id AS location_id, 1 AS q FROM inventory_move WHERE device_id IS NOT NULL
            UNION ALL SELECT device_id, from_location_id, -1 FROM inventory_move WHERE device_id IS NOT NULL
            UNION ALL (SELECT DISTINCT ON (device_id) device_id, from_location_id, 1 FROM inventory_move
                       WHERE device_id IS NOT NULL ORDER BY device_id, id)),
        per AS (SELECT device_id, location_id, sum(q) AS q FROM m GROUP BY device_id, location_id),
        bad AS (
            SELECT d.id, d.serial,
                   count(*) FILTER (WHERE per.q = 1) AS places,
                   count(*) FILTER (WHERE per.q > 1 OR per.q < 0) AS wrong,
                   max(per.location_id::text) FILTER (WHERE per.q = 1) AS derived,
                   d.location_id::text AS booked
            FROM inventory_device d LEFT JOIN per ON per.device_id = d.id
            LEFT JOIN inventory_location l ON l.id = per.location_id
            GROUP BY d.id, d.serial, d.location_id)
        SELECT serial, CASE WHEN wrong > 0 THEN 'a location holds it other than 0 or 1 times'
                            WHEN places = 0 AND derived IS NULL AND booked IS NOT NULL
                                 AND NOT EXISTS (SELECT 1 FROM inventory_move WHERE device_id = bad.id)
                            THEN 'no move brought it in'
                            WHEN places <> 1 THEN 'in ' || places || ' locations'
                            ELSE 'its moves end at another location than the device says' END
        FROM bad WHERE wrong > 0 OR places <> 1 OR derived IS DISTINCT FROM booked
        ORDER BY serial LIMIT %(limit)s""",
    # A serial-tracked item's on-hand per location counts its devices there.
    "serial_stock_counts_devices": """
        WITH c AS (SELECT location_id, item_id, count(*) AS n FROM inventory_device GROUP BY location_id, item_id)
        SELECT l.code || ' / ' || i.code, 'on hand ' || trim_scale(s.quantity) || ', devices ' || coalesce(c.n, 0)
        FROM inventory_stock s JOIN inventory_item i ON i.id = s.item_id AND i.tracking = 'serial'
        JOIN inventory_location l ON l.id = s.location_id
        LEFT JOIN c ON c.location_id = s.location_id AND c.item_id = s.item_id
        WHERE l.kind NOT IN ('supplier', 'adjustment') AND s.quantity <> coalesce(c.n, 0)
        LIMIT %(limit)s""",
    # A reversal mirrors the move it reverses.
    "reversals": """
        SELECT r.id::text, 'does not mirror the move it reverses'
        FROM inventory_move r JOIN inventory_move o ON o.id = r.reverses_id
        WHERE r.from_location_id <> o.to_location_id OR r.to_location_id <> o.from_location_id
           OR r.item_id <> o.item_id OR r.quantity <> o.quantity OR r.device_id IS DISTINCT FROM o.device_id
        LIMIT %(limit)s""",
    # A serial is reserved at most once, and only while it is in stock.
    "reservations": """
        SELECT d.serial, 'reserved while at ' || l.name
        FROM inventory_reservation r JOIN inventory_device d ON d.id = r.device_id
        JOIN inventory_location l ON l.id = d.location_id
        WHERE r.state = 'active' AND l.kind IN ('supplier', 'scrap', 'adjustment', 'customer')
        LIMIT %(limit)s""",
}

SUBJECT = {"items_balance": "item", "stock_matches_moves": "stock", "no_negative_real": "stock",
           "serials_in_one_place": "serial", "serial_stock_counts_devices": "stock", "reversals": "move",
           "reservations": "serial"}


def check_inventory() -> dict:
    """Verify every invariant of the warehouse; the structure `tarifa inventory check` prints:
    {"ok", "items", "locations", "devices", "moves", "checks": {name: "ok" | "n problems"},
     "problems": [{"check", <subject>, "detail"}]}. Read-only, in one snapshot."""
    problems, checks = [], {}
    with connection.cursor() as cursor:
        own = not connection.in_atomic_block
        if own:
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            counts = {}
            for name, table in (("items", "inventory_item"), ("locations", "inventory_location"),
                                ("devices", "inventory_device"), ("moves", "inventory_move")):
                cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (fixed names)
                counts[name] = cursor.fetchone()[0]
            for name, sql in CHECKS.items():
                cursor.execute(sql, {"limit": PROBLEM_LIMIT})
                found = cursor.fetchall()
                checks[name] = "ok" if not found else f"{len(found)} problems"
                problems += [{"check": name, SUBJECT[name]: subject, "detail": detail} for subject, detail in found]
        finally:
            if own:
                cursor.execute("COMMIT")
    return {"ok": not problems, **counts, "checks": checks, "problems": problems}


# --- reads ---------------------------------------------------------------------------------------

def on_hand(location, item) -> Decimal:
    return Stock.objects.filter(location=location, item=item).values_list("quantity", flat=True).first() or Decimal(0)


def stock_at(location) -> QuerySet:
    """On-hand rows of a location that are not zero, with their value at cost."""
    return (Stock.objects.filter(location=location).exclude(quantity=0).select_related("item")
            .order_by("item__name"))


def devices_at(location) -> QuerySet:
    return Device.objects.filter(location=location).select_related("item").order_by("item__name", "serial")


def devices_of_customer(customer) -> QuerySet:
    return (Device.objects.filter(location__kind=Location.Kind.CUSTOMER, location__customer=customer)
            .select_related("item", "location").order_by("serial"))


def devices_of_subscription(number: str) -> QuerySet:
    """Devices at a customer's premises installed for the subscription `number` (moves and devices
    refer to a subscription by its number, the identifier people read and type)."""
    return (Device.objects.filter(subscription_ref=number, location__kind=Location.Kind.CUSTOMER)
            .select_related("item", "location").order_by("serial"))


def history(device) -> QuerySet:
    """Everything that happened to a serial, from receipt to scrap, oldest first."""
    return device.moves.select_related("from_location", "to_location").order_by("id")


def active_reservation(device):
    return Reservation.objects.filter(device=device, state=Reservation.State.ACTIVE).first()


def technician_stock(user) -> QuerySet:
    return Stock.objects.filter(location__kind=Location.Kind.TECHNICIAN, location__technician=user).exclude(
        quantity=0).select_related("item", "location")


def stock_by_location() -> QuerySet:
    """On-hand per real location and item, with value at cost (serials: their own cost)."""
    return (Stock.objects.exclude(location__kind__in=Location.VIRTUAL).exclude(quantity=0)
            .select_related("location", "item").order_by("location__kind", "location__name", "item__name"))


def value_at_cost() -> list[dict]:
    """Stock value at cost per real location and currency: serials at their receipt cost,
    quantities at the item's cost."""
    rows = {}
    serial_values = (Device.objects.exclude(location__kind__in=[*Location.VIRTUAL, Location.Kind.CUSTOMER])
                     .values("location__name", "item__currency").annotate(value=Sum("cost")))
    for r in serial_values:
        key = (r["location__name"], r["item__currency"])
        rows[key] = rows.get(key, Decimal(0)) + r["value"]
    qty = (Stock.objects.filter(item__tracking=Item.Tracking.QUANTITY)
           .exclude(location__kind__in=[*Location.VIRTUAL, Location.Kind.CUSTOMER])
           .values("location__name", "item__currency")
           .annotate(value=Sum(ExpressionWrapper(F("quantity") * F("item__cost"),
                                                 output_field=DecimalField(max_digits=30, decimal_places=9)))))
    for r in qty:
        key = (r["location__name"], r["item__currency"])
        rows[key] = rows.get(key, Decimal(0)) + (r["value"] or Decimal(0))
    return [{"location": loc, "currency": cur, "value": value} for (loc, cur), value in sorted(rows.items())]


def movements(date_from, date_to) -> QuerySet:
    """Moves posted in [date_from, date_to] (dates), per kind and item: count and quantity."""
    return (Move.objects.filter(created_at__date__gte=date_from, created_at__date__lte=date_to)
            .values("kind", "item__name").annotate(quantity=Sum("quantity")).order_by("kind", "item__name"))


def accountability() -> list[dict]:
    """Per technician: what they hold now, and what they installed, returned and wrote off."""
    result = []
    for location in Location.objects.filter(kind=Location.Kind.TECHNICIAN).select_related("technician"):
        held = Stock.objects.filter(location=location).exclude(quantity=0).select_related("item")
        out = Move.objects.filter(from_location=location)
        result.append({
            "location": location, "technician": location.technician, "held": list(held),
            "issued": Move.objects.filter(to_location=location, kind=Move.Kind.ISSUE).count(),
            "installed": out.filter(kind=Move.Kind.INSTALL).count(),
            "written_off": out.filter(kind=Move.Kind.WRITE_OFF).count(),
            "returned": out.filter(Q(kind=Move.Kind.TRANSFER) | Q(kind=Move.Kind.RETURN)).count(),
        })
    return result
