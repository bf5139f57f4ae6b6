"""The accounts, transfers and holds API; the error format; Idempotency-Key over HTTP."""

import threading
from decimal import Decimal

import pytest

from tarifa.ledger.models import BillingAccount, Hold, Transfer
from tarifa.web.models import IdempotentRequest

from . import factories as f

pytestmark = pytest.mark.usefixtures("ledger_ok")


@pytest.fixture
def operator(make_user):
    return make_user("ledger.view_billingaccount", "ledger.add_billingaccount", "ledger.change_billingaccount",
                     "ledger.adjust", "ledger.transfer_funds", "ledger.switch_payment_mode", "ledger.close_account",
                     "ledger.view_transfer", "ledger.reverse_transfer", "ledger.view_hold", "ledger.add_hold",
                     "ledger.post_hold", "ledger.void_hold", "ledger.view_ledgeraccount", "crm.add_customer",
                     "crm.view_customer")


@pytest.fixture
def client(api, operator):
    return api(operator)


def error(response):
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}, body
    return body["error"]


def test_open_account_and_read_balance_as_decimal_string(client):
    customer = f.customer()
    r = client.post("/api/v1/accounts/", {"customer": str(customer.pk), "currency": "USD", "payment_mode": "prepaid",
                                          "credit_limit": "0"}, format="json")
    assert r.status_code == 201, r.json()
    account = r.json()
    assert account["number"].startswith("HQ-A") and account["balance"] == "0.000000"
    f.pay(BillingAccount.objects.get(pk=account["id"]), "12.50")
    r = client.get(f"/api/v1/accounts/{account['id']}/")
    assert r.status_code == 200
    assert r.json()["balance"] == "12.500000" and isinstance(r.json()["balance"], str)
    assert r.json()["credit_limit"] == "0.000000"


@pytest.mark.parametrize("limit, code", [(10.5, "invalid_amount"), ("1.0000001", "amount_too_precise"),
                                         ("-1", "credit_limit_negative"), ("abc", "invalid_amount"),
                                         (5, "invalid_amount")])
def test_open_account_refuses_bad_amounts(client, limit, code):
    customer = f.customer()
    r = client.post("/api/v1/accounts/", {"customer": str(customer.pk), "currency": "USD", "credit_limit": limit},
                    format="json")
    assert r.status_code == 400
    assert error(r)["code"] == code
    assert not BillingAccount.objects.exists()


def test_open_account_refuses_unknown_fields_and_currency(client):
    customer = f.customer()
    r = client.post("/api/v1/accounts/", {"customer": str(customer.pk), "currency": "XXX"}, format="json")
    assert r.status_code == 400 and "currency" in error(r)["fields"]
    r = client.post("/api/v1/accounts/", {"customer": str(customer.pk), "currency": "USD", "colour": "red"},
                    format="json")
    assert r.status_code == 400 and "colour" in error(r)["fields"]


