"""The demo data matches docs/payments.md: the demo cashiers are their own users with the Cashiers
role, each shift is theirs (Carla's closed 5.00 short, Ben's open), and admin starts with no
open shift (admin opens their own at the cashier page)."""

import pytest

from tarifa.payments import demo, services
from tarifa.payments.models import CashierShift

pytestmark = pytest.mark.django_db


def test_demo_shifts_belong_to_the_demo_cashiers_and_admin_has_none(admin_user):
    demo.load(actor=admin_user)
    shifts = {s.cashier.username: s for s in CashierShift.objects.select_related("cashier", "desk")}
    assert set(shifts) == {"carla.cashier", "ben.cashier"}
    carla, ben = shifts["carla.cashier"], shifts["ben.cashier"]
    assert (carla.desk.code, carla.status, carla.discrepancy) == ("DESK1", "closed", -5)
    assert (ben.desk.code, ben.status) == ("DESK2", "open")
    for shift in (carla, ben):
        assert shift.number.startswith("HQ-SH")
        assert [r.name for r in shift.cashier.roles.all()] == ["Cashiers"]
        assert not shift.cashier.is_superuser
    assert services.open_shift_of(admin_user) is None
    # the cash taken in a shift is the cashier's, on the receipt and in the journal
    assert {p.cashier.username for p in carla.payments.select_related("cashier")} == {"carla.cashier"}


def test_opening_a_shift_for_another_cashier_needs_a_supervisor(desk, cashier, make_user):
    front = desk()
    carla = cashier(desk=front)
    clerk = make_user("payments.operate_cash_desk", "payments.view_all_desks")
    from tarifa.kernel.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.open_shift(actor=clerk, desk=front, cashier=carla)
    supervisor = make_user("payments.operate_cash_desk", "payments.view_all_desks", "payments.change_cashiershift")
    shift = services.open_shift(actor=supervisor, desk=front, cashier=carla)
    assert shift.cashier == carla  # not the supervisor's
    assert services.open_shift_of(supervisor) is None
