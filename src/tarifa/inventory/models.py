"""The warehouse of customer devices: stock as double-entry moves between locations.

- `Location`: where goods are — warehouses, technicians (a van or a person), customer premises —
  and virtual ones (supplier, scrap/loss, inventory adjustment) whose on-hand may be negative:
  every receipt makes the supplier's on-hand go down by what the warehouse's goes up.
- `Item`: an article (model, vendor, kind), tracked by serial (one `Device` per serial) or by
  quantity (pieces, metres).
- `Move`: every change of stock is one move of a quantity (or one serial) from a location to
  another. Posted once, never edited (a trigger refuses UPDATE and DELETE); a correction is a
  reverse move (`reverses`, at most once).
- `Stock`: on-hand per (location, item), updated in the same transaction as the moves (like the
  ledger's account totals) and verified against them by `tarifa inventory check`.
- `Reservation`: a quantity or one serial held for a ticket or an order; a serial is reserved once.
- `Stocktake`: counted against on-hand; posting it books adjustment moves with the reason.

Writes go through `services.py` only. Tickets and subscriptions live above this app: moves refer
to them by plain ids (`ticket_ref`, `subscription_ref`).
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.kernel.ids import uuid7
from tarifa.kernel.models import Archivable, BusinessRecord, local_branch_code
from tarifa.kernel.money import CURRENCY_CHOICES


def money_field(verbose_name, **kwargs):
    return models.DecimalField(verbose_name, max_digits=20, decimal_places=6, **kwargs)


def quantity_field(verbose_name, **kwargs):
    return models.DecimalField(verbose_name, max_digits=14, decimal_places=3, **kwargs)


class Location(BusinessRecord, Archivable):
    class Kind(models.TextChoices):
        WAREHOUSE = "warehouse", _("Warehouse")
        TECHNICIAN = "technician", _("Technician")
        CUSTOMER = "customer", _("Customer premises")
        TRANSIT = "transit", _("In transit")
        SUPPLIER = "supplier", _("Supplier (virtual)")
        SCRAP = "scrap", _("Scrap and loss (virtual)")
        ADJUSTMENT = "adjustment", _("Inventory adjustment (virtual)")

    VIRTUAL = ("supplier", "scrap", "adjustment")

    code = models.CharField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    technician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="stock_locations", verbose_name=_("technician"))
    customer = models.ForeignKey("crm.Customer", on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="stock_locations", verbose_name=_("customer"))
    address = models.ForeignKey("crm.Address", on_delete=models.PROTECT, null=True, blank=True,
                                related_name="stock_locations", verbose_name=_("address"))
    note = models.TextField(_("note"), blank=True)

    class Meta:
        verbose_name = _("stock location")
        verbose_name_plural = _("stock locations")
        ordering = ["kind", "name"]
        constraints = [
            models.CheckConstraint(condition=~Q(kind="technician") | Q(technician__isnull=False),
                                   name="inventory_location_technician_has_user"),
            models.CheckConstraint(condition=~Q(kind="customer") | Q(customer__isnull=False),
                                   name="inventory_location_premises_has_customer"),
            models.UniqueConstraint(fields=["technician"], condition=Q(kind="technician", archived_at__isnull=True),
                                    name="inventory_location_one_per_technician"),
            models.UniqueConstraint(fields=["customer", "address"], condition=Q(kind="customer"),
                                    name="inventory_location_one_per_premises", nulls_distinct=False),
        ]

    def __str__(self):
        return self.name

    @property
    def is_virtual(self) -> bool:
        return self.kind in self.VIRTUAL


class Item(BusinessRecord, Archivable):
    """An article: a device model tracked by serial, or goods counted by quantity."""

    class Kind(models.TextChoices):
        ROUTER = "router", _("Router")
        ONT = "ont", _("ONT")
        STB = "stb", _("Set-top box")
        SIM = "sim", _("SIM card")
        CABLE = "cable", _("Cable")
        OTHER = "other", _("Other")

    class Tracking(models.TextChoices):
        SERIAL = "serial", _("By serial")
        QUANTITY = "quantity", _("By quantity")

    class Unit(models.TextChoices):
        PIECE = "piece", _("pieces")
        METRE = "metre", _("metres")

    code = models.CharField(_("code"), max_length=40, unique=True, help_text=_("Article code (SKU)."))
    name = models.CharField(_("model"), max_length=200)
    vendor = models.CharField(_("vendor"), max_length=100, blank=True)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    tracking = models.CharField(_("tracking"), max_length=8, choices=Tracking.choices, default=Tracking.SERIAL)
    unit = models.CharField(_("unit"), max_length=8, choices=Unit.choices, default=Unit.PIECE)
    cost = money_field(_("purchase cost"), default=Decimal(0), help_text=_("Per unit; a receipt may give its own."))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    catalog_ref = models.CharField(_("catalog reference"), max_length=64, blank=True,
                                   help_text=_("Code of the catalog's fee for sale or rent, if any."))

    class Meta:
        verbose_name = _("item")
        verbose_name_plural = _("items")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(cost__gte=0), name="inventory_item_cost_not_negative"),
            models.CheckConstraint(condition=Q(tracking="quantity") | Q(unit="piece"),
                                   name="inventory_item_serials_are_pieces"),
        ]

    def __str__(self):
        return f"{self.vendor} {self.name}".strip()

    @property
    def by_serial(self) -> bool:
        return self.tracking == self.Tracking.SERIAL


class Device(BusinessRecord):
    """One serial-tracked unit. `location` is where its last move took it (kept with the moves)."""

    class Condition(models.TextChoices):
        NEW = "new", _("New")
        USED = "used", _("Used")
        BROKEN = "broken", _("Broken")

    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="devices", verbose_name=_("item"))
    serial = models.CharField(_("serial"), max_length=64, unique=True)
    mac = models.CharField(_("MAC"), max_length=17, blank=True)
    iccid = models.CharField(_("ICCID"), max_length=22, blank=True)
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="devices",
                                 verbose_name=_("location"), editable=False)
    condition = models.CharField(_("condition"), max_length=8, choices=Condition.choices, default=Condition.NEW,
                                 editable=False)
    cost = money_field(_("purchase cost"), default=Decimal(0), editable=False)
    subscription_ref = models.CharField(_("subscription"), max_length=64, blank=True, editable=False)

    class Meta:
        verbose_name = _("device")
        verbose_name_plural = _("devices")
        ordering = ["serial"]
        default_permissions = ("view", "change")

    def __str__(self):
        return self.serial

    @property
    def currency(self):
        return self.item.currency


class Move(models.Model):
    """One stock movement, posted once and never changed."""

    class Kind(models.TextChoices):
        RECEIPT = "receipt", _("Receipt")
        TRANSFER = "transfer", _("Transfer")
        ISSUE = "issue", _("Issue to technician")
        INSTALL = "install", _("Install")
        RETURN = "return", _("Return")
        WRITE_OFF = "write_off", _("Write-off")
        ADJUSTMENT = "adjustment", _("Adjustment")
        REVERSAL = "reversal", _("Reversal")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    branch = models.CharField(_("branch"), max_length=16, default=local_branch_code, editable=False)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="moves", verbose_name=_("item"))
    device = models.ForeignKey(Device, on_delete=models.PROTECT, null=True, blank=True, related_name="moves",
                               verbose_name=_("device"))
    quantity = quantity_field(_("quantity"))
    from_location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="moves_out",
                                      verbose_name=_("from"))
    to_location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="moves_in",
                                    verbose_name=_("to"))
    unit_cost = money_field(_("unit cost"), default=Decimal(0))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    condition = models.CharField(_("condition"), max_length=8, choices=Device.Condition.choices, blank=True)
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    ticket_ref = models.CharField(_("ticket"), max_length=64, blank=True)
    subscription_ref = models.CharField(_("subscription"), max_length=64, blank=True)
    batch = models.UUIDField(_("batch"), null=True, blank=True)
    reverses = models.OneToOneField("self", on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="reversal", verbose_name=_("reverses"))
    actor = models.CharField(_("actor"), max_length=150, blank=True)
    created_at = models.DateTimeField(_("posted"), default=now)

    class Meta:
        verbose_name = _("stock move")
        verbose_name_plural = _("stock moves")
        ordering = ["-id"]
        default_permissions = ("view", "add")
        permissions = [("reverse_move", _("Can reverse stock moves")),
                       ("check_inventory", _("Can run the inventory check"))]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="inventory_move_quantity_positive"),
            models.CheckConstraint(condition=Q(device__isnull=True) | Q(quantity=1),
                                   name="inventory_move_serial_is_one"),
            models.CheckConstraint(condition=~Q(from_location=models.F("to_location")),
                                   name="inventory_move_distinct_locations"),
        ]
        indexes = [models.Index(fields=["ticket_ref"], name="inventory_move_ticket"),
                   models.Index(fields=["subscription_ref"], name="inventory_move_subscription"),
                   models.Index(fields=["created_at"], name="inventory_move_created")]

    def __str__(self):
        what = self.device.serial if self.device_id else f"{self.quantity.normalize():f} × {self.item}"
        return f"{self.get_kind_display()} {what}"


class Stock(models.Model):
    """On-hand of an item at a location: the sum of its moves in minus out (kept with them)."""

    id = models.BigAutoField(primary_key=True)
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="stock",
                                 verbose_name=_("location"))
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="stock", verbose_name=_("item"))
    virtual = models.BooleanField(_("virtual"), default=False)
    quantity = quantity_field(_("on hand"), default=Decimal(0))

    class Meta:
        verbose_name = _("stock")
        verbose_name_plural = _("stock")
        ordering = ["location", "item"]
        default_permissions = ("view",)
        constraints = [
            models.UniqueConstraint(fields=["location", "item"], name="inventory_stock_location_item"),
            models.CheckConstraint(condition=Q(virtual=True) | Q(quantity__gte=0),
                                   name="inventory_stock_real_not_negative"),
        ]

    def __str__(self):
        return f"{self.item} @ {self.location}: {self.quantity.normalize():f}"


class Reservation(BusinessRecord):
    """A serial or a quantity held at a location for a ticket or an order, until consumed or released."""

    class State(models.TextChoices):
        ACTIVE = "active", _("Active")
        CONSUMED = "consumed", _("Consumed")
        RELEASED = "released", _("Released")

    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="reservations", verbose_name=_("item"))
    device = models.ForeignKey(Device, on_delete=models.PROTECT, null=True, blank=True,
                               related_name="reservations", verbose_name=_("device"))
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="reservations",
                                 verbose_name=_("location"))
    quantity = quantity_field(_("quantity"), default=Decimal(1))
    state = models.CharField(_("state"), max_length=8, choices=State.choices, default=State.ACTIVE, editable=False)
    reference = models.CharField(_("for"), max_length=100, help_text=_("The ticket or order, e.g. ticket:T-12."))
    note = models.CharField(_("note"), max_length=500, blank=True)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True, editable=False)
    actor = models.CharField(_("actor"), max_length=150, blank=True, editable=False)

    class Meta:
        verbose_name = _("reservation")
        verbose_name_plural = _("reservations")
        ordering = ["-created_at"]
        default_permissions = ("view", "add", "change")
        constraints = [
            models.UniqueConstraint(fields=["device"], condition=Q(state="active"),
                                    name="inventory_reservation_serial_once"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="inventory_reservation_quantity_positive"),
        ]

    def __str__(self):
        what = self.device.serial if self.device_id else f"{self.quantity.normalize():f} × {self.item}"
        return f"{what} for {self.reference}"


class Stocktake(BusinessRecord):
    """A count of one location: lines counted by the operator; posting books the differences."""

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        POSTED = "posted", _("Posted")

    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="stocktakes",
                                 verbose_name=_("location"))
    state = models.CharField(_("state"), max_length=8, choices=State.choices, default=State.OPEN, editable=False)
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    posted_at = models.DateTimeField(_("posted"), null=True, blank=True, editable=False)
    actor = models.CharField(_("actor"), max_length=150, blank=True, editable=False)

    class Meta:
        verbose_name = _("stocktake")
        verbose_name_plural = _("stocktakes")
        ordering = ["-created_at"]
        default_permissions = ("view", "add")
        permissions = [("post_stocktake", _("Can post stocktakes"))]

    def __str__(self):
        return f"{self.location} {self.created_at:%Y-%m-%d}"


class StocktakeLine(models.Model):
    """What was counted of one item: a quantity, or for serial items the serials seen."""

    id = models.BigAutoField(primary_key=True)
    stocktake = models.ForeignKey(Stocktake, on_delete=models.CASCADE, related_name="lines",
                                  verbose_name=_("stocktake"))
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="+", verbose_name=_("item"))
    counted = quantity_field(_("counted"))
    serials = models.JSONField(_("serials seen"), default=list, blank=True)
    expected = quantity_field(_("on hand when posted"), null=True, blank=True)

    class Meta:
        verbose_name = _("stocktake line")
        verbose_name_plural = _("stocktake lines")
        constraints = [models.UniqueConstraint(fields=["stocktake", "item"], name="inventory_stocktake_line_item")]

    def __str__(self):
        return f"{self.item}: {self.counted.normalize():f}"
