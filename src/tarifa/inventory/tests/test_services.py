from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from tarifa.inventory import selectors, services
from tarifa.inventory.models import Device, Location, Move, Reservation, Stock, Stocktake
from tarifa.kernel.errors import Conflict, ValidationFailed

pytestmark = pytest.mark.django_db


def test_device_life_from_receipt_to_scrap(stock):
    moves = services.receive(actor="system", warehouse=stock.warehouse, item=stock.router,
                             serials=["SN1", "SN2"], unit_cost=Decimal("42.50"))
    assert [m.kind for m in moves] == ["receipt", "receipt"]
    assert selectors.on_hand(stock.warehouse, stock.router) == 2
    services.issue(actor="system", serial="SN1", warehouse=stock.warehouse, technician_location=stock.van)
    install = services.install(actor="system", serial="SN1", source=stock.van, customer=stock.customer,
                               subscription_ref="sub-1", ticket_ref="T-1")
    device = Device.objects.get(serial="SN1")
    assert device.location.kind == Location.Kind.CUSTOMER and device.subscription_ref == "sub-1"
    assert install.kind == "install" and install.ticket_ref == "T-1"
    assert list(selectors.devices_of_customer(stock.customer)) == [device]
    services.return_device(actor="system", serial="SN1", to_location=stock.warehouse, condition="broken")
    device.refresh_from_db()
    assert device.condition == "broken" and device.subscription_ref == ""
    services.write_off(actor="system", from_location=stock.warehouse, serial="SN1", reason="dead on return")
    kinds = [m.kind for m in selectors.history(Device.objects.get(serial="SN1"))]
    assert kinds == ["receipt", "issue", "install", "return", "write_off"]
    assert selectors.on_hand(stock.warehouse, stock.router) == 1
    assert selectors.on_hand(services.virtual_location("supplier"), stock.router) == -2


def test_batch_with_a_duplicate_serial_writes_nothing(stock):
    services.receive(actor="system", warehouse=stock.warehouse, item=stock.router, serials=["OLD1"])
    with pytest.raises(Conflict) as exc:
        services.receive(actor="system", warehouse=stock.warehouse, item=stock.router,
                         serials=["A1", "A2", "A1", "OLD1"])
    assert exc.value.code == "serials_refused"
    problems = exc.value.fields["serials"]
    assert "line 3: A1 is a duplicate of line 1" in problems
    assert any(p.startswith("line 4: OLD1 is already known") for p in problems)
    assert not Device.objects.filter(serial__in=["A1", "A2"]).exists()
    assert Move.objects.count() == 1


def test_quantities_and_issuing_more_than_on_hand(stock):
    services.receive(actor="system", warehouse=stock.warehouse, item=stock.cable, quantity=Decimal("100"))
    services.issue(actor="system", item=stock.cable, quantity=Decimal("30.5"), warehouse=stock.warehouse,
                   technician_location=stock.van)
    with pytest.raises(Conflict) as exc:
        services.issue(actor="system", item=stock.cable, quantity=Decimal("70"), warehouse=stock.warehouse,
                       technician_location=stock.van)
    assert exc.value.code == "insufficient_stock"
    assert selectors.on_hand(stock.warehouse, stock.cable) == Decimal("69.5")
    services.reserve(actor="system", reference="ticket:T-9", location=stock.warehouse, item=stock.cable,
                     quantity=Decimal("60"))
    with pytest.raises(Conflict):
        services.issue(actor="system", item=stock.cable, quantity=Decimal("10"), warehouse=stock.warehouse,
                       technician_location=stock.van)
    services.move(actor="system", from_location=stock.warehouse, to_location=stock.van, item=stock.cable,
                  quantity=Decimal("60"), reservation_ref="ticket:T-9")
    assert Reservation.objects.get().state == "consumed"


