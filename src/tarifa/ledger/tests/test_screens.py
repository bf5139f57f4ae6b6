"""Operator screens: lists, details, forms and actions, the customer panel and registration."""

import re
from decimal import Decimal

import pytest

from tarifa.crm.models import Customer
from tarifa.ledger import services
from tarifa.ledger.models import BillingAccount, Hold, Transfer

from . import factories as f

pytestmark = pytest.mark.usefixtures("ledger_ok")


@pytest.fixture
def operator(make_user):
    return make_user("ledger.view_billingaccount", "ledger.add_billingaccount", "ledger.change_billingaccount",
                     "ledger.adjust", "ledger.transfer_funds", "ledger.switch_payment_mode", "ledger.close_account",
                     "ledger.view_transfer", "ledger.reverse_transfer", "ledger.view_hold", "ledger.post_hold",
                     "ledger.void_hold", "ledger.view_ledgeraccount", "ledger.add_ledgeraccount", "crm.view_customer",
                     "crm.add_customer")


@pytest.fixture
def ui(staff_client, operator):
    return staff_client(operator)


def key_of(page):
    return re.search(r'name="idempotency_key" value="([^"]+)"', page.content.decode()).group(1)


def test_lists_and_details_render(ui):
    account = f.account()
    payment = f.pay(account, "12.5")
    hold = services.create_hold(actor="t", debit=account, credit=f.revenue(), amount="2", currency="USD",
                                idempotency_key="h")
    for url in ["/ledger/billingaccount/", f"/ledger/billingaccount/{account.pk}/", "/ledger/ledgeraccount/",
                f"/ledger/ledgeraccount/{account.ledger_account_id}/", "/ledger/transfer/",
                f"/ledger/transfer/{payment.pk}/", "/ledger/hold/", f"/ledger/hold/{hold.pk}/",
                "/ledger/billingaccount/?sort=-current_balance", "/ledger/ledgeraccount/?sort=current_balance",
                "/ledger/transfer/?kind=payment&account=cash:DESK1&date_from=2000-01-01&tag=channel",
                "/ledger/billingaccount/?export=csv"]:
        assert ui.get(url).status_code == 200, url
    page = ui.get(f"/ledger/billingaccount/{account.pk}/").content.decode()
    assert "12.50 USD" in page and "10.50" in page  # balance, available (2 held)


def test_open_account_and_edit_credit_limit(ui):
    customer = f.customer()
    r = ui.post("/ledger/billingaccount/add/", {"customer": customer.number, "currency": "EUR",
                                                "payment_mode": "postpaid", "credit_limit": "100"})
    assert r.status_code == 302
    account = BillingAccount.objects.get(customer=customer)
    assert (account.currency, account.payment_mode, account.credit_limit) == ("EUR", "postpaid", Decimal(100))
    r = ui.post(f"/ledger/billingaccount/{account.pk}/edit/", {"credit_limit": "-5"})
    assert r.status_code == 200 and "Zero or more" in r.content.decode()
    assert ui.post(f"/ledger/billingaccount/{account.pk}/edit/", {"credit_limit": "250"}).status_code == 302
    account.refresh_from_db()
    assert account.credit_limit == Decimal(250)


def test_adjust_submitted_twice_moves_money_once(ui):
    account = f.account()
    url = f"/ledger/billingaccount/{account.pk}/do/adjust/"
    key = key_of(ui.get(url))
    body = {"amount": "7.25", "reason": "goodwill", "idempotency_key": key}
    assert ui.post(url, body).status_code == 302
    assert ui.post(url, body).status_code == 302
    assert f.balance(account) == Decimal("7.25")
    r = ui.post(url, {"amount": "1.5.5", "reason": "x", "idempotency_key": key_of(ui.get(url))})
    assert r.status_code == 200 and "Not a decimal number" in r.content.decode()


