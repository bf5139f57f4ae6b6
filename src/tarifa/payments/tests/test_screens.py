"""The operator screens' write flows: back-office payment, refund and reverse actions, desks,
gateways (credentials shown once), hand-overs, statement upload and the queue, voucher
generation (codes on one page only) and redemption, the customer page panel."""

import datetime as dt
import re
import urllib.parse
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tarifa.kernel.clock import today
from tarifa.payments import services
from tarifa.payments.models import (BankStatementLine, CashDesk, CashHandover, Payment, PaymentGateway, Refund,
                                    Voucher, VoucherBatch)

from .conftest import balance


@pytest.fixture
def boss(make_user):
    return make_user(superuser=True, username="boss")


def key_of(html: str) -> str:
    return re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)


def test_a_back_office_payment_is_taken_once_per_form(staff_client, boss, account):
    acc = account()
    client = staff_client(boss)
    page = client.get("/payments/payment/add/").content.decode()
    form = {"account": acc.number, "amount": "12.00", "channel": "bank_transfer", "external_reference": "TR-1",
            "idempotency_key": key_of(page)}
    first = client.post("/payments/payment/add/", form)
    assert first.status_code == 302
    again = client.post("/payments/payment/add/", form)  # the same form submitted twice
    assert again.status_code == 302 and again["Location"] == first["Location"]
    assert Payment.objects.count() == 1 and balance(acc) == 12
    bad = client.post("/payments/payment/add/", {**form, "amount": "1.001", "idempotency_key": "x" * 20})
    assert bad.status_code == 200 and "decimal places" in bad.content.decode()


def test_refund_and_reverse_actions(staff_client, boss, account, key):
    acc = account()
    payment = services.accept_payment(actor="test", account=acc, amount="30", channel="bank_transfer",
                                      idempotency_key=key())
    client = staff_client(boss)
    page = client.get(f"/payments/payment/{payment.pk}/do/refund/").content.decode()
    assert 'value="30.00"' in page
    done = client.post(f"/payments/payment/{payment.pk}/do/refund/", {
        "amount": "10.00", "destination": "original", "reason": "overpaid", "idempotency_key": key_of(page)})
    assert done.status_code == 302 and Refund.objects.count() == 1 and balance(acc) == 20
    detail = client.get(f"/payments/payment/{payment.pk}/").content.decode()
    assert Refund.objects.get().number in detail and 'data-action="reverse"' not in detail
    other = services.accept_payment(actor="test", account=acc, amount="5", channel="other", idempotency_key=key())
    client.post(f"/payments/payment/{other.pk}/do/reverse/", {"reason": "keyed twice"})
    other.refresh_from_db()
    assert other.status == "reversed" and balance(acc) == 20


def test_desk_gateway_and_handover_screens(staff_client, boss, cashier, account, key):
    client = staff_client(boss)
    carla = cashier(username="carla")
    created = client.post("/payments/cashdesk/add/", {"code": "D9", "name": "Desk nine", "currency": "USD",
                                                      "cashiers": [carla.pk]})
    assert created.status_code == 302
    desk = CashDesk.objects.get(code="D9")
    assert list(desk.cashiers.all()) == [carla] and desk.ledger_account.code == "cash:D9"
    shift = services.open_shift(actor=carla, desk=desk, opening_float="0")
    services.accept_payment(actor=carla, account=account(), amount="40", channel="cash", idempotency_key=key())
    page = client.get("/payments/cashhandover/add/").content.decode()
    handed = client.post("/payments/cashhandover/add/", {
        "from_desk": "D9", "destination": "bank", "amount": "25.00", "bank_reference": "DEP-9",
        "idempotency_key": key_of(page)})
    assert handed.status_code == 302 and CashHandover.objects.get().shift == shift
    assert "15.00" in client.get(f"/payments/cashdesk/{desk.pk}/").content.decode()

    made = client.post("/payments/paymentgateway/add/", {
        "code": "T9", "name": "Kiosks", "kind": "terminal", "currency": "USD", "min_amount": "1.00",
        "max_amount": "100.00", "allowed_ips": "10.0.0.0/8, 192.168.1.1", "is_active": "on"})
    assert made.status_code == 302
    gateway = PaymentGateway.objects.get(code="T9")
    assert gateway.allowed_ips == ["10.0.0.0/8", "192.168.1.1/32"] and gateway.clearing_account.code == "clearing:T9"
    rotated = client.post(f"/payments/paymentgateway/{gateway.pk}/do/rotate-credentials/", follow=True)
    shown = rotated.content.decode()
    assert "password:" in shown and "copy them now" in shown
    assert "password:" not in client.get(f"/payments/paymentgateway/{gateway.pk}/").content.decode()


