"""Delivery channels: e-mail through Django's mail backend (SMTP), SMS through an adapter.

Where nothing is configured (no SMTP host; TARIFA_SMS_BACKEND unset or `outbox`), messages go
to the local outbox instead (`destination()`; services.deliver_now keeps them as OutboxMessage).

SMS adapters are chosen by TARIFA_SMS_BACKEND (environment or settings):
- `log`: kept in `sent_log` in memory (tests; nothing leaves the machine);
- `http`: a simple HTTP gateway: POST JSON {"to", "from", "text"} to TARIFA_SMS_HTTP_URL,
  with `Authorization: Bearer TARIFA_SMS_HTTP_TOKEN` when set; 2xx is success and the
  JSON body's `id` (if any) is the provider's message id;
- `smpp`: an SMPP 3.4 client (bind_transmitter, submit_sm, unbind) to TARIFA_SMPP_HOST:
  TARIFA_SMPP_PORT with TARIFA_SMPP_SYSTEM_ID / TARIFA_SMPP_PASSWORD.
Every sender raises `DeliveryError` on failure; the caller retries.
"""

import json
import os
import socket
import struct
import urllib.error
import urllib.request

from django.conf import settings
from django.core.mail import EmailMessage

sent_log: list[dict] = []


class DeliveryError(Exception):
    pass


def setting(name, default=""):
    return getattr(settings, name, None) or os.environ.get(name, default)


OUTBOX = "outbox"
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def destination(channel: str) -> str:
    """`outbox` when nothing is configured to send `channel` with, else `send`.

    E-mail: `TARIFA_EMAIL_DELIVERY` (`outbox` or `send`) decides when set; otherwise the SMTP
    backend without a host (`TARIFA_EMAIL_HOST` / EMAIL_HOST empty: the embedded default) is
    the outbox. SMS: TARIFA_SMS_BACKEND unset or `outbox`."""
    if channel == "email":
        mode = setting("TARIFA_EMAIL_DELIVERY", "")
        if mode in (OUTBOX, "send"):
            return mode
        return OUTBOX if settings.EMAIL_BACKEND == SMTP_BACKEND and not settings.EMAIL_HOST else "send"
    return OUTBOX if setting("TARIFA_SMS_BACKEND", OUTBOX) == OUTBOX else "send"


def send_email(*, to: str, subject: str, body: str, attachments=()) -> str:
    """`attachments`: (file name, bytes, MIME type) tuples, e.g. an invoice's PDF."""
    message = EmailMessage(subject=subject, body=body, to=[to],
                           from_email=setting("TARIFA_NOTIFY_FROM_EMAIL", settings.DEFAULT_FROM_EMAIL))
    for name, content, mimetype in attachments:
        message.attach(name, content, mimetype)
    message.extra_headers["Message-ID"] = message.message()["Message-ID"]
    try:
        if message.send() != 1:
            raise DeliveryError("the mail backend did not send the message")
    except (OSError, ConnectionError) as exc:
        raise DeliveryError(f"SMTP: {exc}") from exc
    return message.extra_headers["Message-ID"]


def send_sms(*, to: str, text: str) -> str:
    backend = setting("TARIFA_SMS_BACKEND", "log")  # (unset: the outbox, see destination())
    sender = setting("TARIFA_SMS_FROM", "Tarifa")
    if backend == "log":
        sent_log.append({"to": to, "text": text, "from": sender})
        return f"log-{len(sent_log)}"
    if backend == "http":
        return HttpSmsGateway(setting("TARIFA_SMS_HTTP_URL"), setting("TARIFA_SMS_HTTP_TOKEN")).send(to, text, sender)
    if backend == "smpp":
        client = SmppClient(setting("TARIFA_SMPP_HOST", "127.0.0.1"), int(setting("TARIFA_SMPP_PORT", "2775")),
                            setting("TARIFA_SMPP_SYSTEM_ID"), setting("TARIFA_SMPP_PASSWORD"))
        return client.send(to, text, sender)
    raise DeliveryError(f"unknown SMS backend {backend!r}")


