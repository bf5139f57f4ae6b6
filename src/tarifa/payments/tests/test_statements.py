"""Bank statements: every line ends in one place, matched lines are booked once, the rest queue."""

from decimal import Decimal

import pytest

from tarifa.kernel.errors import DomainError
from tarifa.payments import services, statement_csv
from tarifa.payments.models import BankStatement, BankStatementLine, Payment

from .conftest import balance

HEADER = "date,amount,currency,reference,payer,bank_txn_id\n"


def csv(*lines):
    return (HEADER + "\n".join(lines) + "\n").encode()


def test_import_books_matched_lines_and_queues_the_rest(account):
    a, b = account(), account()
    content = csv(
        f"2026-01-10,120.00,USD,Payment for account {a.number},ACME,B-1",
        f"10.01.2026,35.50,USD,Customer {b.customer.number} January,J SMITH,B-2",
        "2026-01-10,80.00,USD,Invoice 117,UNKNOWN,B-3",
        f"2026-01-10,120.00,USD,Payment for account {a.number},ACME,B-1",
        "2026-01-10,abc,USD,garbled,?,B-4",
        "2026-01-10,-40.00,USD,Bank fee,BANK,B-5",
        "2026-01-10,5.00,XXX,odd currency,?,B-6",
        "2026-01-10,5.00,USD,no id,?,",
        f"2026-01-10,7.00,EUR,Payment for account {a.number},?,B-7",
    )
    statement = services.import_statement(actor="test", filename="jan.csv", content=content)
    states = dict(BankStatementLine.objects.filter(statement=statement).values_list("line_no", "state"))
    assert states == {2: "booked", 3: "booked", 4: "unmatched", 5: "duplicate", 6: "rejected", 7: "rejected",
                      8: "rejected", 9: "rejected", 10: "unmatched"}
    assert (statement.lines_read, statement.lines_booked, statement.lines_unmatched, statement.lines_duplicate,
            statement.lines_rejected) == (9, 2, 2, 1, 4)
    assert statement.lines_read == (statement.lines_booked + statement.lines_unmatched + statement.lines_duplicate
                                    + statement.lines_rejected)
    assert balance(a) == Decimal("120") and balance(b) == Decimal("35.50")
    booked = BankStatementLine.objects.get(statement=statement, line_no=2)
    assert booked.payment.channel == "bank_transfer" and booked.payment.idempotency_key == "bank:B-1"
    assert booked.payment.transfer.debit_account.code == "bank" and booked.payment.payer == "ACME"
    wrong_currency = BankStatementLine.objects.get(statement=statement, line_no=10)
    assert "EUR" in wrong_currency.reason or "currency" in wrong_currency.reason
    reasons = {line.line_no: line.reason for line in BankStatementLine.objects.filter(statement=statement)}
    assert "unreadable amount" in reasons[6] and "not a credit" in reasons[7] and "XXX" in reasons[8]
    assert "no bank transaction id" in reasons[9] and "already in" in reasons[5]


def test_a_statement_imported_twice_books_nothing_twice(account):
    a = account()
    content = csv(f"2026-01-10,10.00,USD,{a.number},X,T-1", "2026-01-10,3.00,USD,unknown,Y,T-2")
    services.import_statement(actor="test", filename="one.csv", content=content)
    payments = Payment.objects.count()
    again = services.import_statement(actor="test", filename="one-again.csv", content=content)
    assert (again.lines_read, again.lines_duplicate, again.lines_booked) == (2, 2, 0)
    assert Payment.objects.count() == payments and balance(a) == 10


def test_an_operator_assigns_or_ignores_unmatched_lines(account, make_user):
    a = account()
    statement = services.import_statement(actor="test", filename="q.csv", content=csv(
        "2026-01-10,15.00,USD,for my internet,Z,Q-1", "2026-01-10,2.00,USD,??,Z,Q-2"))
    first, second = BankStatementLine.objects.filter(statement=statement).order_by("line_no")
    operator = make_user("payments.resolve_statement_line")
    with pytest.raises(DomainError) as exc:
        services.assign_line(first, actor=make_user("payments.view_bankstatementline"), account=a.number)
    assert exc.value.code == "permission_denied"
    line = services.assign_line(first, actor=operator, account=a.number)
    assert line.state == "booked" and line.matched_by == operator.username and balance(a) == 15
    with pytest.raises(DomainError) as exc:
        services.assign_line(first, actor=operator, account=a.number)
    assert exc.value.code == "line_not_unmatched"
    with pytest.raises(DomainError) as exc:
        services.ignore_line(second, actor=operator, reason="")
    assert exc.value.code == "reason_required"
    assert services.ignore_line(second, actor=operator, reason="bank's own test transfer").state == "ignored"
    # The ignored id stays taken: it comes back as a duplicate, not as a new line to book.
    later = services.import_statement(actor="test", filename="r.csv", content=csv("2026-01-10,2.00,USD,??,Z,Q-2"))
    assert later.lines_duplicate == 1


@pytest.mark.parametrize("content, code", [
    (b"\xff\xfe\x00garbage", "statement_not_utf8"),
    (b"", "statement_empty"),
    (b"when,how much\n2026-01-01,1\n", "statement_bad_header"),
])
def test_unreadable_files_are_refused_whole(content, code):
    with pytest.raises(DomainError) as exc:
        services.import_statement(actor="test", filename="bad.csv", content=content)
    assert exc.value.code == code
    assert BankStatement.objects.count() == 0


def test_semicolons_and_decimal_commas_are_read():
    lines = statement_csv.parse(b"Date;Amount;Currency;Reference;Payer;Bank_Txn_Id\n15.01.2026;1 234,50;usd;x;y;Z1\n")
    assert lines[0].amount == Decimal("1234.50") and lines[0].currency == "USD" and not lines[0].error


def test_references_are_found_in_free_text():
    accounts, customers = statement_csv.references("pmt HQ-A0000012 and hq c0000003, also HQA0000013; HQ-A12")
    assert accounts == ["HQ-A0000012", "HQ-A0000013"] and customers == ["HQ-C0000003"]


def test_a_customer_with_several_accounts_is_not_guessed(account):
    from tarifa.ledger import services as ledger

    a = account()
    ledger.open_account(actor="test", customer=a.customer, currency="USD")
    statement = services.import_statement(actor="test", filename="c.csv",
                                          content=csv(f"2026-01-10,9.00,USD,{a.customer.number},Z,C-1"))
    line = statement.lines.get()
    assert line.state == "unmatched" and "2 open USD accounts" in line.reason


def test_statement_api_upload(api, make_user, account):
    from django.core.files.uploadedfile import SimpleUploadedFile

    a = account()
    user = make_user("payments.add_bankstatement", "payments.view_bankstatement", "payments.view_bankstatementline",
                     "payments.resolve_statement_line")
    client = api(user)
    upload = SimpleUploadedFile("s.csv", csv(f"2026-01-10,4.00,USD,{a.number},Z,U-1", "2026-01-10,1.00,USD,?,Z,U-2"))
    response = client.post("/api/v1/bank-statements/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.json()
    assert (response.json()["lines_booked"], response.json()["lines_unmatched"]) == (1, 1)
    queue = client.get("/api/v1/bank-statement-lines/?state=unmatched").json()
    assert queue["count"] == 1
    line_id = queue["results"][0]["id"]
    assigned = client.post(f"/api/v1/bank-statement-lines/{line_id}/assign/", {"account": a.number}, format="json")
    assert assigned.status_code == 200 and assigned.json()["state"] == "booked"
    assert balance(a) == 5
