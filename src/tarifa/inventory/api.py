"""REST API of the warehouse.

/inventory/items/, /inventory/locations/ (with on-hand), /inventory/moves/ (POST one move —
{"serial"} or {"item", "quantity"} with "from_location", "to_location", "reason" — or a batch
{"lines": [...]}; `Idempotency-Key`; a move the stock does not allow is a 409 with the reason),
/inventory/receipts/ (POST a goods receipt: serials or a quantity, all or nothing),
/inventory/devices/ (by serial, with history), /inventory/reservations/, /inventory/stocktakes/,
/inventory/check/ (the invariants, as `tarifa inventory check` prints them).
Locations and items are named by id or code, devices by serial.
"""

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.web.api import AmountField, RecordViewSet, StrictSerializer, register_endpoint, router
from tarifa.web.idempotency import idempotent

from . import selectors, services
from .models import Device, Item, Location, Move, Reservation, Stock, Stocktake, StocktakeLine


class CodeOrIdField(serializers.SlugRelatedField):
    """A location or an item named by its code or its id."""

    def to_internal_value(self, data):
        if isinstance(data, str) and services.as_uuid(data) is not None:
            found = self.get_queryset().filter(pk=data).first()
            if found is not None:
                return found
        return super().to_internal_value(data)


def location_field(**kw):
    return CodeOrIdField(slug_field="code", queryset=Location.objects.all(), **kw)


def item_field(**kw):
    return CodeOrIdField(slug_field="code", queryset=Item.objects.all(), **kw)


QTY = {"max_digits": 14, "decimal_places": 3}


# --- items and locations --------------------------------------------------------------------

class InventoryItemSerializer(serializers.ModelSerializer):
    cost = AmountField(read_only=True)

    class Meta:
        model = Item
        fields = ["id", "code", "name", "vendor", "kind", "tracking", "unit", "cost", "currency", "catalog_ref",
                  "archived_at", "created_at"]
        read_only_fields = fields


class InventoryItemWriteSerializer(StrictSerializer):
    code = serializers.CharField(max_length=40)
    name = serializers.CharField(max_length=200)
    vendor = serializers.CharField(max_length=100, required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Item.Kind.choices)
    tracking = serializers.ChoiceField(choices=Item.Tracking.choices, required=False)
    unit = serializers.ChoiceField(choices=Item.Unit.choices, required=False)
    cost = AmountField(non_negative=True, required=False)
    currency = serializers.CharField(max_length=3)
    catalog_ref = serializers.CharField(max_length=64, required=False, allow_blank=True)


class InventoryItemUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    vendor = serializers.CharField(max_length=100, required=False, allow_blank=True)
    cost = AmountField(non_negative=True, required=False)
    catalog_ref = serializers.CharField(max_length=64, required=False, allow_blank=True)


class ItemViewSet(RecordViewSet):
    queryset = Item.objects.order_by("code")
    serializer_class = InventoryItemSerializer
    filterset_fields = ["kind", "tracking", "currency", "code"]
    search_fields = ["code", "name", "vendor"]

    def get_serializer_class(self):
        if self.action == "create":
            return InventoryItemWriteSerializer
        if self.action in ("update", "partial_update"):
            return InventoryItemUpdateSerializer
        return InventoryItemSerializer

    def create_service(*, actor, **data):
        return services.create_item(actor=actor, **data)

    def update_service(item, *, actor, **data):
        return services.update_item(item, actor=actor, **{"name": item.name, **data})

    def archive_service(item, *, actor, reason):
        return services.archive_item(item, actor=actor, reason=reason)


class InventoryOnHandSerializer(serializers.ModelSerializer):
    item_code = serializers.CharField(source="item.code", read_only=True)
    quantity = serializers.DecimalField(read_only=True, **QTY)

    class Meta:
        model = Stock
        fields = ["item", "item_code", "quantity"]
        read_only_fields = fields


class InventoryLocationSerializer(serializers.ModelSerializer):
    on_hand = serializers.SerializerMethodField()

    class Meta:
        model = Location
        fields = ["id", "code", "name", "kind", "technician", "customer", "address", "note", "on_hand",
                  "archived_at", "created_at"]
        read_only_fields = fields
        nested_parts = ["on_hand"]

    @extend_schema_field(InventoryOnHandSerializer(many=True))
    def get_on_hand(self, location) -> list[dict]:
        return InventoryOnHandSerializer(selectors.stock_at(location), many=True).data


