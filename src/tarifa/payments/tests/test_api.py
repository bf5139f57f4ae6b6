"""POST /api/v1/payments/ with Idempotency-Key, reverse, refund, list/filter, and the error format."""

from decimal import Decimal

import pytest

from tarifa.ledger.models import Transfer
from tarifa.payments.models import Payment

from .conftest import balance


@pytest.fixture
def clerk(make_user):
    return make_user("payments.view_payment", "payments.add_payment", "payments.reverse", "payments.refund",
                     "payments.view_refund", username="clerk")


def post(client, body, key="k-1", path="/api/v1/payments/"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(path, body, format="json", **headers)


def test_a_payment_is_applied_once_per_key(api, clerk, account):
    acc = account()
    client = api(clerk)
    body = {"account": str(acc.pk), "amount": "10.00", "channel": "cash"}
    first = post(client, body)
    assert first.status_code == 201, first.json()
    data = first.json()
    assert data["amount"] == "10.000000" and data["status"] == "applied" and data["channel"] == "cash"
    assert data["billing_account_number"] == acc.number and data["received_into"] == "cash:main"
    again = post(client, {"channel": "cash", "amount": "10.00", "account": str(acc.pk)})  # key order differs
    assert again.status_code == 201 and again.json() == data
    assert again["Idempotent-Replayed"] == "true"
    assert balance(acc) == Decimal("10") and Payment.objects.count() == 1
    conflict = post(client, {**body, "amount": "11.00"})
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "idempotency_conflict"
    assert balance(acc) == Decimal("10") and Transfer.objects.count() == 1


def test_the_account_may_be_given_by_number(api, clerk, account):
    acc = account()
    response = post(api(clerk), {"account": acc.number, "amount": "5", "channel": "bank_transfer"})
    assert response.status_code == 201 and response.json()["received_into"] == "bank"


def test_the_idempotency_key_is_required(api, clerk, account):
    acc = account()
    response = post(api(clerk), {"account": str(acc.pk), "amount": "10.00", "channel": "cash"}, key=None)
    assert response.status_code == 400 and response.json()["error"]["code"] == "idempotency_key_required"
    assert Payment.objects.count() == 0


@pytest.mark.parametrize("body, status, code", [
    ({"amount": "0"}, 400, "amount_zero"),
    ({"amount": "-1.00"}, 400, "amount_negative"),
    ({"amount": "1.001"}, 400, "amount_too_precise"),
    ({"amount": "1,5"}, 400, "invalid_amount"),
    ({"amount": "abc"}, 400, "invalid_amount"),
    ({"amount": 10.5}, 400, "invalid_amount"),
    ({"currency": "EUR"}, 400, "currency_mismatch"),
    ({"account": "HQ-A9999999"}, 400, "account_not_found"),
    ({"channel": "barter"}, 400, "invalid_channel"),
    ({"colour": "red"}, 400, "validation_failed"),
])
def test_bad_input_answers_a_clear_code_and_writes_nothing(api, clerk, account, body, status, code):
    acc = account()
    request = {"account": str(acc.pk), "amount": "10.00", "channel": "cash", **body}
    response = post(api(clerk), request)
    assert response.status_code == status, response.json()
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert Payment.objects.count() == 0 and Transfer.objects.count() == 0
    # A refused request did not take its key: the corrected retry goes through.
    ok = post(api(clerk), {"account": str(acc.pk), "amount": "10.00", "channel": "cash"})
    assert ok.status_code == 201


def test_a_closed_account_is_refused(api, clerk, account):
    from tarifa.ledger import services as ledger

    acc = account()
    ledger.close_account(acc, actor="test")
    response = post(api(clerk), {"account": str(acc.pk), "amount": "10.00", "channel": "cash"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "account_closed"


def test_reverse_needs_its_permission_and_a_reason(api, clerk, make_user, account):
    acc = account()
    created = post(api(clerk), {"account": str(acc.pk), "amount": "10.00", "channel": "card"}).json()
    url = f"/api/v1/payments/{created['id']}/reverse/"
    viewer = make_user("payments.view_payment", "payments.add_payment")
    assert api(viewer).post(url, {"reason": "x"}, format="json").status_code == 403
    missing = api(clerk).post(url, {}, format="json")
    assert missing.status_code == 400 and "reason" in missing.json()["error"]["fields"]
    done = api(clerk).post(url, {"reason": "card charged back"}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "reversed"
    assert balance(acc) == 0
    again = api(clerk).post(url, {"reason": "again"}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_reversed"


def test_refund_through_the_api(api, clerk, account):
    acc = account()
    created = post(api(clerk), {"account": str(acc.pk), "amount": "10.00", "channel": "bank_transfer"}).json()
    url = f"/api/v1/payments/{created['id']}/refund/"
    response = api(clerk).post(url, {"amount": "4.00", "reason": "overpaid"}, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert response.status_code == 201, response.json()
    assert response.json()["destination"] == "original" and balance(acc) == 6
    too_much = api(clerk).post(url, {"amount": "6.01", "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="r2")
    assert too_much.status_code == 409 and too_much.json()["error"]["code"] == "refund_exceeds_payment"
    listed = api(clerk).get("/api/v1/refunds/").json()
    assert listed["count"] == 1


def test_list_filter_and_get(api, clerk, account):
    a, b = account(), account()
    client = api(clerk)
    post(client, {"account": str(a.pk), "amount": "1.00", "channel": "cash"}, key="a1")
    post(client, {"account": str(b.pk), "amount": "2.00", "channel": "bank_transfer"}, key="b1")
    everything = client.get("/api/v1/payments/").json()
    assert everything["count"] == 2
    only_b = client.get(f"/api/v1/payments/?billing_account={b.pk}").json()
    assert [p["amount"] for p in only_b["results"]] == ["2.000000"]
    by_channel = client.get("/api/v1/payments/?channel=cash").json()
    assert by_channel["count"] == 1
    one = client.get(f"/api/v1/payments/{only_b['results'][0]['id']}/")
    assert one.status_code == 200 and one.json()["billing_account"] == str(b.pk)


def test_anonymous_and_unprivileged_callers_are_refused(api, make_user, account):
    acc = account()
    body = {"account": str(acc.pk), "amount": "10.00", "channel": "cash"}
    assert post(api(None), body).status_code == 401
    assert post(api(make_user("payments.view_payment")), body).status_code == 403
    assert Payment.objects.count() == 0


def test_the_payments_command_imports_a_statement_and_generates_vouchers(account, tmp_path, capsys):
    from django.core.management import call_command

    acc = account()
    path = tmp_path / "st.csv"
    path.write_text(f"date,amount,currency,reference,payer,bank_txn_id\n2026-01-02,9.00,USD,{acc.number},X,CLI-1\n")
    call_command("payments", "import-statement", str(path))
    assert '"booked": 1' in capsys.readouterr().out and balance(acc) == 9
    call_command("payments", "generate-vouchers", "--count", "3", "--nominal", "5.00", "--currency", "USD",
                 "--expires", "2099-12-31")
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].startswith("batch,serial,code") and len(rows) == 4