def test_transfer_switch_close_actions(ui):
    source = f.account()
    target = f.account(source.customer)
    f.pay(source, "5")
    url = f"/ledger/billingaccount/{source.pk}/do/transfer/"
    page = ui.get(url)
    assert target.number in page.content.decode()
    r = ui.post(url, {"target": str(target.pk), "amount": "5", "reason": "merge", "idempotency_key": key_of(page)})
    assert r.status_code == 302
    assert ui.post(f"/ledger/billingaccount/{source.pk}/do/switch-mode/",
                   {"payment_mode": "postpaid"}).status_code == 302
    assert ui.post(f"/ledger/billingaccount/{source.pk}/do/close/", {"reason": "merged"}).status_code == 302
    source.refresh_from_db()
    assert (source.payment_mode, source.status) == ("postpaid", "closed")
    r = ui.post(f"/ledger/billingaccount/{target.pk}/do/close/", {})
    assert r.status_code == 200 and "balance" in r.content.decode()


def test_reverse_transfer_action(ui, make_user, staff_client):
    account = f.account()
    payment = f.pay(account, "3")
    url = f"/ledger/transfer/{payment.pk}/do/reverse/"
    r = ui.post(url, {"reason": "wrong account", "idempotency_key": key_of(ui.get(url))})
    assert r.status_code == 302
    assert Transfer.objects.filter(reverses=payment).exists() and f.balance(account) == 0
    assert "reversed-by" in ui.get(f"/ledger/transfer/{payment.pk}/").content.decode()
    assert ui.get(url).status_code == 302  # no longer available: back to the transfer


def test_action_needs_its_permission(make_user, client):
    account = f.account()
    client.force_login(make_user("ledger.view_billingaccount"))
    assert client.get(f"/ledger/billingaccount/{account.pk}/do/adjust/").status_code == 403
    page = client.get(f"/ledger/billingaccount/{account.pk}/").content.decode()
    assert 'data-action="adjust"' not in page


def test_hold_post_and_void_actions(ui):
    account = f.account()
    f.pay(account, "10")
    a = services.create_hold(actor="t", debit=account, credit=f.revenue(), amount="4", currency="USD",
                             idempotency_key="ha")
    b = services.create_hold(actor="t", debit=account, credit=f.revenue(), amount="3", currency="USD",
                             idempotency_key="hb")
    url = f"/ledger/hold/{a.pk}/do/post/"
    assert ui.post(url, {"amount": "", "idempotency_key": key_of(ui.get(url))}).status_code == 302
    assert ui.post(f"/ledger/hold/{b.pk}/do/void/", {"reason": "dropped"}).status_code == 302
    assert dict(Hold.objects.values_list("idempotency_key", "state")) == {"ha": "posted", "hb": "voided"}
    assert f.balance(account) == Decimal(6)


def test_system_account_add(ui):
    assert ui.post("/ledger/ledgeraccount/add/", {"code": "cash:DESK7", "currency": "USD", "name": "Desk 7"}) \
        .status_code == 302
    r = ui.post("/ledger/ledgeraccount/add/", {"code": "customer:X", "currency": "USD"})
    assert r.status_code == 200


def test_customer_registration_form_opens_the_first_account(ui):
    r = ui.post("/crm/customer/add/", {"kind": "individual", "first_name": "Alan", "last_name": "Turing",
                                       "email": "alan@example.com", "currency": "EUR", "payment_mode": "postpaid",
                                       "credit_limit": "20"})
    assert r.status_code == 302, r.content.decode()[:2000]
    customer = Customer.objects.get(last_name="Turing")
    (account,) = customer.billing_accounts.all()
    assert (account.currency, account.payment_mode, account.credit_limit) == ("EUR", "postpaid", Decimal(20))
    assert customer.contacts.filter(value="alan@example.com").exists()
    edit = ui.get(f"/crm/customer/{customer.pk}/edit/").content.decode()
    assert 'name="credit_limit"' not in edit


def test_customer_page_shows_the_billing_accounts_panel(ui):
    account = f.account()
    f.pay(account, "42")
    f.charge(account, "2")
    page = ui.get(f"/crm/customer/{account.customer_id}/").content.decode()
    assert 'data-panel="ledger.accounts"' in page and account.number in page
    assert "40.00" in page and "Recent charges and payments" in page


def run_queued_tasks():
    """What a worker does with the queued background tasks (their jobs are in procrastinate's table)."""
    from tarifa.web import background
    from tarifa.web.models import BackgroundTask

    for task in BackgroundTask.objects.filter(state="queued").order_by("created_at"):
        background.run(task.pk)


