"""Notifications: a real SMTP server on loopback (aiosmtpd), an HTTP SMS gateway, an SMPP SMSC."""

import datetime as dt
import email
import json
import socket
import socketserver
import struct
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from aiosmtpd.controller import Controller
from django.test import override_settings

from tarifa.crm import services as crm
from tarifa.integrations import demo, senders, services
from tarifa.integrations.models import Notification
from tarifa.kernel import clock
from tarifa.ledger import services as ledger
from tarifa.subscriptions import daily
from tarifa.subscriptions import services as subs
from tarifa.subscriptions.tests.helpers import make_catalog, pay, run_events

pytestmark = pytest.mark.django_db


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1",
                           EMAIL_PORT=port, EMAIL_USE_TLS=False, EMAIL_TIMEOUT=5):
        yield inbox
    controller.stop()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deliver_all():
    for note in Notification.objects.filter(status__in=["pending", "retrying"]):
        services.deliver_now(note.pk)


def customer_with(preferred="email", language="en"):
    customer = crm.create_customer(actor="test", kind="individual", first_name="Olga", last_name="Berg",
                                   preferred_channel=preferred, language=language,
                                   contacts=[{"kind": "email", "value": "olga@example.com"},
                                             {"kind": "phone", "value": "+15550199"}])
    account = ledger.open_account(actor="test", customer=customer, currency="EUR")
    return customer, account


def test_suspension_and_payment_are_emailed_through_a_real_smtp_server(smtp):
    with clock.travel_to(dt.datetime(2025, 1, 10, 9, tzinfo=dt.timezone.utc)) as c:
        demo.load(actor="test")
        tariffs = make_catalog()
        customer, account = customer_with("email")
        pay(account, "6.00")
        sub = subs.create_subscription(actor="test", billing_account=account, tariff=tariffs["NET-31"], login="olga",
                                       activate=True)  # 5.00 activation + 1.00 today: nothing left
        c.add_days(1)
        daily.run(as_of=c.today(), actor="test")  # the next day does not fit: suspended for balance
        sub.refresh_from_db()
        assert sub.status == "suspended"
        run_events()
        deliver_all()
        subjects = [m["Subject"] for _to, m in smtp.messages]
        assert "Service suspended" in subjects
        to, message = next((to, m) for to, m in smtp.messages if m["Subject"] == "Service suspended")
        assert to == ["olga@example.com"]
        assert sub.number in message.get_payload()
        pay(account, "50.00")
        run_events()
        deliver_all()
        subjects = [m["Subject"] for _to, m in smtp.messages]
        assert "Payment received" in subjects and "Service resumed" in subjects
        sent = Notification.objects.filter(customer=customer, status="sent")
        assert {n.event for n in sent} >= {"suspended", "payment_received", "resumed"}
        # A retried event handler notifies once.
        run_events()
        before = Notification.objects.count()
        from tarifa.kernel.models import DomainEvent

        event = DomainEvent.objects.filter(name="subscription.suspended").first()
        from tarifa.integrations.handlers import on_suspended

        on_suspended(event)
        assert Notification.objects.count() == before


@override_settings(TARIFA_SMS_BACKEND="log")
def test_preferred_sms_channel_and_the_log_backend():
    with clock.travel_to(dt.datetime(2025, 1, 10, 9, tzinfo=dt.timezone.utc)):
        demo.load(actor="test")
        customer, account = customer_with("sms")
        senders.sent_log.clear()
        note = services.notify(event="payment_received", customer=customer, source_event="e1",
                               context={"amount": "5", "currency": "EUR", "account": account, "balance": "5"})
        assert note.channel == "sms" and note.recipient == "+15550199"
        services.deliver_now(note.pk)
        note.refresh_from_db()
        assert note.status == "sent" and senders.sent_log[-1]["to"] == "+15550199"


def test_smtp_down_is_retried_with_backoff_then_failed():
    port = free_port()  # nothing listens there
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1",
                           EMAIL_PORT=port, EMAIL_TIMEOUT=2):
        demo.load(actor="test")
        customer, account = customer_with("email")
        note = services.notify(event="payment_received", customer=customer, source_event="e2",
                               context={"amount": "5", "currency": "EUR", "account": account, "balance": "5"})
        services.deliver_now(note.pk)
        note.refresh_from_db()
        assert note.status == "retrying" and note.attempts == 1 and note.next_attempt_at is not None
        assert "SMTP" in note.last_error
        for _ in range(services.MAX_ATTEMPTS):
            services.deliver_now(note.pk)
        note.refresh_from_db()
        assert note.status == "failed" and note.attempts == services.MAX_ATTEMPTS