def test_device_moves_only_from_where_it_is_and_reversal_once(stock):
    services.receive(actor="system", warehouse=stock.warehouse, item=stock.router, serials=["R1"])
    issued = services.issue(actor="system", serial="R1", warehouse=stock.warehouse, technician_location=stock.van)
    with pytest.raises(Conflict) as exc:
        services.issue(actor="system", serial="R1", warehouse=stock.warehouse, technician_location=stock.van)
    assert exc.value.code == "device_not_here"
    back = services.reverse_move(issued, actor="system", reason="issued by mistake")
    assert back.kind == "reversal" and Device.objects.get(serial="R1").location == stock.warehouse
    with pytest.raises(Conflict):
        services.reverse_move(issued, actor="system", reason="again")
    with pytest.raises(IntegrityError), transaction.atomic():  # the trigger: moves are never changed
        Move.objects.filter(pk=issued.pk).update(reason="edited")


def test_scrap_does_not_give_back_and_kinds_follow_locations(stock):
    services.receive(actor="system", warehouse=stock.warehouse, item=stock.router, serials=["X1"])
    with pytest.raises(Conflict) as exc:
        services.move(actor="system", from_location=stock.warehouse, to_location=stock.van, serial="X1",
                      kind="install")
    assert exc.value.code == "wrong_kind"
    services.write_off(actor="system", from_location=stock.warehouse, serial="X1", reason="lost")
    with pytest.raises(Conflict):
        services.move(actor="system", from_location=services.virtual_location("scrap"), to_location=stock.warehouse,
                      serial="X1")


def test_serial_reserved_once_and_reserved_device_not_taken_by_others(stock):
    services.receive(actor="system", warehouse=stock.warehouse, item=stock.router, serials=["Z1"])
    services.reserve(actor="system", reference="ticket:1", serial="Z1")
    with pytest.raises(Conflict) as exc:
        services.reserve(actor="system", reference="ticket:2", serial="Z1")
    assert exc.value.code == "device_reserved"
    with pytest.raises(Conflict):
        services.issue(actor="system", serial="Z1", warehouse=stock.warehouse, technician_location=stock.van)
    services.move(actor="system", from_location=stock.warehouse, to_location=stock.van, serial="Z1",
                  reservation_ref="ticket:1")
    assert Reservation.objects.get().state == "consumed"


def test_stocktake_books_differences(stock):
    services.receive(actor="system", warehouse=stock.warehouse, item=stock.router, serials=["S1", "S2"])
    services.receive(actor="system", warehouse=stock.warehouse, item=stock.cable, quantity=Decimal("50"))
    take = services.open_stocktake(actor="system", location=stock.warehouse, reason="year end")
    services.count(take, actor="system", item=stock.router, serials=["S1", "S9"])
    services.count(take, actor="system", item=stock.cable, counted=Decimal("48"))
    moves = services.post_stocktake(take, actor="system")
    assert sorted((m.kind, str(m.device or m.item), m.quantity) for m in moves) == [
        ("adjustment", "Drop cable", Decimal(2)), ("adjustment", "S2", 1), ("adjustment", "S9", 1)]
    assert Stocktake.objects.get().state == "posted"
    assert sorted(Device.objects.filter(location=stock.warehouse).values_list("serial", flat=True)) == ["S1", "S9"]
    assert selectors.on_hand(stock.warehouse, stock.cable) == 48


def test_check_names_offenders(stock):
    services.receive(actor="system", warehouse=stock.warehouse, item=stock.router, serials=["C1"])
    Stock.objects.filter(location=stock.warehouse).update(quantity=5)
    report = selectors.check_inventory()
    assert not report["ok"]
    assert {p["check"] for p in report["problems"]} >= {"items_balance", "stock_matches_moves"}
    Stock.objects.filter(location=stock.warehouse).update(quantity=1)
    assert selectors.check_inventory()["ok"]


def test_empty_serial_and_validation(stock):
    with pytest.raises(ValidationFailed):
        services.receive(actor="system", warehouse=stock.warehouse, item=stock.router, serials=[])
    with pytest.raises(ValidationFailed):
        services.move(actor="system", from_location=stock.warehouse, to_location=stock.van, item=stock.router)