class HttpSmsGateway:
    def __init__(self, url: str, token: str = "", timeout: float = 10):
        if not url:
            raise DeliveryError("TARIFA_SMS_HTTP_URL is not set")
        self.url, self.token, self.timeout = url, token, timeout

    def send(self, to: str, text: str, sender: str) -> str:
        request = urllib.request.Request(self.url, data=json.dumps({"to": to, "from": sender, "text": text}).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (operator's URL)
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"SMS gateway answered {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise DeliveryError(f"SMS gateway: {exc}") from exc
        try:
            return str(json.loads(raw or b"{}").get("id", ""))
        except (ValueError, AttributeError):
            return ""


# SMPP 3.4 -------------------------------------------------------------------------------------
BIND_TRANSMITTER, BIND_TRANSMITTER_RESP = 0x00000002, 0x80000002
SUBMIT_SM, SUBMIT_SM_RESP = 0x00000004, 0x80000004
UNBIND, UNBIND_RESP = 0x00000006, 0x80000006
GENERIC_NACK = 0x80000000
MESSAGE_PAYLOAD_TAG = 0x0424


def cstr(value: str) -> bytes:
    return value.encode("ascii", "replace") + b"\0"


def pdu(command_id: int, sequence: int, body: bytes = b"", status: int = 0) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, sequence) + body


def read_pdu(sock) -> tuple[int, int, int, bytes]:
    header = _read_exact(sock, 16)
    length, command_id, status, sequence = struct.unpack(">IIII", header)
    return command_id, status, sequence, _read_exact(sock, length - 16)


def _read_exact(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise DeliveryError("SMPP: connection closed")
        data += chunk
    return data


def encode_text(text: str) -> tuple[int, bytes]:
    """(data_coding, bytes): plain ASCII as the SMSC default alphabet, anything else as UCS-2."""
    try:
        return 0x00, text.encode("ascii")
    except UnicodeEncodeError:
        return 0x08, text.encode("utf-16-be")


class SmppClient:
    """A small synchronous SMPP 3.4 transmitter: one connection per send (notifications are few)."""

    def __init__(self, host: str, port: int, system_id: str, password: str, timeout: float = 10):
        self.host, self.port, self.system_id, self.password, self.timeout = host, port, system_id, password, timeout
        self.sequence = 0

    def _call(self, sock, command_id, body, expect):
        self.sequence += 1
        sock.sendall(pdu(command_id, self.sequence, body))
        got, status, _seq, resp = read_pdu(sock)
        if got not in (expect, GENERIC_NACK) or status != 0 or got == GENERIC_NACK:
            raise DeliveryError(f"SMPP: command 0x{command_id:08x} refused (0x{got:08x}, status {status})")
        return resp

    def send(self, to: str, text: str, sender: str) -> str:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
                bind = (cstr(self.system_id) + cstr(self.password) + cstr("") + bytes([0x34, 0, 0]) + cstr(""))
                self._call(sock, BIND_TRANSMITTER, bind, BIND_TRANSMITTER_RESP)
                coding, payload = encode_text(text)
                body = (cstr("") + bytes([5, 0]) + cstr(sender[:20]) + bytes([1, 1]) + cstr(to.lstrip("+"))
                        + bytes([0, 0, 0]) + cstr("") + cstr("") + bytes([0, 0, coding, 0]))
                if len(payload) <= 254:
                    body += bytes([len(payload)]) + payload
                else:
                    body += bytes([0]) + struct.pack(">HH", MESSAGE_PAYLOAD_TAG, len(payload)) + payload
                resp = self._call(sock, SUBMIT_SM, body, SUBMIT_SM_RESP)
                try:
                    self._call(sock, UNBIND, b"", UNBIND_RESP)
                except DeliveryError:
                    pass  # the message is accepted; a failed unbind loses nothing
                return resp.rstrip(b"\0").decode("ascii", "replace")
        except OSError as exc:
            raise DeliveryError(f"SMPP: {exc}") from exc
