"""Cash desks: shifts with float and count, discrepancies booked, hand-overs, the cashier's journal."""

from decimal import Decimal

import pytest

from tarifa.kernel.errors import DomainError
from tarifa.ledger.models import LedgerAccount
from tarifa.payments import selectors, services
from tarifa.payments.models import CashierShift, Payment

from .conftest import balance


def desk_cash(desk):
    account = LedgerAccount.objects.get(pk=desk.ledger_account_id)
    return account.debits_posted - account.credits_posted


def test_a_cashier_s_day(desk, cashier, account, key):
    front = desk("FRONT")
    carla = cashier(desk=front)
    acc = account()
    shift = services.open_shift(actor=carla, desk=front, opening_float="100.00")
    assert shift.number.startswith("HQ-SH") and shift.status == "open"
    payment = services.accept_payment(actor=carla, account=acc, amount="20.00", channel="cash", idempotency_key=key())
    assert (payment.desk, payment.shift, payment.cashier) == (front, shift, carla)
    assert payment.transfer.debit_account.code == "cash:FRONT"
    assert payment.transfer.tags == {"channel": "cash", "desk": "FRONT", "cashier": carla.username}
    services.accept_payment(actor=carla, account=acc, amount="5.50", channel="cash", idempotency_key=key())
    assert services.expected_cash(shift) == Decimal("125.50")
    assert balance(acc) == Decimal("25.50")

    closed = services.close_shift(shift, actor=carla, counted_cash="123.50", note="2.00 short")
    assert (closed.status, closed.expected_cash, closed.counted_cash, closed.discrepancy) == (
        "closed", Decimal("125.50"), Decimal("123.50"), Decimal("-2.00"))
    t = closed.discrepancy_transfer
    assert (t.debit_account.code, t.credit_account.code, t.amount, t.kind) == (
        "cash_discrepancy", "cash:FRONT", Decimal("2"), "adjustment")
    assert t.tags["discrepancy"] == "shortage" and t.tags["shift"] == shift.number
    assert desk_cash(front) == Decimal("23.50")  # takings on the books now match the drawer minus the float
    with pytest.raises(DomainError) as exc:
        services.close_shift(closed, actor=carla, counted_cash="0")
    assert exc.value.code == "shift_closed"


def test_a_surplus_is_booked_the_other_way(desk, cashier, account, key):
    front = desk()
    carla = cashier(desk=front)
    shift = services.open_shift(actor=carla, desk=front, opening_float="10")
    services.accept_payment(actor=carla, account=account(), amount="7", channel="cash", idempotency_key=key())
    closed = services.close_shift(shift, actor=carla, counted_cash="18")
    assert closed.discrepancy == Decimal("1")
    assert closed.discrepancy_transfer.debit_account.code == f"cash:{front.code}"
    exact = services.open_shift(actor=carla, desk=front, opening_float="10")
    assert services.close_shift(exact, actor=carla, counted_cash="10").discrepancy_transfer is None


def test_one_open_shift_per_cashier_and_per_desk(desk, cashier):
    a, b = desk(), desk()
    carla = cashier(desk=a)
    services.update_cash_desk(b, actor="test", cashiers=[carla])
    ben = cashier(desk=a)
    services.open_shift(actor=carla, desk=a, opening_float="0")
    with pytest.raises(DomainError) as exc:
        services.open_shift(actor=carla, desk=b, opening_float="0")
    assert exc.value.code == "shift_already_open"
    with pytest.raises(DomainError) as exc:
        services.open_shift(actor=ben, desk=a, opening_float="0")
    assert exc.value.code == "shift_already_open"
    assert CashierShift.objects.count() == 1


def test_only_assigned_cashiers_open_shifts(desk, cashier, make_user):
    a, b = desk(), desk()
    carla = cashier(desk=a)
    with pytest.raises(DomainError) as exc:
        services.open_shift(actor=carla, desk=b, opening_float="0")
    assert (exc.value.code, exc.value.status) == ("desk_not_assigned", 403)
    with pytest.raises(DomainError) as exc:
        services.open_shift(actor=make_user("payments.view_payment"), desk=a, opening_float="0")
    assert exc.value.code == "permission_denied"
    for bad, code in [("-1", "amount_negative"), ("1.001", "amount_too_precise"), ("x", "invalid_amount")]:
        with pytest.raises(DomainError) as exc:
            services.open_shift(actor=carla, desk=a, opening_float=bad)
        assert exc.value.code == code


def test_cash_at_a_desk_needs_an_open_shift_there(desk, cashier, account, key):
    a, b = desk(), desk()
    carla = cashier(desk=a)
    acc = account()
    with pytest.raises(DomainError) as exc:
        services.accept_payment(actor=carla, account=acc, amount="5", channel="cash", desk=a, idempotency_key=key())
    assert exc.value.code == "no_open_shift"
    shift = services.open_shift(actor=carla, desk=a, opening_float="0")
    with pytest.raises(DomainError) as exc:
        services.accept_payment(actor=carla, account=acc, amount="5", channel="cash", desk=b, idempotency_key=key())
    assert exc.value.code == "no_open_shift"
    with pytest.raises(DomainError) as exc:
        services.accept_payment(actor=carla, account=acc, amount="5", channel="bank_transfer", desk=a,
                                idempotency_key=key())
    assert exc.value.code == "desk_not_for_channel"
    services.close_shift(shift, actor=carla, counted_cash="0")
    with pytest.raises(DomainError) as exc:
        services.accept_payment(actor=carla, account=acc, amount="5", channel="cash", shift=shift, idempotency_key=key())
    assert exc.value.code == "shift_closed"
    eur_desk = desk(currency="EUR")
    with pytest.raises(DomainError) as exc:
        services.accept_payment(actor="test", account=acc, amount="5", channel="cash", desk=eur_desk,
                                idempotency_key=key())
    assert exc.value.code == "currency_mismatch"
    assert Payment.objects.count() == 0