def test_statement_upload_and_the_queue(staff_client, boss, account):
    acc = account()
    client = staff_client(boss)
    content = (f"date,amount,currency,reference,payer,bank_txn_id\n2026-01-05,8.00,USD,{acc.number},A,S-1\n"
               "2026-01-05,3.00,USD,who knows,B,S-2\n").encode()
    uploaded = client.post("/payments/bankstatement/add/", {"file": SimpleUploadedFile("s.csv", content)})
    assert uploaded.status_code == 302
    detail = client.get(uploaded["Location"]).content.decode()
    assert "2 read = 1 booked + 1 unmatched + 0 duplicates + 0 rejected" in detail
    line = BankStatementLine.objects.get(state="unmatched")
    queue = client.get("/payments/bankstatementline/?state=unmatched").content.decode()
    assert "who knows" in queue
    client.post(f"/payments/bankstatementline/{line.pk}/do/assign/", {"account": acc.number})
    assert balance(acc) == 11
    refused = client.post("/payments/bankstatement/add/", {"file": SimpleUploadedFile("x.csv", b"a,b\n1,2\n")})
    assert refused.status_code == 200 and "Missing columns" in refused.content.decode()


def test_voucher_pages(staff_client, boss, account):
    client = staff_client(boss)
    page = client.post("/payments/vouchers/generate/", {"count": "3", "nominal": "5.00", "currency": "USD",
                                                        "expires_on": str(today() + dt.timedelta(days=30))})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    html = page.content.decode()
    codes = re.findall(r"<code>([\d-]{19})</code>", html)
    assert len(codes) == 3 and "data:text/csv;base64," in html
    batch = VoucherBatch.objects.get()
    for code in codes:  # nothing on the batch's own pages shows a code again
        assert code not in client.get(f"/payments/voucherbatch/{batch.pk}/").content.decode()
        assert code not in client.get("/payments/voucher/").content.decode()
    client.post(f"/payments/voucherbatch/{batch.pk}/do/sell/", {"paid_via": "bank"})
    acc = account()
    done = client.post("/payments/vouchers/redeem/", {"account": acc.number, "code": codes[0]}, follow=True)
    assert "Voucher redeemed" in done.content.decode() and balance(acc) == Decimal("5")
    again = client.post("/payments/vouchers/redeem/", {"account": acc.number, "code": codes[0]})
    assert again.status_code == 400 and "already redeemed" in again.content.decode()
    assert Voucher.objects.filter(state="redeemed").count() == 1


def test_the_customer_page_shows_payments(staff_client, boss, account, key):
    acc = account()
    payment = services.accept_payment(actor="test", account=acc, amount="7", channel="card", idempotency_key=key())
    page = staff_client(boss).get(f"/crm/customer/{acc.customer_id}/").content.decode()
    assert 'data-testid="customer-payments"' in page and payment.number in page


def test_an_operator_starts_a_card_payment_from_the_account_page(staff_client, boss, account):
    from tarifa.payments.models import CardCheckout

    acc = account()
    services.create_gateway(actor="test", code="CARDREF", name="Reference cards", kind="card", adapter="reference",
                            currency="USD", api_url="https://pay.example.com", hmac_secret="s3cret")
    client = staff_client(boss)
    assert b'data-action="card-checkout"' in client.get(f"/ledger/billingaccount/{acc.pk}/").content
    url = f"/ledger/billingaccount/{acc.pk}/do/card-checkout/"
    form = client.get(url).content.decode()
    body = {"gateway": "CARDREF", "amount": "15.00", "idempotency_key": key_of(form)}
    first, again = client.post(url, body), client.post(url, body)
    checkout = CardCheckout.objects.get()  # submitting the form twice starts one checkout
    assert first.status_code == again.status_code == 302 and first.url == f"/payments/cardcheckout/{checkout.pk}/"
    assert (checkout.billing_account, checkout.amount, checkout.state) == (acc, Decimal("15"), "created")
    assert checkout.redirect_url.startswith("https://pay.example.com/checkout?")
    assert "/api/v1/gateways/CARDREF/webhook/" in urllib.parse.unquote(checkout.redirect_url)
    assert checkout.redirect_url in client.get(first.url).content.decode().replace("&amp;", "&")
    assert balance(acc) == 0  # nothing is booked until the provider's webhook says so
