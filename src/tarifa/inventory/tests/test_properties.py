"""Property: any sequence of receipts, transfers, issues, installs, returns, write-offs, adjustments
and reversals — allowed or refused — keeps every invariant of `tarifa inventory check`."""

from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tarifa.inventory import services
from tarifa.inventory.models import Device, Location, Move
from tarifa.inventory.selectors import check_inventory
from tarifa.kernel.errors import DomainError

SERIALS = [f"P{i}" for i in range(6)]

operation = st.one_of(
    st.tuples(st.just("receive"), st.lists(st.sampled_from(SERIALS), min_size=1, max_size=3)),
    st.tuples(st.just("receive_qty"), st.integers(1, 50)),
    st.tuples(st.just("move"), st.sampled_from(SERIALS), st.integers(0, 5)),
    st.tuples(st.just("move_qty"), st.integers(0, 5), st.integers(0, 5), st.integers(1, 40)),
    st.tuples(st.just("return"), st.sampled_from(SERIALS), st.sampled_from(["used", "broken"])),
    st.tuples(st.just("write_off"), st.sampled_from(SERIALS)),
    st.tuples(st.just("adjust"), st.integers(0, 5), st.integers(-20, 20)),
    st.tuples(st.just("reverse"), st.integers(0, 30)),
    st.tuples(st.just("reserve"), st.sampled_from(SERIALS), st.integers(0, 2)),
)


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=1, max_size=25))
def test_any_sequence_keeps_the_invariants(stock, ops):
    with transaction.atomic():
        second = Location.objects.get_or_create(code="WH2", defaults={"name": "Second", "kind": "warehouse"})[0]
        customer_site = services.premises(stock.customer)
        places = [stock.warehouse, second, stock.van, customer_site, stock.warehouse, stock.van]
        adjustment = services.virtual_location("adjustment")
        for op in ops:
            try:
                with transaction.atomic():
                    apply(op, stock, places, adjustment)
            except DomainError:
                pass
        report = check_inventory()
        assert report["ok"], (ops, report["problems"])
        transaction.set_rollback(True)


def apply(op, stock, places, adjustment):
    kind = op[0]
    if kind == "receive":
        services.receive(actor="system", warehouse=stock.warehouse, item=stock.router, serials=op[1])
    elif kind == "receive_qty":
        services.receive(actor="system", warehouse=stock.warehouse, item=stock.cable, quantity=Decimal(op[1]))
    elif kind == "move":
        device = Device.objects.filter(serial=op[1]).first()
        if device is not None:
            services.move(actor="system", from_location=device.location, to_location=places[op[2]], device=device)
    elif kind == "move_qty":
        services.move(actor="system", from_location=places[op[1]], to_location=places[op[2]], item=stock.cable,
                      quantity=Decimal(op[3]))
    elif kind == "return":
        services.return_device(actor="system", serial=op[1], to_location=stock.warehouse, condition=op[2])
    elif kind == "write_off":
        device = Device.objects.filter(serial=op[1]).first()
        if device is not None:
            services.write_off(actor="system", from_location=device.location, device=device, reason="lost")
    elif kind == "adjust":
        location, delta = places[op[1]], op[2]
        if delta > 0:
            services.move(actor="system", from_location=adjustment, to_location=location, item=stock.cable,
                          quantity=Decimal(delta), reason="found")
        elif delta < 0:
            services.move(actor="system", from_location=location, to_location=adjustment, item=stock.cable,
                          quantity=Decimal(-delta), reason="missing")
    elif kind == "reverse":
        moves = list(Move.objects.order_by("id"))
        if moves:
            services.reverse_move(moves[op[1] % len(moves)], actor="system", reason="mistake")
    elif kind == "reserve":
        services.reserve(actor="system", reference=f"ticket:{op[2]}", serial=op[1])