def test_ledger_check_page_starts_a_background_task(ui, make_user, client):
    """Issue 10 item 20: the check ran inside the request (minutes on 2 M transfers). The page now
    starts a task and opens its page; the worker runs it with progress; the report is its result
    and the check page's "last report"."""
    from unittest import mock

    from procrastinate.contrib.django.models import ProcrastinateJob

    account = f.account()
    f.pay(account, "3")
    with mock.patch("tarifa.ledger.selectors.check_ledger", side_effect=AssertionError("ran in the request")):
        page = ui.get("/ledger/check/")
        assert page.status_code == 200 and b'data-testid="ledger-check-result"' not in page.content
        assert b"No check has run yet" in page.content
        assert b'data-testid="ledger-check-result"' not in ui.get("/ledger/check/?run=1").content
        started = ui.post("/ledger/check/")
    assert started.status_code == 302 and started["Location"].startswith("/tasks/")
    job = ProcrastinateJob.objects.get(task_name="web.run_background_task")
    assert job.status == "todo" and job.queue_name == "tasks"
    waiting = ui.get(started["Location"]).content.decode()
    assert 'data-state="queued"' in waiting and "hx-trigger" in waiting
    assert ui.post("/ledger/check/")["Location"] == started["Location"]  # one under way: that one

    steps = []
    from tarifa.web import background

    real = background.Progress.__call__

    def spy(self, percent, text=""):
        steps.append((int(percent), text))
        return real(self, percent, text)

    with mock.patch.object(background.Progress, "__call__", spy):
        run_queued_tasks()
    assert [t for _p, t in steps][:3] == ["totals", "account_totals", "debits_equal_credits"]
    assert [p for p, _t in steps] == sorted(p for p, _t in steps) and steps[-1][0] < 100

    done = ui.get(started["Location"]).content.decode()
    assert 'data-state="succeeded"' in done and "hx-trigger" not in done
    assert 'data-testid="ledger-check-result"' in done and "OK" in done and "1 transfers" in done
    again = ui.get("/ledger/check/").content.decode()
    assert 'data-testid="ledger-check-result"' in again and "Last report" in again
    client.force_login(make_user("ledger.view_billingaccount"))
    assert client.get("/ledger/check/").status_code == 403
    assert client.post("/ledger/check/").status_code == 403
    assert client.get(started["Location"]).status_code == 403  # another user's task


def test_registering_a_customer_opens_no_account_for_a_user_who_may_not_open_accounts(make_user, staff_client):
    """Issue 10 item 14: the clerk registers the customer; the account is left to someone who may
    open it, and the page says so. With the right, the first account is opened as before."""
    from tarifa.ledger import services as ledger_services
    from tarifa.testing.forms import initial_post_data

    from tarifa.kernel.errors import DomainError

    clerk_user = make_user("crm.add_customer", "crm.view_customer", username="clerk", password=None)
    clerk = staff_client(clerk_user)
    form = clerk.get("/crm/customer/add/").context["form"]
    assert not {"currency", "payment_mode", "credit_limit"} & set(form.fields)
    r = clerk.post("/crm/customer/add/", initial_post_data(form, kind="individual", first_name="Ada",
                                                           last_name="Clerk"), follow=True)
    customer = Customer.objects.get(last_name="Clerk")
    assert not customer.billing_accounts.exists()
    assert "No billing account was opened" in r.content.decode()
    with pytest.raises(DomainError) as err:  # asking for account terms without the right: refused, nothing written
        ledger_services.register_customer(actor=clerk_user, kind="individual", first_name="Bo",
                                          last_name="Terms", currency="USD")
    assert err.value.code == "permission_denied" and not Customer.objects.filter(last_name="Terms").exists()

    opener = staff_client(make_user("crm.add_customer", "crm.view_customer", "ledger.add_billingaccount",
                                    username="opener", password=None))
    form = opener.get("/crm/customer/add/").context["form"]
    assert form["currency"].value() == "USD"
    r = opener.post("/crm/customer/add/", initial_post_data(form, kind="individual", first_name="Ada",
                                                            last_name="Opener"))
    assert r.status_code == 302
    (account,) = Customer.objects.get(last_name="Opener").billing_accounts.all()
    assert (account.currency, account.payment_mode) == ("USD", "prepaid")

