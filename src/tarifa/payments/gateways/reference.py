"""The reference hosted-checkout protocol: a small, fully specified card provider protocol.

It is what a real provider adapter looks like, and what the end-to-end tests drive with
a fake provider over loopback. Specification (also in docs/payments.md):

Signing. Every signed message carries `ts` (Unix seconds) and a signature
`hex(HMAC-SHA256(secret, f"{ts}.{payload}"))`, where `secret` is the gateway's HMAC
secret (shared with the provider) and `payload` is the exact request body for POSTs, or
for the checkout URL the query string without `sig`, its parameters sorted by name and
URL-encoded. Receivers compare in constant time and refuse a `ts` more than 300 seconds
away from their clock.

1. Checkout: we send the customer to
   `GET {api_url}/checkout?amount=10.00&currency=USD&merchant=<gateway code>&notify_url=…&order=<checkout id>&return_url=…&save_card=0|1&ts=…&sig=…`.
2. Webhook: the provider POSTs to `notify_url` a JSON body
   `{"event": "payment.succeeded"|"payment.failed", "order": "<checkout id>", "txn_id": "<provider id>",
     "amount": "10.00", "currency": "USD", "card_token": "…", "card_label": "VISA •••• 4242", "reason": "…"}`
   with headers `X-Reference-Timestamp: <ts>` and `X-Reference-Signature: sha256=<signature>`.
   We answer 200 `{"status": "applied", "payment": "<number>"}` (also for a repeated
   call), 401 `invalid_signature` / `stale_webhook`, 400 `invalid_webhook`, 404
   `checkout_not_found`, 409 when the event disagrees with the checkout.
3. Stored cards: `POST {api_url}/api/charges` with the JSON body
   `{"merchant", "token", "amount", "currency", "order"}` signed as a webhook; the
   provider charges at most once per `order` and answers
   `{"status": "succeeded", "txn_id": "…"}` or `{"status": "declined", "reason": "…"}`.
"""

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal, InvalidOperation

from tarifa.kernel.clock import now
from tarifa.kernel.errors import ValidationFailed

from ..errors import InvalidSignature, StaleWebhook
from .base import ChargeResult, GatewayAdapter, WebhookEvent

TOLERANCE_SECONDS = 300
TIMESTAMP_HEADER = "X-Reference-Timestamp"
SIGNATURE_HEADER = "X-Reference-Signature"
EVENTS = ("payment.succeeded", "payment.failed")


def sign(secret: str, ts: str, payload: str | bytes) -> str:
    if isinstance(payload, str):
        payload = payload.encode()
    return hmac.new(secret.encode(), ts.encode() + b"." + payload, hashlib.sha256).hexdigest()


def canonical_query(params: dict) -> str:
    return urllib.parse.urlencode(sorted((k, str(v)) for k, v in params.items() if k != "sig"))


def verify(secret: str, ts: str, payload, signature: str, *, at: float | None = None,
           tolerance: int = TOLERANCE_SECONDS) -> None:
    """Raise unless `signature` signs (`ts`, `payload`) with `secret` and `ts` is within `tolerance` s."""
    expected = sign(secret, ts or "", payload)
    given = (signature or "").removeprefix("sha256=")
    if not secret or not hmac.compare_digest(expected.encode(), given.encode()):
        raise InvalidSignature("The webhook signature does not verify.")
    try:
        stamp = int(ts)
    except (TypeError, ValueError):
        raise StaleWebhook("The webhook timestamp is missing or malformed.") from None
    current = at if at is not None else now().timestamp()
    if abs(current - stamp) > tolerance:
        raise StaleWebhook(f"The webhook timestamp is more than {tolerance} s away from our clock.")


class ReferenceAdapter(GatewayAdapter):
    name = "reference"

    def create_payment(self, checkout, *, notify_url: str, return_url: str) -> str:
        params = {"merchant": self.gateway.code, "order": str(checkout.pk), "amount": f"{checkout.amount:.2f}",
                  "currency": checkout.currency, "notify_url": notify_url, "return_url": return_url,
                  "save_card": "1" if checkout.save_card else "0", "ts": str(int(now().timestamp()))}
        query = canonical_query(params)
        sig = sign(self.gateway.hmac_secret, params["ts"], query)
        return f"{self.gateway.api_url.rstrip('/')}/checkout?{query}&sig={sig}"

    def parse_webhook(self, headers, body: bytes) -> WebhookEvent:
        verify(self.gateway.hmac_secret, headers.get(TIMESTAMP_HEADER, ""), body, headers.get(SIGNATURE_HEADER, ""))
        try:
            data = json.loads(body)
            kind = data["event"]
            amount = Decimal(str(data["amount"]))
            if kind not in EVENTS or not isinstance(data["order"], str):
                raise ValueError(kind)
            return WebhookEvent(kind=kind, order_id=data["order"], provider_txn_id=str(data.get("txn_id") or "")[:100],
                                amount=amount, currency=str(data["currency"]),
                                card_token=str(data.get("card_token") or "")[:200],
                                card_label=str(data.get("card_label") or "")[:100],
                                reason=str(data.get("reason") or "")[:200])
        except (ValueError, KeyError, TypeError, InvalidOperation):
            raise ValidationFailed("The webhook body is not a reference-protocol event.", code="invalid_webhook") from None

    def charge_token(self, *, token: str, amount: Decimal, currency: str, order_id: str) -> ChargeResult:
        body = json.dumps({"merchant": self.gateway.code, "token": token, "amount": f"{amount:.2f}",
                           "currency": currency, "order": order_id}).encode()
        ts = str(int(time.time()))
        request = urllib.request.Request(
            f"{self.gateway.api_url.rstrip('/')}/api/charges", data=body, method="POST",
            headers={"Content-Type": "application/json", TIMESTAMP_HEADER: ts,
                     SIGNATURE_HEADER: f"sha256={sign(self.gateway.hmac_secret, ts, body)}"})
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return ChargeResult(False, reason=f"provider answered HTTP {exc.code}")
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            raise ConnectionError(f"provider unreachable: {exc}") from exc
        if answer.get("status") == "succeeded":
            return ChargeResult(True, provider_txn_id=str(answer.get("txn_id") or "")[:100])
        return ChargeResult(False, reason=str(answer.get("reason") or answer.get("status") or "declined")[:200])
