"""The terminal networks' check/pay/status protocol, over real HTTP (live_server + urllib)."""

import base64
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from tarifa.kernel.models import DomainEvent
from tarifa.ledger.models import Transfer
from tarifa.payments import services
from tarifa.payments.models import Payment, TerminalTransaction

from .conftest import balance

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gateway(db):
    gw, issued = services.create_gateway(actor="test", code="QPAY", name="QuickPay kiosks", kind="terminal",
                                         currency="USD", min_amount="1.00", max_amount="500.00")
    gw.password = issued["password"]
    return gw


class Terminal:
    def __init__(self, base, code, username, password, accept=None):
        self.url = f"{base}/api/v1/terminals/{code}/"
        self.auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.accept = accept

    def call(self, method="GET", **params):
        query = urllib.parse.urlencode(params)
        headers = {"Authorization": self.auth}
        if self.accept:
            headers["Accept"] = self.accept
        if method == "GET":
            request = urllib.request.Request(f"{self.url}?{query}", headers=headers)
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            request = urllib.request.Request(self.url, data=query.encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read().decode()

    def xml(self, **params):
        status, headers, body = self.call(**params)
        assert headers["Content-Type"].startswith("application/xml"), body
        root = ET.fromstring(body)
        assert root.tag == "response"
        return status, {child.tag: child.text for child in root}


@pytest.fixture
def terminal(live_server, gateway):
    return Terminal(live_server.url, gateway.code, gateway.username, gateway.password)


def state():
    return (Payment.objects.count(), Transfer.objects.count(), DomainEvent.objects.count())


def test_check_then_pay_books_once_and_status_reports_it(terminal, account, gateway):
    acc = account()
    status, check = terminal.xml(command="check", txn_id="1001", account=acc.number, sum="10.00")
    assert status == 200 and check["result"] == "0", check
    assert check["osmp_txn_id"] == "1001" and check["fio"] == "Test C." if False else check["fio"].startswith("Test")
    status, paid = terminal.xml(command="pay", txn_id="1001", txn_date="20260115103000", account=acc.number,
                                sum="10.00")
    assert status == 200 and paid["result"] == "0", paid
    payment = Payment.objects.get(number=paid["prv_txn"])
    assert (payment.channel, payment.gateway_id, payment.provider_txn_id, payment.amount) == (
        "terminal", gateway.pk, "1001", Decimal("10"))
    assert payment.transfer.debit_account.code == "clearing:QPAY"
    assert payment.received_at.strftime("%Y%m%d%H%M%S") == "20260115103000"
    assert balance(acc) == Decimal("10")

    before = state()
    status, again = terminal.xml(command="pay", txn_id="1001", txn_date="20260115103005", account=acc.number,
                                 sum="10.00")
    assert status == 200 and again["result"] == "0" and again["prv_txn"] == paid["prv_txn"]
    assert state() == before and balance(acc) == Decimal("10")

    status, st = terminal.xml(command="status", txn_id="1001")
    assert st["result"] == "0" and st["prv_txn"] == paid["prv_txn"] and st["state"] == "paid"
    assert st["sum"] == "10.00"


def test_a_repeated_pay_with_other_data_is_refused(terminal, account):
    acc = account()
    terminal.xml(command="check", txn_id="7", account=acc.number, sum="10.00")
    terminal.xml(command="pay", txn_id="7", txn_date="20260115103000", account=acc.number, sum="10.00")
    before = state()
    _status, other = terminal.xml(command="pay", txn_id="7", txn_date="20260115103000", account=acc.number, sum="11.00")
    assert other["result"] == "300" and state() == before


def test_pay_without_a_prior_check_is_refused_with_90(terminal, account):
    acc = account()
    before = state()
    status, answer = terminal.xml(command="pay", txn_id="2002", txn_date="20260115103000", account=acc.number,
                                  sum="10.00")
    assert status == 200 and answer["result"] == "90" and "check" in answer["comment"]
    assert state() == before and not TerminalTransaction.objects.filter(txn_id="2002").exists()
    _s, st = terminal.xml(command="status", txn_id="2002")
    assert st["result"] == "90" and st["state"] == "unknown"


def test_a_failed_check_does_not_allow_a_pay(terminal, account):
    _s, check = terminal.xml(command="check", txn_id="3003", account="HQ-A9999999", sum="10.00")
    assert check["result"] == "5"
    _s, pay = terminal.xml(command="pay", txn_id="3003", txn_date="20260115103000", account="HQ-A9999999", sum="10.00")
    assert pay["result"] == "90"


def test_pay_must_name_the_checked_account(terminal, account):
    a, b = account(), account()
    terminal.xml(command="check", txn_id="4004", account=a.number, sum="10.00")
    before = state()
    _s, pay = terminal.xml(command="pay", txn_id="4004", txn_date="20260115103000", account=b.number, sum="10.00")
    assert pay["result"] == "300" and state() == before


@pytest.mark.parametrize("params, result", [
    ({"account": "not an account!"}, "4"),
    ({"account": "HQ-A9999999"}, "5"),
    ({"sum": "0.50"}, "241"),
    ({"sum": "500.01"}, "242"),
    ({"sum": "10.001"}, "8"),
    ({"sum": "1e3"}, "8"),
    ({"sum": "-5"}, "8"),
    ({"command": "refund"}, "8"),
    ({"txn_id": ""}, "8"),
])
def test_check_refusals_carry_their_result_code(terminal, account, params, result):
    acc = account()
    request = {"command": "check", "txn_id": "5005", "account": acc.number, "sum": "10.00", **params}
    _s, answer = terminal.xml(**request)
    assert answer["result"] == result, answer
    assert Payment.objects.count() == 0


def test_malformed_pay_parameters(terminal, account):
    acc = account()
    terminal.xml(command="check", txn_id="6006", account=acc.number, sum="10.00")
    for params in ({"txn_date": "2026-01-15"}, {"sum": "ten"}, {"txn_date": ""}):
        request = {"command": "pay", "txn_id": "6006", "txn_date": "20260115103000", "account": acc.number,
                   "sum": "10.00", **params}
        _s, answer = terminal.xml(**request)
        assert answer["result"] == "8", (params, answer)
    assert Payment.objects.count() == 0


def test_a_closed_account_may_not_be_paid(terminal, account):
    from tarifa.ledger import services as ledger

    acc = account()
    ledger.close_account(acc, actor="test")
    _s, answer = terminal.xml(command="check", txn_id="8008", account=acc.number, sum="10.00")
    assert answer["result"] == "7"


def test_the_account_digits_alone_are_enough(terminal, account):
    acc = account()
    digits = str(int(acc.number.split("-A")[1]))
    _s, answer = terminal.xml(command="check", txn_id="9009", account=digits, sum="10.00")
    assert answer["result"] == "0" and answer["account"] == acc.number


def test_json_on_request_and_post_forms(live_server, gateway, account):
    acc = account()
    client = Terminal(live_server.url, gateway.code, gateway.username, gateway.password, accept="application/json")
    status, headers, body = client.call(method="POST", command="check", txn_id="10", account=acc.number, sum="3.00")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["result"] == 0
    _s, _h, body = client.call(method="POST", command="pay", txn_id="10", account=acc.number, sum="3.00",
                               txn_date="20260115103000")
    answer = json.loads(body)
    assert answer["result"] == 0 and answer["sum"] == "3.00" and answer["prv_txn"].startswith("HQ-P")


def test_wrong_credentials_are_refused_and_write_nothing(live_server, gateway, account):
    acc = account()
    for username, password in [(gateway.username, "wrong"), ("someone", gateway.password), ("", "")]:
        client = Terminal(live_server.url, gateway.code, username, password)
        status, headers, body = client.call(command="check", txn_id="11", account=acc.number, sum="10.00")
        assert status == 401 and "Basic" in headers["WWW-Authenticate"], body
        assert ET.fromstring(body).find("result").text == "300"
    request = urllib.request.Request(f"{live_server.url}/api/v1/terminals/{gateway.code}/?command=check&txn_id=1")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(request, timeout=30)
    assert exc.value.code == 401
    other = Terminal(live_server.url, "NOPE", gateway.username, gateway.password)
    assert other.call(command="check", txn_id="11", account=acc.number, sum="1")[0] == 401
    assert TerminalTransaction.objects.count() == 0 and Payment.objects.count() == 0


def test_a_staff_token_is_not_a_gateway_credential(live_server, gateway, account, make_user):
    from tarifa.identity import services as identity

    user = make_user(superuser=True)
    _token, secret = identity.issue_token(actor=user, user=user, name="t")
    request = urllib.request.Request(f"{live_server.url}/api/v1/terminals/{gateway.code}/?command=status&txn_id=1",
                                     headers={"Authorization": f"Bearer {secret}"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(request, timeout=30)
    assert exc.value.code == 401


def test_a_disallowed_address_is_refused(live_server, gateway, account):
    acc = account()
    services.update_gateway(gateway, actor="test", allowed_ips=["10.0.0.0/8", "192.168.1.7"])
    client = Terminal(live_server.url, gateway.code, gateway.username, gateway.password)
    status, _h, body = client.call(command="check", txn_id="12", account=acc.number, sum="10.00")
    assert status == 403 and "127.0.0.1" in body
    assert TerminalTransaction.objects.count() == 0
    services.update_gateway(gateway, actor="test", allowed_ips=["127.0.0.0/8"])
    status, _h, _body = client.call(command="check", txn_id="12", account=acc.number, sum="10.00")
    assert status == 200


def test_rotated_credentials_replace_the_old_ones(live_server, gateway, account):
    acc = account()
    issued = services.rotate_credentials(gateway, actor="test")
    old = Terminal(live_server.url, gateway.code, gateway.username, gateway.password)
    new = Terminal(live_server.url, gateway.code, issued["username"], issued["password"])
    assert old.call(command="check", txn_id="13", account=acc.number, sum="1")[0] == 401
    assert new.call(command="check", txn_id="13", account=acc.number, sum="1")[0] == 200


def test_concurrent_duplicate_pays_book_once(terminal, account):
    acc = account()
    terminal.xml(command="check", txn_id="14", account=acc.number, sum="25.00")
    answers = []

    def pay():
        answers.append(terminal.xml(command="pay", txn_id="14", txn_date="20260115103000", account=acc.number,
                                    sum="25.00")[1])

    threads = [threading.Thread(target=pay) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {a["result"] for a in answers} == {"0"} and len({a["prv_txn"] for a in answers}) == 1
    assert Payment.objects.count() == 1 and balance(acc) == Decimal("25")
