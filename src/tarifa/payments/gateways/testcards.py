"""The built-in TEST card provider: a hosted payment page served by Tarifa itself.

For an operator trying Tarifa (the embedded default and the demo data), and for tests: no
real money moves, and every page says TEST. It behaves as a real provider does, through the
same code paths:

1. `create_payment` signs a checkout link exactly like the reference protocol
   (gateways/reference.py), pointing at Tarifa's own page `/payments/test-card-provider/
   checkout/` on the host the webhook URL names;
2. the payer enters a test card number there (test_provider.py); the page verifies the
   link's signature (a link is valid for CHECKOUT_TTL, as long as the checkout);
3. the page then acts as the provider's back end: it POSTs the signed reference-protocol
   webhook over HTTP to the checkout's `notify_url` — Tarifa's own webhook endpoint — which
   verifies the signature and applies the payment once, as for any provider.

Test cards (any future expiry date, any 3-digit CVC):

| number              | outcome |
|---------------------|---------|
| 4242 4242 4242 4242 | approved (VISA) |
| 5555 5555 5555 4444 | approved (Mastercard) |
| 4000 0000 0000 0002 | declined: `payment.failed` "card declined" |
| 4000 0000 0000 9995 | declined: `payment.failed` "insufficient funds" |
| 4000 0000 0000 0119 | no answer: the provider never calls back; the checkout expires |
| any other number passing the Luhn check | approved |

The provider's transaction id is `TEST-<checkout id>`: paying one checkout twice sends the
same transaction, which the merchant applies once. Stored cards (automatic payments) are
charged locally as by the simulated adapter.

Disabled unless `TARIFA_TEST_CARD_PROVIDER` is on (the default for the embedded database,
DEBUG and tests): then creating a checkout is refused and the page answers 404.
"""

import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse

from tarifa.kernel.clock import now
from tarifa.kernel.errors import DomainError

from .reference import SIGNATURE_HEADER, TIMESTAMP_HEADER, canonical_query, sign
from .simulated import SimulatedAdapter

CHECKOUT_TTL_SECONDS = 30 * 60
ADAPTER = "test"


@dataclass(frozen=True)
class Outcome:
    kind: str  # "approved" | "declined" | "no_answer"
    reason: str = ""


SPECIAL_CARDS = {
    "4000000000000002": Outcome("declined", "card declined (test card)"),
    "4000000000009995": Outcome("declined", "insufficient funds (test card)"),
    "4000000000000119": Outcome("no_answer", "the issuer did not answer (test card)"),
}
TEST_CARDS = [
    ("4242 4242 4242 4242", "approved"),
    ("5555 5555 5555 4444", "approved"),
    ("4000 0000 0000 0002", "declined"),
    ("4000 0000 0000 9995", "declined (insufficient funds)"),
    ("4000 0000 0000 0119", "no answer: the checkout expires"),
]


def enabled() -> bool:
    return bool(getattr(settings, "TARIFA_TEST_CARD_PROVIDER", False))


def digits(number: str) -> str:
    return "".join(ch for ch in str(number or "") if not ch.isspace() and ch != "-")


def luhn_ok(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def outcome_for(number: str) -> Outcome:
    return SPECIAL_CARDS.get(number, Outcome("approved"))


def brand(number: str) -> str:
    if number.startswith("4"):
        return "VISA"
    if number[:2] in {"51", "52", "53", "54", "55"} or "2221" <= number[:4] <= "2720":
        return "Mastercard"
    if number[:2] in {"34", "37"}:
        return "AMEX"
    return "CARD"


def card_label(number: str) -> str:
    return f"{brand(number)} •••• {number[-4:]} (TEST)"


def event_for(params: dict, number: str, outcome: Outcome) -> dict:
    """The reference-protocol webhook body the provider sends for this payment attempt."""
    event = {"event": "payment.succeeded" if outcome.kind == "approved" else "payment.failed",
             "order": params["order"], "txn_id": f"TEST-{params['order']}", "amount": params["amount"],
             "currency": params["currency"], "card_label": card_label(number), "reason": outcome.reason}
    if outcome.kind == "approved" and params.get("save_card") == "1":
        event["card_token"] = f"tok_test_{secrets.token_hex(12)}"
    return event


def send_webhook(*, secret: str, notify_url: str, event: dict, timeout: float = 20) -> tuple[int, dict]:
    """POST the signed webhook to the merchant (Tarifa's own endpoint); (HTTP status, JSON answer).

    Only http(s) URLs (the link that carried it was signed by the merchant). Raises
    ConnectionError when the merchant cannot be reached."""
    if urllib.parse.urlsplit(notify_url).scheme not in ("http", "https"):
        raise ConnectionError(f"not an HTTP URL: {notify_url!r}")
    body = json.dumps(event).encode()
    ts = str(int(now().timestamp()))
    request = urllib.request.Request(notify_url, data=body, method="POST", headers={
        "Content-Type": "application/json", TIMESTAMP_HEADER: ts,
        SIGNATURE_HEADER: f"sha256={sign(secret, ts, body)}", "User-Agent": "tarifa-test-card-provider"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the merchant's URL)
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read() or b"{}")
        except ValueError:
            answer = {}
        return exc.code, answer
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        raise ConnectionError(f"the merchant's webhook did not answer: {exc}") from exc


class TestProviderAdapter(SimulatedAdapter):
    """Checkout links to Tarifa's own TEST payment page; webhooks and stored cards as the simulated adapter."""

    __test__ = False  # not a pytest class
    name = ADAPTER

    def create_payment(self, checkout, *, notify_url: str, return_url: str) -> str:
        if not enabled():
            raise DomainError("The built-in test card provider is switched off (TARIFA_TEST_CARD_PROVIDER).",
                              code="gateway_inactive", status=409)
        params = {"merchant": self.gateway.code, "order": str(checkout.pk), "amount": f"{checkout.amount:.2f}",
                  "currency": checkout.currency, "notify_url": notify_url, "return_url": return_url,
                  "save_card": "1" if checkout.save_card else "0", "ts": str(int(now().timestamp()))}
        query = canonical_query(params)
        sig = sign(self.gateway.hmac_secret, params["ts"], query)
        parts = urllib.parse.urlsplit(notify_url)
        origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
        return f"{origin}{reverse('payments:test_provider_checkout')}?{query}&sig={sig}"