def test_patch_changes_only_the_credit_limit(client):
    account = f.account(payment_mode="postpaid")
    r = client.patch(f"/api/v1/accounts/{account.pk}/", {"credit_limit": "250.00"}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["credit_limit"] == "250.000000"
    r = client.patch(f"/api/v1/accounts/{account.pk}/", {"payment_mode": "prepaid"}, format="json")
    assert r.status_code == 400 and "payment_mode" in error(r)["fields"]


def test_switch_mode_keeps_history(client):
    account = f.account()
    r = client.post(f"/api/v1/accounts/{account.pk}/switch-mode/", {"payment_mode": "postpaid", "reason": "contract"},
                    format="json")
    assert r.status_code == 200 and r.json()["payment_mode"] == "postpaid"
    assert [(c.from_mode, c.to_mode) for c in account.mode_changes.order_by("created_at")] == [
        ("", "prepaid"), ("prepaid", "postpaid")]
    r = client.post(f"/api/v1/accounts/{account.pk}/switch-mode/", {"payment_mode": "postpaid"}, format="json")
    assert r.status_code == 409 and error(r)["code"] == "payment_mode_unchanged"


def test_adjust_needs_an_idempotency_key_and_replays_with_it(client):
    account = f.account()
    url = f"/api/v1/accounts/{account.pk}/adjust/"
    r = client.post(url, {"amount": "5.00", "reason": "goodwill"}, format="json")
    assert r.status_code == 400 and error(r)["code"] == "idempotency_key_required"
    first = client.post(url, {"amount": "5.00", "reason": "goodwill"}, format="json", HTTP_IDEMPOTENCY_KEY="adj-1")
    assert first.status_code == 201, first.json()
    again = client.post(url, {"reason": "goodwill", "amount": "5.00"}, format="json", HTTP_IDEMPOTENCY_KEY="adj-1")
    assert again.status_code == 201 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert f.balance(account) == Decimal("5")
    other = client.post(url, {"amount": "6.00", "reason": "goodwill"}, format="json", HTTP_IDEMPOTENCY_KEY="adj-1")
    assert other.status_code == 409 and error(other)["code"] == "idempotency_conflict"
    assert Transfer.objects.filter(kind="adjustment").count() == 1
    assert f.balance(account) == Decimal("5")


def test_idempotency_key_is_per_user_and_errors_are_not_stored(api, make_user, client):
    account = f.account()
    url = f"/api/v1/accounts/{account.pk}/adjust/"
    r = client.post(url, {"amount": "0", "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert r.status_code == 400 and error(r)["code"] == "amount_zero"
    assert not IdempotentRequest.objects.exists()
    assert client.post(url, {"amount": "1", "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    other = api(make_user("ledger.adjust", "ledger.view_billingaccount"))
    assert other.post(url, {"amount": "1", "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    assert f.balance(account) == Decimal("2")
    r = client.post(url, {"amount": "1", "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="bad key with spaces")
    assert r.status_code == 400 and error(r)["code"] == "invalid_idempotency_key"


def test_same_key_on_another_path_is_a_conflict(client):
    a, b = f.account(), f.account()
    ok = client.post(f"/api/v1/accounts/{a.pk}/adjust/", {"amount": "1", "reason": "x"}, format="json",
                     HTTP_IDEMPOTENCY_KEY="shared")
    assert ok.status_code == 201
    r = client.post(f"/api/v1/accounts/{b.pk}/adjust/", {"amount": "1", "reason": "x"}, format="json",
                    HTTP_IDEMPOTENCY_KEY="shared")
    assert r.status_code == 409 and error(r)["code"] == "idempotency_conflict"


def test_adjust_refuses_floats_and_needs_permission(api, make_user, client):
    account = f.account()
    url = f"/api/v1/accounts/{account.pk}/adjust/"
    r = client.post(url, {"amount": 5.5, "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="f")
    assert r.status_code == 400 and error(r)["code"] == "invalid_amount"
    viewer = api(make_user("ledger.view_billingaccount"))
    r = viewer.post(url, {"amount": "5", "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="p")
    assert r.status_code == 403 and error(r)["code"] == "permission_denied"
    assert not Transfer.objects.exists()


def test_transfer_between_accounts_and_insufficient_funds(client):
    source = f.account()
    target = f.account(source.customer)
    f.pay(source, "10")
    url = f"/api/v1/accounts/{source.pk}/transfer/"
    r = client.post(url, {"target": str(target.pk), "amount": "11", "reason": "move"}, format="json",
                    HTTP_IDEMPOTENCY_KEY="t1")
    assert r.status_code == 409 and error(r)["code"] == "insufficient_funds"
    r = client.post(url, {"target": str(target.pk), "amount": "4", "reason": "move"}, format="json",
                    HTTP_IDEMPOTENCY_KEY="t1")
    assert r.status_code == 201 and r.json()["kind"] == "transfer"
    assert (f.balance(source), f.balance(target)) == (Decimal("6"), Decimal("4"))
    stranger = f.account()
    r = client.post(url, {"target": str(stranger.pk), "amount": "1", "reason": "move"}, format="json",
                    HTTP_IDEMPOTENCY_KEY="t2")
    assert r.status_code == 400 and error(r)["code"] == "not_same_customer"


def test_close_account(client):
    account = f.account()
    f.pay(account, "1")
    r = client.post(f"/api/v1/accounts/{account.pk}/close/", {}, format="json")
    assert r.status_code == 409 and error(r)["code"] == "balance_not_zero"
    empty = f.account()
    r = client.post(f"/api/v1/accounts/{empty.pk}/close/", {"reason": "moved away"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "closed"


def test_transfers_list_filter_and_reverse(client):
    account = f.account()
    payment = f.pay(account, "10")
    f.services.post_transfer(actor="t", debit=account, credit=f.revenue(), amount="3", currency="USD", kind="charge",
                             idempotency_key="c1", tags={"service_type": "internet", "tariff": "Home"})
    r = client.get("/api/v1/transfers/", {"billing_account": str(account.pk)})
    assert r.status_code == 200 and r.json()["count"] == 2
    r = client.get("/api/v1/transfers/", {"tag": "service_type:internet"})
    assert [t["idempotency_key"] for t in r.json()["results"]] == ["c1"]
    r = client.get("/api/v1/transfers/", {"kind": "payment", "date_from": payment.created_at.date().isoformat()})
    assert [t["id"] for t in r.json()["results"]] == [str(payment.pk)]
    url = f"/api/v1/transfers/{payment.pk}/reverse/"
    r = client.post(url, {"reason": "paid twice"}, format="json", HTTP_IDEMPOTENCY_KEY="rev-1")
    assert r.status_code == 201 and r.json()["reverses"] == str(payment.pk)
    r = client.post(url, {"reason": "paid twice"}, format="json", HTTP_IDEMPOTENCY_KEY="rev-2")
    assert r.status_code == 409 and error(r)["code"] == "already_reversed"
    assert client.get(f"/api/v1/transfers/{payment.pk}/").json()["reversed_by"]
    assert f.balance(account) == Decimal("-3")


def test_holds_create_post_void(client):
    account = f.account()
    f.pay(account, "10")
    r = client.post("/api/v1/holds/", {"account": str(account.pk), "credit_account": "revenue:voice", "amount": "4",
                                       "kind": "charge"}, format="json", HTTP_IDEMPOTENCY_KEY="h1")
    assert r.status_code == 201, r.json()
    hold = r.json()
    assert hold["state"] == "pending"
    assert client.get(f"/api/v1/accounts/{account.pk}/").json()["available"] == "6.000000"
    r = client.post(f"/api/v1/holds/{hold['id']}/post/", {"amount": "3"}, format="json", HTTP_IDEMPOTENCY_KEY="hp1")
    assert r.status_code == 201 and r.json()["amount"] == "3.000000" and r.json()["pending"] == hold["id"]
    r = client.post(f"/api/v1/holds/{hold['id']}/void/", {}, format="json", HTTP_IDEMPOTENCY_KEY="hv1")
    assert r.status_code == 409 and error(r)["code"] == "hold_not_pending"
    assert client.get(f"/api/v1/accounts/{account.pk}/").json()["balance"] == "7.000000"
    r = client.post("/api/v1/holds/", {"account": str(account.pk), "credit_account": "revenue:voice", "amount": "8"},
                    format="json", HTTP_IDEMPOTENCY_KEY="h2")
    assert r.status_code == 409 and error(r)["code"] == "insufficient_funds"
    r = client.post("/api/v1/holds/", {"account": str(account.pk), "credit_account": "revenue:voice", "amount": "1",
                                       "currency": "EUR"}, format="json", HTTP_IDEMPOTENCY_KEY="h3")
    assert r.status_code == 400 and error(r)["code"] == "currency_mismatch"
    assert Hold.objects.count() == 1


def test_register_customer_opens_the_first_account(api, operator):
    client = api(operator)
    r = client.post("/api/v1/customers/", {"kind": "individual", "first_name": "Ada", "last_name": "Lovelace"},
                    format="json")
    assert r.status_code == 201, r.json()
    accounts = r.json()["billing_accounts"]
    assert len(accounts) == 1 and accounts[0]["currency"] == "USD" and accounts[0]["payment_mode"] == "prepaid"
    r = client.post("/api/v1/customers/", {"kind": "organization", "legal_name": "Acme", "tax_id": "AC-1",
                                           "account": {"currency": "EUR", "payment_mode": "postpaid",
                                                       "credit_limit": "500"}}, format="json")
    assert r.status_code == 201, r.json()
    (account,) = r.json()["billing_accounts"]
    assert account["currency"] == "EUR" and account["payment_mode"] == "postpaid"
    r = client.post("/api/v1/customers/", {"kind": "individual", "first_name": "Bad", "last_name": "Limit",
                                           "account": {"credit_limit": 3.5}}, format="json")
    assert r.status_code == 400 and error(r)["code"] == "invalid_amount"


def test_concurrent_requests_with_one_key_apply_once(transactional_db, api, make_user):
    """Two identical requests at once: the second waits for the first, then replays its answer."""
    user = make_user("ledger.adjust", "ledger.view_billingaccount")
    account = f.account()
    url = f"/api/v1/accounts/{account.pk}/adjust/"
    results = []

    def send():
        from django.db import connection

        try:
            client = api(user)
            results.append(client.post(url, {"amount": "2", "reason": "race"}, format="json",
                                       HTTP_IDEMPOTENCY_KEY="race-1").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201, 201, 201, 201]
    assert f.balance(account) == Decimal("2")
    assert Transfer.objects.filter(kind="adjustment").count() == 1


def test_a_200_character_key_is_accepted(client):
    account = f.account()
    key = "k" * 200
    r = client.post(f"/api/v1/accounts/{account.pk}/adjust/", {"amount": "1", "reason": "x"}, format="json",
                    HTTP_IDEMPOTENCY_KEY=key)
    assert r.status_code == 201, r.json()
    assert r.json()["idempotency_key"].startswith("http-sha256:")


def test_old_answers_are_purged(client):
    import datetime as dt

    from tarifa.kernel.clock import now
    from tarifa.web import tasks

    account = f.account()
    client.post(f"/api/v1/accounts/{account.pk}/adjust/", {"amount": "1", "reason": "x"}, format="json",
                HTTP_IDEMPOTENCY_KEY="old")
    IdempotentRequest.objects.update(created_at=now() - dt.timedelta(days=31))
    assert tasks.purge_idempotent_requests(timestamp=0) == 1
    assert not IdempotentRequest.objects.exists()


def test_ledger_check_endpoint_runs_as_a_task_and_needs_its_permission(client, api, make_user):
    """POST starts the check as a background task (202 + its URL); the task's URL gives state,
    progress and the report; GET answers the last report at once (no check in the request)."""
    from unittest import mock

    from tarifa.web import background
    from tarifa.web.models import BackgroundTask

    account = f.account()
    f.pay(account, "7.5")
    with mock.patch("tarifa.ledger.selectors.check_ledger", side_effect=AssertionError("ran in the request")):
        assert client.get("/api/v1/ledger/check/").json() == {"last": None, "under_way": None}
        started = client.post("/api/v1/ledger/check/")
    assert started.status_code == 202, started.json()
    body = started.json()
    assert body["state"] == "queued" and body["progress"] == 0 and body["result"] is None
    assert started["Location"] == body["url"] and body["url"].endswith(f"/api/v1/tasks/{body['id']}/")
    assert client.get("/api/v1/ledger/check/").json()["under_way"]["id"] == body["id"]

    background.run(body["id"])
    task = client.get(f"/api/v1/tasks/{body['id']}/").json()
    assert task["state"] == "succeeded" and task["progress"] == 100
    report = task["result"]
    assert report["ok"] is True and report["problems"] == []
    assert report["transfers"] == 1 and report["holds"] == 0 and report["moved"] == {"USD": "7.500000"}
    assert set(report["checks"].values()) == {"ok"}
    last = client.get("/api/v1/ledger/check/").json()
    assert last["last"]["result"] == report and last["under_way"] is None
    assert BackgroundTask.objects.get().requested_by is not None

    outsider = api(make_user("ledger.view_billingaccount"))
    assert outsider.get("/api/v1/ledger/check/").status_code == 403
    assert outsider.post("/api/v1/ledger/check/").status_code == 403
    other = api(make_user("ledger.view_ledgeraccount"))
    assert other.get(f"/api/v1/tasks/{body['id']}/").status_code == 403  # not theirs
    assert other.get("/api/v1/tasks/").json() == {"results": []}
    assert api(make_user("web.view_backgroundtask")).get(f"/api/v1/tasks/{body['id']}/").status_code == 200
    assert other.get("/api/v1/tasks/01a248d9-4e24-7215-8870-7cf690f5375d/").status_code == 404