class InventoryLocationWriteSerializer(StrictSerializer):
    code = serializers.CharField(max_length=40)
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=Location.Kind.choices)
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class InventoryLocationUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class LocationViewSet(RecordViewSet):
    """Locations: warehouses, technicians, customer premises, virtual ones; each with its on-hand.
    A technician's stock is made for the user when first needed; premises when first installed at."""

    queryset = Location.objects.select_related("technician", "customer").order_by("kind", "name")
    serializer_class = InventoryLocationSerializer
    filterset_fields = ["kind", "code", "customer", "technician"]
    search_fields = ["code", "name"]

    def get_serializer_class(self):
        if self.action == "create":
            return InventoryLocationWriteSerializer
        if self.action in ("update", "partial_update"):
            return InventoryLocationUpdateSerializer
        return InventoryLocationSerializer

    def create_service(*, actor, code, name, kind, note=""):
        if kind in (Location.Kind.TECHNICIAN, Location.Kind.CUSTOMER):
            from tarifa.kernel.errors import ValidationFailed

            raise ValidationFailed("Technicians' stocks and customer premises are made when first needed.",
                                   code="kind_not_created_here", fields={"kind": ["Warehouse or virtual only."]})
        return services.create_location(actor=actor, code=code, name=name, kind=kind, note=note)

    def update_service(location, *, actor, **data):
        return services.update_location(location, actor=actor, **{"name": location.name, **data})

    def archive_service(location, *, actor, reason):
        return services.archive_location(location, actor=actor, reason=reason)


# --- moves ------------------------------------------------------------------------------------

class InventoryMoveSerializer(serializers.ModelSerializer):
    condition = serializers.CharField(read_only=True, help_text="new, used, broken, or empty: not a device move.")
    item_code = serializers.CharField(source="item.code", read_only=True)
    serial = serializers.CharField(source="device.serial", read_only=True, default=None, allow_null=True)
    from_code = serializers.CharField(source="from_location.code", read_only=True)
    to_code = serializers.CharField(source="to_location.code", read_only=True)
    quantity = serializers.DecimalField(read_only=True, **QTY)
    unit_cost = AmountField(read_only=True)

    class Meta:
        model = Move
        fields = ["id", "kind", "item", "item_code", "device", "serial", "quantity", "from_location", "from_code",
                  "to_location", "to_code", "unit_cost", "currency", "condition", "reason", "ticket_ref",
                  "subscription_ref", "batch", "reverses", "actor", "created_at"]
        read_only_fields = fields


class InventoryMoveLineSerializer(StrictSerializer):
    serial = serializers.CharField(max_length=64, required=False)
    item = item_field(required=False)
    quantity = AmountField(required=False, positive=True, places=3)
    from_location = location_field()
    to_location = location_field()

    def validate(self, data):
        if not data.get("serial") and not data.get("item"):
            raise serializers.ValidationError({"serial": ["Name a serial, or an item and a quantity."]})
        return data


class InventoryMoveCreateSerializer(StrictSerializer):
    serial = serializers.CharField(max_length=64, required=False)
    item = item_field(required=False)
    quantity = AmountField(required=False, positive=True, places=3)
    from_location = location_field(required=False)
    to_location = location_field(required=False)
    lines = InventoryMoveLineSerializer(many=True, required=False, max_length=services.MAX_BATCH)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=[c for c in Move.Kind.choices if c[0] != "reversal"], required=False)
    condition = serializers.ChoiceField(choices=Device.Condition.choices, required=False)
    ticket_ref = serializers.CharField(max_length=64, required=False, allow_blank=True)
    subscription_ref = serializers.CharField(max_length=64, required=False, allow_blank=True)

    class Meta:
        nested_parts = ["lines"]

    def validate(self, data):
        if not data.get("lines"):
            errors = {}
            for name in ("from_location", "to_location"):
                if name not in data:
                    errors[name] = ["Required without lines."]
            if not data.get("serial") and not data.get("item"):
                errors["serial"] = ["Name a serial, or an item and a quantity (or give lines)."]
            if errors:
                raise serializers.ValidationError(errors)
        return data


class InventoryReverseSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500)


class MoveViewSet(RecordViewSet):
    """Stock moves, newest first (never changed; a correction is a reversal). Filter by kind, item,
    device, either location, ticket_ref, subscription_ref, batch."""

    queryset = Move.objects.select_related("item", "device", "from_location", "to_location").order_by("-id")
    serializer_class = InventoryMoveSerializer
    filterset_fields = ["kind", "item", "device", "from_location", "to_location", "ticket_ref", "subscription_ref",
                        "batch"]

    @classmethod
    def unsupported_actions(cls):
        return super().unsupported_actions() - {"create"}

    @extend_schema(request=InventoryMoveCreateSerializer, responses={201: InventoryMoveSerializer(many=True)})
    @idempotent
    def create(self, request, *args, **kwargs):
        """Post one move or a batch (`lines`): all or nothing. The kind follows from the locations
        (a `kind` given must match); 409 with the reason when the stock does not allow it."""
        body = InventoryMoveCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        common = {k: data.pop(k) for k in ("reason", "kind", "condition", "ticket_ref", "subscription_ref")
                  if k in data}
        lines = data.pop("lines", None)
        if lines:
            moves = services.move_batch(actor=request.user, lines=[dict(li) for li in lines], **common)
        else:
            moves = [services.move(actor=request.user, **data, **common)]
        return Response(InventoryMoveSerializer(moves, many=True).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=InventoryReverseSerializer, responses={201: InventoryMoveSerializer})
    @action(detail=True, methods=["post"], required_permission="inventory.reverse_move")
    @idempotent
    def reverse(self, request, pk=None):
        """The mirror move, at most once; 409 when the stock has moved on since."""
        body = InventoryReverseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        move = services.reverse_move(self.get_object(), actor=request.user, reason=body.validated_data["reason"])
        return Response(InventoryMoveSerializer(move).data, status=status.HTTP_201_CREATED)


