"""Delivery without a mail server, and failures an operator sees (issue 10, item 13).

- No SMTP settings (the embedded default): e-mail goes to the local outbox, read in the UI and the
  API; so does SMS without an SMS gateway. Nothing is retried.
- With settings: a real SMTP server on loopback (aiosmtpd) receives it; a closed port is retried
  with backoff a bounded number of times, then the notification is failed, its last job is failed
  (the Jobs screen counts it) and the dashboard shows the count.
"""

import datetime as dt

import pytest
from aiosmtpd.controller import Controller
from django.test import override_settings

from tarifa.crm import services as crm
from tarifa.integrations import demo, services, tasks
from tarifa.integrations.models import OutboxMessage
from tarifa.kernel import clock
from tarifa.ledger import services as ledger

from .test_notifications import Inbox, free_port

pytestmark = pytest.mark.django_db
SMTP = "django.core.mail.backends.smtp.EmailBackend"


def customer(preferred="email"):
    c = crm.create_customer(actor="test", kind="individual", first_name="Olga", last_name="Berg",
                            preferred_channel=preferred,
                            contacts=[{"kind": "email", "value": "olga@example.com"},
                                      {"kind": "phone", "value": "+15550199"}])
    return c, ledger.open_account(actor="test", customer=c, currency="USD")


def notify(c, account, source="e1"):
    return services.notify(event="payment_received", customer=c, source_event=source,
                            context={"amount": "5.00", "currency": "USD", "account": account, "balance": "5.00"})


@override_settings(EMAIL_BACKEND=SMTP, EMAIL_HOST="", TARIFA_SMS_BACKEND="")
def test_without_smtp_settings_email_and_sms_go_to_the_local_outbox(admin_user, staff_client, api):
    demo.load(actor="test")
    c, account = customer("email")
    note = services.deliver_now(notify(c, account).pk)
    assert (note.status, note.attempts, note.next_attempt_at) == ("outbox", 1, None)
    message = OutboxMessage.objects.get(notification=note)
    assert (message.channel, message.recipient, message.subject) == ("email", "olga@example.com", "Payment received")
    assert "5.00 USD" in message.body
    sms_customer, sms_account = customer("sms")
    sms = services.deliver_now(notify(sms_customer, sms_account, "e2").pk)
    assert sms.status == "outbox" and OutboxMessage.objects.get(notification=sms).recipient == "+15550199"

    browser = staff_client(admin_user)
    listing = browser.get("/integrations/outboxmessage/")
    assert listing.status_code == 200 and "olga@example.com" in listing.content.decode()
    detail = browser.get(f"/integrations/outboxmessage/{message.pk}/").content.decode()
    assert "Payment received" in detail and "5.00 USD" in detail
    answer = api(admin_user).get("/api/v1/outbox/")
    assert answer.status_code == 200
    rows = answer.json()["results"]
    assert {r["recipient"] for r in rows} == {"olga@example.com", "+15550199"}
    assert any("5.00 USD" in r["body"] for r in rows)
    dashboard = browser.get("/").content.decode()
    assert "Local outbox" in dashboard


def test_with_smtp_settings_a_real_server_receives_it():
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with override_settings(EMAIL_BACKEND=SMTP, EMAIL_HOST="127.0.0.1", EMAIL_PORT=port, EMAIL_TIMEOUT=5):
            demo.load(actor="test")
            c, account = customer("email")
            note = services.deliver_now(notify(c, account).pk)
    finally:
        controller.stop()
    assert note.status == "sent" and not OutboxMessage.objects.filter(notification=note).exists()
    [(to, message)] = [(to, m) for to, m in inbox.messages if m["Subject"] == "Payment received"]
    assert to == ["olga@example.com"]


def test_a_closed_smtp_port_fails_after_bounded_retries_visibly(admin_user, staff_client):
    from procrastinate.contrib.django.models import ProcrastinateJob

    port = free_port()  # nothing listens
    with override_settings(EMAIL_BACKEND=SMTP, EMAIL_HOST="127.0.0.1", EMAIL_PORT=port, EMAIL_TIMEOUT=2), \
            clock.travel_to(dt.datetime(2026, 3, 1, 9, tzinfo=dt.timezone.utc)) as c:
        demo.load(actor="test")
        cust, account = customer("email")
        note = notify(cust, account)
        delays = []
        for attempt in range(1, services.MAX_ATTEMPTS):
            tasks.deliver(notification_id=str(note.pk))  # the job: an attempt that will be retried succeeds
            note.refresh_from_db()
            assert (note.status, note.attempts) == ("retrying", attempt)
            delays.append(note.next_attempt_at - clock.now())
            c.add(note.next_attempt_at - clock.now())
        assert delays == [dt.timedelta(minutes=2 ** i) for i in range(services.MAX_ATTEMPTS - 1)]  # 1, 2, 4, 8
        with pytest.raises(services.DeliveryFailed, match="SMTP"):
            tasks.deliver(notification_id=str(note.pk))  # the last attempt: the job fails
        note.refresh_from_db()
        assert (note.status, note.attempts, note.next_attempt_at) == ("failed", services.MAX_ATTEMPTS, None)
        assert "SMTP" in note.last_error
        # No further attempt is scheduled: the retries are bounded.
        tasks.deliver(notification_id=str(note.pk))
        note.refresh_from_db()
        assert note.attempts == services.MAX_ATTEMPTS
        scheduled = ProcrastinateJob.objects.filter(task_name="integrations.deliver", status="todo")
        assert scheduled.count() == services.MAX_ATTEMPTS  # the first job and one per retry; none after failing
    page = staff_client(admin_user).get("/").content.decode()
    assert "Notifications failed" in page
    from tarifa.web.dashboard import widgets

    class Request:
        user = admin_user

    shown = {w["label"]: w for w in widgets(Request())}
    assert shown["Notifications failed"]["value"] == 1


@override_settings(EMAIL_BACKEND=SMTP, EMAIL_HOST="", TARIFA_SMS_BACKEND="")
def test_amounts_in_messages_are_in_the_currencys_units():
    from decimal import Decimal

    demo.load(actor="test")
    c, account = customer("sms")
    note = services.notify(event="payment_received", customer=c, source_event="units",
                           context={"amount": "4.032258", "currency": "USD", "account": account,
                                    "balance": Decimal("-1.6338000000")})
    assert "We received 4.03 USD" in note.body and "Balance: -1.63 USD" in note.body
    assert "4.032258" not in note.body and "1.6338" not in note.body