def test_another_cashier_cannot_close_my_shift_but_a_supervisor_can(desk, cashier, make_user):
    a = desk()
    carla, ben = cashier(desk=a), cashier(desk=a)
    shift = services.open_shift(actor=carla, desk=a, opening_float="0")
    with pytest.raises(DomainError) as exc:
        services.close_shift(shift, actor=ben, counted_cash="0")
    assert exc.value.code == "not_your_shift"
    boss = make_user("payments.change_cashiershift")
    assert services.close_shift(shift, actor=boss, counted_cash="0").status == "closed"


def test_hand_overs_to_another_desk_and_to_the_bank(desk, cashier, account, key):
    a, b = desk(), desk()
    carla, ben = cashier(desk=a), cashier(desk=b)
    shift = services.open_shift(actor=carla, desk=a, opening_float="50")
    services.accept_payment(actor=carla, account=account(), amount="80", channel="cash", idempotency_key=key())
    h1 = services.hand_over_cash(actor=carla, from_desk=a, amount="30", destination="desk", to_desk=b, received_by=ben,
                                 idempotency_key=key())
    assert (h1.number[:4], h1.handed_by, h1.received_by, h1.shift) == ("HQ-H", carla, ben, shift)
    assert (h1.transfer.debit_account.code, h1.transfer.credit_account.code) == (f"cash:{b.code}", f"cash:{a.code}")
    k = key()
    h2 = services.hand_over_cash(actor=carla, from_desk=a, amount="50", destination="bank", bank_reference="DEP-1",
                                 idempotency_key=k)
    assert h2.transfer.debit_account.code == "bank"
    assert services.hand_over_cash(actor=carla, from_desk=a, amount="50", destination="bank",
                                   idempotency_key=k).pk == h2.pk
    assert desk_cash(a) == 0 and desk_cash(b) == 30
    assert services.expected_cash(shift) == Decimal("50")  # the float stays in the drawer
    with pytest.raises(DomainError) as exc:
        services.hand_over_cash(actor=carla, from_desk=a, amount="0.01", destination="bank", idempotency_key=key())
    assert exc.value.code == "insufficient_cash"
    with pytest.raises(DomainError) as exc:
        services.hand_over_cash(actor=carla, from_desk=b, amount="1", destination="bank", idempotency_key=key())
    assert exc.value.code == "desk_not_assigned"
    with pytest.raises(DomainError) as exc:
        services.hand_over_cash(actor=carla, from_desk=a, amount="1", destination="desk", to_desk=a,
                                idempotency_key=key())
    assert exc.value.code == "same_desk"


def test_a_cashier_sees_only_their_desks_journal(desk, cashier, account, key, make_user, api, staff_client):
    a, b = desk(), desk()
    carla, ben = cashier(desk=a), cashier(desk=b)
    services.open_shift(actor=carla, desk=a, opening_float="0")
    services.open_shift(actor=ben, desk=b, opening_float="0")
    mine = services.accept_payment(actor=carla, account=account(), amount="1", channel="cash", idempotency_key=key())
    theirs = services.accept_payment(actor=ben, account=account(), amount="2", channel="cash", idempotency_key=key())
    bank = services.accept_payment(actor="test", account=account(), amount="3", channel="bank_transfer",
                                   idempotency_key=key())
    assert list(selectors.payments_for(carla)) == [mine]
    auditor = make_user("payments.view_payment", "payments.view_all_desks", "payments.operate_cash_desk")
    assert set(selectors.payments_for(auditor)) == {mine, theirs, bank}
    accountant = make_user("payments.view_payment")
    assert set(selectors.payments_for(accountant)) == {mine, theirs, bank}

    listed = api(carla).get("/api/v1/payments/").json()
    assert [p["number"] for p in listed["results"]] == [mine.number]
    assert api(carla).get(f"/api/v1/payments/{theirs.pk}/").status_code == 404
    shifts = api(carla).get("/api/v1/shifts/").json()
    assert [s["cashier"] for s in shifts["results"]] == [carla.username]

    client = staff_client(carla)
    page = client.get("/payments/payment/")
    assert mine.number in page.content.decode() and theirs.number not in page.content.decode()
    assert client.get(f"/payments/payment/{theirs.pk}/").status_code == 404
    assert client.get(f"/payments/payment/{mine.pk}/receipt/").status_code == 200
    assert client.get(f"/payments/payment/{theirs.pk}/receipt/").status_code == 404


def test_shift_api_open_and_close(api, desk, cashier, account):
    a = desk()
    carla = cashier(desk=a)
    client = api(carla)
    opened = client.post("/api/v1/shifts/open/", {"desk": a.code, "opening_float": "20.00"}, format="json")
    assert opened.status_code == 201, opened.json()
    again = client.post("/api/v1/shifts/open/", {"desk": a.code}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "shift_already_open"
    paid = client.post("/api/v1/payments/", {"account": account().number, "amount": "5.00", "channel": "cash"},
                       format="json", HTTP_IDEMPOTENCY_KEY="c1")
    assert paid.status_code == 201 and paid.json()["desk"] == a.code and paid.json()["cashier"] == carla.username
    shift_id = opened.json()["id"]
    assert client.get(f"/api/v1/shifts/{shift_id}/").json()["expected_now"] == "25.000000"
    closed = client.post(f"/api/v1/shifts/{shift_id}/close/", {"counted_cash": "24.00"}, format="json")
    assert closed.status_code == 200 and closed.json()["discrepancy"] == "-1.000000"
