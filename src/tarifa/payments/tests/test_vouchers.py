"""Vouchers: generated codes shown once and stored hashed, sold into the liability, redeemed once,
refused when unknown, used, expired or unsold, and throttled after repeated wrong guesses."""

import datetime as dt
from decimal import Decimal

import pytest

from tarifa.kernel.clock import today, travel_to
from tarifa.kernel.errors import DomainError
from tarifa.ledger.models import LedgerAccount
from tarifa.payments import services
from tarifa.payments.models import Payment, Voucher, VoucherAttempt
from tarifa.payments.services.vouchers import code_hash

from .conftest import balance


@pytest.fixture
def batch():
    def make(count=3, nominal="10.00", sold=True, days=30):
        b, cards = services.generate_batch(actor="test", count=count, nominal=nominal, currency="USD",
                                           expires_on=today() + dt.timedelta(days=days))
        if sold:
            b = services.sell_batch(b, actor="test", paid_via="dealer", sold_to="Corner Shop")
        return b, cards

    return make


def liability():
    return LedgerAccount.objects.get(code="voucher_liability", currency="USD")


def test_codes_are_shown_once_and_only_hashes_are_kept(batch):
    b, cards = batch(count=50, sold=False)
    assert len(cards) == 50 and len({c for _s, c in cards}) == 50
    serial, code = cards[0]
    assert serial == f"{b.number}-000001" and len(code.replace("-", "")) == 16
    stored = Voucher.objects.get(serial=serial)
    assert stored.code_hash == code_hash(code) and code.replace("-", "") not in stored.code_hash
    assert not Voucher.objects.filter(code_hash__contains=code.replace("-", "")[:8]).exists()
    for field in Voucher._meta.concrete_fields:
        assert getattr(stored, field.attname) != code


def test_selling_books_the_liability_and_redeeming_moves_it_to_the_customer(batch, account):
    b, cards = batch(count=4, nominal="10.00")
    assert b.sale_transfer.debit_account.code == "dealer:Corner_Shop" and b.sale_transfer.amount == Decimal("40")
    assert liability().balance == Decimal("40")
    acc = account()
    payment = services.redeem_voucher(actor="test", account=acc, code=cards[0][1], ip="10.1.1.1")
    assert (payment.channel, payment.amount, payment.external_reference) == ("voucher", Decimal("10"), cards[0][0])
    assert payment.transfer.debit_account.code == "voucher_liability" and payment.transfer.kind == "payment"
    assert balance(acc) == Decimal("10") and liability().balance == Decimal("30")
    assert Voucher.objects.get(serial=cards[0][0]).state == "redeemed"
    # spaces and dashes do not matter
    services.redeem_voucher(actor="test", account=acc, code=f"  {cards[1][1].replace('-', ' ')} ")
    assert balance(acc) == Decimal("20")


def test_refusals_have_distinct_codes_and_write_no_money(batch, account):
    sold, cards = batch(count=2)
    unsold, unsold_cards = batch(count=1, sold=False)
    acc = account()
    services.redeem_voucher(actor="test", account=acc, code=cards[0][1])
    before = (Payment.objects.count(), balance(acc))
    cases = [("0000-0000-0000-0000", "voucher_unknown", 404), (cards[0][1], "voucher_used", 409),
             (unsold_cards[0][1], "voucher_not_active", 409)]
    for code, error, status in cases:
        with pytest.raises(DomainError) as exc:
            services.redeem_voucher(actor="test", account=acc, code=code, ip="10.0.0.1")
        assert (exc.value.code, exc.value.status) == (error, status)
    with travel_to(dt.datetime.combine(today() + dt.timedelta(days=31), dt.time(12))):
        with pytest.raises(DomainError) as exc:
            services.redeem_voucher(actor="test", account=acc, code=cards[1][1], ip="10.0.0.2")
        assert exc.value.code == "voucher_expired"
    assert (Payment.objects.count(), balance(acc)) == before
    assert list(VoucherAttempt.objects.order_by("at", "id").values_list("outcome", flat=True)) == [
        "redeemed", "unknown", "used", "not_active", "expired"]


def test_a_closed_or_foreign_currency_account_is_refused(batch, account):
    from tarifa.ledger import services as ledger

    _b, cards = batch(count=2)
    closed = account()
    ledger.close_account(closed, actor="test")
    with pytest.raises(DomainError) as exc:
        services.redeem_voucher(actor="test", account=closed, code=cards[0][1])
    assert exc.value.code == "account_closed"
    with pytest.raises(DomainError) as exc:
        services.redeem_voucher(actor="test", account=account(currency="EUR"), code=cards[0][1])
    assert exc.value.code == "currency_mismatch"
    assert Voucher.objects.get(serial=cards[0][0]).state == "issued"