class InventoryReceiptSerializer(StrictSerializer):
    warehouse = location_field()
    item = item_field()
    serials = serializers.ListField(child=serializers.CharField(max_length=200, allow_blank=True), required=False,
                                    max_length=services.MAX_BATCH)
    quantity = AmountField(required=False, positive=True, places=3)
    unit_cost = AmountField(non_negative=True, required=False)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class ReceiptView(APIView):
    """A goods receipt from the supplier into a warehouse at cost: `serials` (all or nothing — a
    duplicate in the batch or a serial already known refuses it, 409 naming each line) or a `quantity`."""

    required_permission = "inventory.add_move"

    @extend_schema(request=InventoryReceiptSerializer, responses={201: InventoryMoveSerializer(many=True)})
    @idempotent
    def post(self, request):
        body = InventoryReceiptSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        moves = services.receive(actor=request.user, **body.validated_data)
        return Response(InventoryMoveSerializer(moves, many=True).data, status=status.HTTP_201_CREATED)


# --- devices ------------------------------------------------------------------------------------

class InventoryHistorySerializer(serializers.ModelSerializer):
    condition = serializers.CharField(read_only=True, help_text="new, used, broken, or empty: not a device move.")
    from_code = serializers.CharField(source="from_location.code", read_only=True)
    to_code = serializers.CharField(source="to_location.code", read_only=True)

    class Meta:
        model = Move
        fields = ["kind", "from_code", "to_code", "condition", "reason", "ticket_ref", "subscription_ref", "actor",
                  "created_at"]
        read_only_fields = fields


class InventoryDeviceSerializer(serializers.ModelSerializer):
    condition = serializers.CharField(read_only=True, help_text="new, used, broken, or empty: not a device move.")
    item_code = serializers.CharField(source="item.code", read_only=True)
    location_code = serializers.CharField(source="location.code", read_only=True)
    location_kind = serializers.CharField(source="location.kind", read_only=True)
    cost = AmountField(read_only=True)
    reserved_for = serializers.SerializerMethodField()
    history = serializers.SerializerMethodField()

    class Meta:
        model = Device
        fields = ["id", "serial", "mac", "iccid", "item", "item_code", "location", "location_code", "location_kind",
                  "condition", "cost", "subscription_ref", "reserved_for", "history", "created_at"]
        read_only_fields = fields
        nested_parts = ["history"]

    def get_reserved_for(self, device) -> str | None:
        held = selectors.active_reservation(device)
        return held.reference if held else None

    @extend_schema_field(InventoryHistorySerializer(many=True))
    def get_history(self, device) -> list[dict]:
        return InventoryHistorySerializer(selectors.history(device), many=True).data


class DeviceViewSet(RecordViewSet):
    """Devices (serial-tracked units) with where they are and their whole history.
    `GET /devices/?serial=SN123` finds one by serial."""

    queryset = Device.objects.select_related("item", "location").order_by("serial")
    serializer_class = InventoryDeviceSerializer
    filterset_fields = ["item", "location", "condition", "serial", "subscription_ref"]
    search_fields = ["serial", "mac", "iccid"]


# --- reservations and stocktakes ----------------------------------------------------------------

class InventoryReservationSerializer(serializers.ModelSerializer):
    serial = serializers.CharField(source="device.serial", read_only=True, default=None, allow_null=True)
    quantity = serializers.DecimalField(read_only=True, **QTY)

    class Meta:
        model = Reservation
        fields = ["id", "item", "device", "serial", "location", "quantity", "state", "reference", "note", "actor",
                  "created_at", "resolved_at"]
        read_only_fields = fields


class InventoryReservationCreateSerializer(StrictSerializer):
    reference = serializers.CharField(max_length=100)
    serial = serializers.CharField(max_length=64, required=False)
    item = item_field(required=False)
    location = location_field(required=False)
    quantity = AmountField(required=False, positive=True, places=3)
    note = serializers.CharField(max_length=500, required=False, allow_blank=True)


class InventoryReleaseSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class ReservationViewSet(RecordViewSet):
    """Reservations for tickets and orders: a serial (once) or a quantity at a location.
    POST release/ gives one up."""

    queryset = Reservation.objects.select_related("device").order_by("-created_at")
    serializer_class = InventoryReservationSerializer
    filterset_fields = ["state", "item", "location", "reference", "device"]

    def get_serializer_class(self):
        return InventoryReservationCreateSerializer if self.action == "create" else InventoryReservationSerializer

    def get_serializer_class_for_read(self):
        return InventoryReservationSerializer

    def create_service(*, actor, reference, **data):
        return services.reserve(actor=actor, reference=reference, **data)

    @extend_schema(request=InventoryReleaseSerializer, responses={200: InventoryReservationSerializer})
    @action(detail=True, methods=["post"], required_permission="inventory.change_reservation")
    def release(self, request, pk=None):
        body = InventoryReleaseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reservation = services.release(self.get_object(), actor=request.user, **body.validated_data)
        return Response(InventoryReservationSerializer(reservation).data)


class InventoryStocktakeLineSerializer(serializers.ModelSerializer):
    item_code = serializers.CharField(source="item.code", read_only=True)
    counted = serializers.DecimalField(read_only=True, **QTY)
    expected = serializers.DecimalField(read_only=True, **QTY)

    class Meta:
        model = StocktakeLine
        fields = ["item", "item_code", "counted", "serials", "expected"]
        read_only_fields = fields


class InventoryStocktakeSerializer(serializers.ModelSerializer):
    lines = InventoryStocktakeLineSerializer(many=True, read_only=True)

    class Meta:
        model = Stocktake
        fields = ["id", "location", "state", "reason", "lines", "actor", "created_at", "posted_at"]
        read_only_fields = fields
        nested_parts = ["lines"]


class InventoryStocktakeCreateSerializer(StrictSerializer):
    location = location_field()
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class InventoryCountSerializer(StrictSerializer):
    item = item_field()
    counted = AmountField(required=False, non_negative=True, places=3)
    serials = serializers.ListField(child=serializers.CharField(max_length=64), required=False,
                                    max_length=services.MAX_BATCH)


class StocktakeViewSet(RecordViewSet):
    """Stocktakes: open one for a location, POST count/ per item (a quantity, or the serials seen),
    then post/ to book the differences as adjustment moves."""

    queryset = Stocktake.objects.select_related("location").prefetch_related("lines__item").order_by("-created_at")
    serializer_class = InventoryStocktakeSerializer
    filterset_fields = ["location", "state"]

    def get_serializer_class(self):
        return InventoryStocktakeCreateSerializer if self.action == "create" else InventoryStocktakeSerializer

    def get_serializer_class_for_read(self):
        return InventoryStocktakeSerializer

    def create_service(*, actor, location, reason=""):
        return services.open_stocktake(actor=actor, location=location, reason=reason)

    @extend_schema(request=InventoryCountSerializer, responses={200: InventoryStocktakeSerializer})
    @action(detail=True, methods=["post"], required_permission="inventory.add_stocktake")
    def count(self, request, pk=None):
        body = InventoryCountSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        take = self.get_object()
        services.count(take, actor=request.user, **body.validated_data)
        return Response(InventoryStocktakeSerializer(Stocktake.objects.get(pk=take.pk)).data)

    @extend_schema(request=InventoryReleaseSerializer, responses={200: InventoryStocktakeSerializer})
    @action(detail=True, methods=["post"], required_permission="inventory.post_stocktake")
    def post(self, request, pk=None):
        body = InventoryReleaseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        take = self.get_object()
        services.post_stocktake(take, actor=request.user, **body.validated_data)
        return Response(InventoryStocktakeSerializer(Stocktake.objects.get(pk=take.pk)).data)


class CheckView(APIView):
    """Every invariant of the warehouse, as `tarifa inventory check` prints it."""

    required_permission = "inventory.check_inventory"

    @extend_schema(request=None, responses={200: {"type": "object"}})
    def get(self, request):
        return Response(selectors.check_inventory())


def _register():
    router.register("inventory/items", ItemViewSet, basename="inventory-item")
    router.register("inventory/locations", LocationViewSet, basename="inventory-location")
    router.register("inventory/moves", MoveViewSet, basename="inventory-move")
    router.register("inventory/devices", DeviceViewSet, basename="inventory-device")
    router.register("inventory/reservations", ReservationViewSet, basename="inventory-reservation")
    router.register("inventory/stocktakes", StocktakeViewSet, basename="inventory-stocktake")
    register_endpoint("inventory/receipts/", ReceiptView.as_view(), "inventory-receipt", "inventory.add_move")
    register_endpoint("inventory/check/", CheckView.as_view(), "inventory-check", "inventory.check_inventory")


_register()