def test_no_template_or_address_is_logged_as_skipped():
    customer = crm.create_customer(actor="test", kind="individual", first_name="No", last_name="Contact")
    note = services.notify(event="suspended", customer=customer, source_event="e3", context={})
    assert note.status == "skipped"


def test_http_sms_gateway():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.headers.get("Authorization"), body))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"id": "gw-1"}')

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        gw = senders.HttpSmsGateway(f"http://127.0.0.1:{server.server_port}/send", token="secret")
        assert gw.send("+15550199", "hello", "Tarifa") == "gw-1"
        assert received == [("Bearer secret", {"to": "+15550199", "from": "Tarifa", "text": "hello"})]
        with pytest.raises(senders.DeliveryError):
            senders.HttpSmsGateway(f"http://127.0.0.1:{free_port()}/send", timeout=2).send("+1", "x", "T")
    finally:
        server.shutdown()
        server.server_close()


class FakeSmsc(socketserver.BaseRequestHandler):
    submitted = []

    def handle(self):
        while True:
            try:
                command, _status, seq, body = senders.read_pdu(self.request)
            except senders.DeliveryError:
                return
            if command == senders.BIND_TRANSMITTER:
                self.request.sendall(senders.pdu(senders.BIND_TRANSMITTER_RESP, seq, b"SMSC\0"))
            elif command == senders.SUBMIT_SM:
                parts = body.split(b"\0")
                dest = parts[3][2:].decode() if len(parts) > 3 else ""
                FakeSmsc.submitted.append((dest, body))
                self.request.sendall(senders.pdu(senders.SUBMIT_SM_RESP, seq, b"msg-42\0"))
            elif command == senders.UNBIND:
                self.request.sendall(senders.pdu(senders.UNBIND_RESP, seq))
                return


def test_smpp_client_binds_submits_and_unbinds():
    server = socketserver.TCPServer(("127.0.0.1", 0), FakeSmsc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = senders.SmppClient("127.0.0.1", server.server_address[1], "tarifa", "pw")
        assert client.send("+15550199", "Баланс низкий", "Tarifa") == "msg-42"
        dest, body = FakeSmsc.submitted[-1]
        assert dest == "15550199"
        assert "Баланс низкий".encode("utf-16-be") in body
        assert struct.unpack(">B", body[body.index("Баланс".encode("utf-16-be")) - 1:][:1])[0] > 0
    finally:
        server.shutdown()
        server.server_close()


def test_templates_refuse_bad_syntax_and_duplicates():
    from tarifa.kernel.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as err:
        services.create_template(actor="test", event="resumed", channel="sms", body="{% if %}")
    assert err.value.code == "invalid_template"
    services.create_template(actor="test", event="resumed", channel="sms", body="ok")
    with pytest.raises(ValidationFailed):
        services.create_template(actor="test", event="resumed", channel="sms", body="again")


def test_api_lists_the_delivery_log(admin_user, api):
    customer, account = customer_with("sms")
    demo.load(actor="test")
    r = api(admin_user).get("/api/v1/notifications/")
    assert r.status_code == 200 and r.json()["count"] >= 1


# --- the template sandbox (issue 11, High 2) ------------------------------------------------------

@pytest.mark.parametrize("body", ['{% load static %}', '{% include "web/base.html" %}', '{% debug %}',
                                  '{% extends "web/base.html" %}'])
def test_templates_outside_the_sandbox_are_refused_with_the_tag_named(body, make_user, api):
    editor = make_user("integrations.add_notificationtemplate", username="writer", password=None)

    response = api(editor).post("/api/v1/notification-templates/", {
        "event": "resumed", "channel": "sms", "language": "en", "body": f"Hello {body}"}, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_template" and "is not allowed" in error["message"]
    assert error["fields"]["body"]


def test_a_notification_sees_only_plain_data_not_the_records_behind_it():
    customer, account = customer_with("sms")
    services.create_template(actor="test", event="payment_received", channel="sms", body=(
        "[{{ customer.display_name }}][{{ account.number }}][{{ customer.contacts.all }}]"
        "[{{ account.customer.document_number }}][{{ account.ledger_account.balance }}][{{ customer.pk }}]"))

    note = services.notify(event="payment_received", customer=customer, source_event="sandbox-test",
                           context={"account": account, "amount": "1.00", "currency": "EUR", "balance": "1.00"})

    assert note.body == f"[{customer.display_name}][{account.number}][][][][]"