def test_wrong_guesses_are_throttled_per_account_and_per_address(batch, account, caplog):
    _b, cards = batch(count=2)
    acc = account()
    for i in range(5):
        with pytest.raises(DomainError) as exc:
            services.redeem_voucher(actor="test", account=acc, code=f"1111-2222-3333-{i:04d}", ip=f"10.0.0.{i}")
        assert exc.value.code == "voucher_unknown"
    with pytest.raises(DomainError) as exc:  # the right code, but the account is throttled now
        services.redeem_voucher(actor="test", account=acc, code=cards[0][1], ip="10.9.9.9")
    assert (exc.value.code, exc.value.status) == ("voucher_throttled", 429)
    assert "voucher redemption refused: throttled" in caplog.text
    other = account()
    for i in range(5):
        with pytest.raises(DomainError):
            services.redeem_voucher(actor="test", account=account(), code=f"9999-2222-3333-{i:04d}", ip="192.0.2.7")
    with pytest.raises(DomainError) as exc:  # a fresh account from the same address
        services.redeem_voucher(actor="test", account=other, code=cards[0][1], ip="192.0.2.7")
    assert exc.value.code == "voucher_throttled"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=16)
    with travel_to(later):
        assert services.redeem_voucher(actor="test", account=acc, code=cards[0][1], ip="10.9.9.9").amount == 10


def test_a_reversed_voucher_payment_gives_the_card_back(batch, account):
    _b, cards = batch(count=1)
    wrong, right = account(), account()
    payment = services.redeem_voucher(actor="test", account=wrong, code=cards[0][1])
    services.reverse_payment(payment, actor="test", reason="redeemed to the wrong account")
    assert Voucher.objects.get(serial=cards[0][0]).state == "issued"
    again = services.redeem_voucher(actor="test", account=right, code=cards[0][1])
    assert again.pk != payment.pk and balance(right) == 10 and balance(wrong) == 0
    assert liability().balance == 0


def test_a_retry_with_the_same_key_returns_the_same_payment(batch, account):
    _b, cards = batch(count=2)
    acc = account()
    first = services.redeem_voucher(actor="test", account=acc, code=cards[0][1], idempotency_key="r-1")
    again = services.redeem_voucher(actor="test", account=acc, code=cards[0][1], idempotency_key="r-1")
    assert again.pk == first.pk and balance(acc) == 10
    with pytest.raises(DomainError) as exc:
        services.redeem_voucher(actor="test", account=acc, code=cards[1][1], idempotency_key="r-1")
    assert exc.value.code == "idempotency_conflict"


def test_batch_rules(batch):
    for kwargs, code in [({"count": 0}, "invalid_count"), ({"nominal": "0"}, "amount_zero"),
                         ({"expires_on": today() - dt.timedelta(days=1)}, "invalid_expiry"),
                         ({"nominal": "1.005"}, "amount_too_precise")]:
        args = {"count": 1, "nominal": "5", "currency": "USD", "expires_on": today(), **kwargs}
        with pytest.raises(DomainError) as exc:
            services.generate_batch(actor="test", **args)
        assert exc.value.code == code
    b, _cards = batch(count=1)
    with pytest.raises(DomainError) as exc:
        services.sell_batch(b, actor="test", paid_via="bank")
    assert exc.value.code == "batch_not_generated"


def test_voucher_api_shows_codes_once_and_redeems(api, make_user, account):
    boss = make_user("payments.add_voucherbatch", "payments.view_voucherbatch", "payments.sell_voucherbatch",
                     "payments.redeem_voucher", "payments.view_voucher")
    client = api(boss)
    created = client.post("/api/v1/voucher-batches/", {"count": 2, "nominal": "5.00", "currency": "USD",
                                                       "expires_on": str(today() + dt.timedelta(days=10))},
                          format="json")
    assert created.status_code == 201 and created["Cache-Control"] == "no-store"
    data = created.json()
    assert len(data["cards"]) == 2
    assert "cards" not in client.get(f"/api/v1/voucher-batches/{data['id']}/").json()
    assert client.post(f"/api/v1/voucher-batches/{data['id']}/sell/", {"paid_via": "bank"},
                       format="json").status_code == 200
    acc = account()
    redeemed = client.post("/api/v1/vouchers/redeem/", {"account": acc.number, "code": data["cards"][0]["code"]},
                           format="json")
    assert redeemed.status_code == 201 and redeemed.json()["channel"] == "voucher"
    used = client.post("/api/v1/vouchers/redeem/", {"account": acc.number, "code": data["cards"][0]["code"]},
                       format="json")
    assert used.status_code == 409 and used.json()["error"]["code"] == "voucher_used"
    assert VoucherAttempt.objects.filter(outcome="used").count() == 1  # logged although refused
