"""Amounts a person reads are in the currency's units (issue 10): lists, details, CSV exports and the
customer's accounts panel show 4.03, the precise 4.032258 stays in the title and the API."""

import csv
import io
import re

import pytest

from . import factories as f

pytestmark = pytest.mark.usefixtures("ledger_ok")


@pytest.fixture
def ui(staff_client, admin_user):
    return staff_client(admin_user)


def visible(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def test_lists_details_and_exports_show_the_currencys_units(ui, api, admin_user):
    account = f.account()
    payment = f.pay(account, "4.032258")
    f.charge(account, "1.6338")

    html = ui.get("/ledger/transfer/").content.decode()
    assert ">4.03<" in html and ">1.63<" in html  # the currency has its own column
    assert "4.032258" not in visible(html) and "1.6338" not in visible(html)

    detail = ui.get(f"/ledger/billingaccount/{account.pk}/").content.decode()
    assert "2.40" in visible(detail) and "2.398458" not in visible(detail)  # balance 4.032258 − 1.6338
    accounts = ui.get("/ledger/billingaccount/").content.decode()
    assert ">2.40<" in accounts and "2.398458" not in visible(accounts)

    rows = list(csv.reader(io.StringIO(b"".join(ui.get("/ledger/transfer/?export=csv").streaming_content).decode())))
    amount = rows[0].index("Amount")
    assert {r[amount] for r in rows[1:]} == {"4.03", "1.63"}

    # the precise amount stays in the API (and in the page's title attributes)
    assert api(admin_user).get(f"/api/v1/transfers/{payment.pk}/").json()["amount"] == "4.032258"
    assert 'title="4.032258 USD"' in ui.get("/ledger/transfer/").content.decode()


def test_an_accounts_transfers_show_the_service_day_and_a_running_balance(ui):
    account = f.account()
    f.pay(account, "10")
    f.charge(account, "1.6338", tags={"period": "2026-03-05"})
    f.charge(account, "2.005", tags={"period": "2026-03-06"})

    html = ui.get(f"/ledger/billingaccount/{account.pk}/").content.decode()
    days = re.findall(r'data-testid="service-day">([^<]*)<', html)
    after = [visible(a).strip() for a in re.findall(r'data-testid="balance-after">(.*?)</td>', html)]
    assert days == ["2026-03-06", "2026-03-05", ""]  # newest first; a payment has no service day
    assert after == ["6.36", "8.37", "10.00"]  # 10 − 1.6338 − 2.005 = 6.3612; 10 − 1.6338 = 8.3662
