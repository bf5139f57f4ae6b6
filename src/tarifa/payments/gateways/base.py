"""The interface every online card provider adapter implements.

A card payment runs in three steps:

1. `create_payment(checkout, notify_url=…, return_url=…)` → the URL of the provider's
   hosted checkout page, where we send the customer (we never see card numbers);
2. the customer pays there; the provider redirects them to `return_url`;
3. the provider calls our webhook (`notify_url`) with the outcome; `parse_webhook`
   verifies the signature (raising InvalidSignature / StaleWebhook, so nothing is
   written) and returns a WebhookEvent, which services.cards applies once.

For automatic payments an adapter may also `charge_token` (a stored card, server to
server). Adapters hold no state and write nothing: services.cards does the writing.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class WebhookEvent:
    kind: str  # "payment.succeeded" | "payment.failed"
    order_id: str  # our CardCheckout id
    provider_txn_id: str
    amount: Decimal
    currency: str
    card_token: str = ""
    card_label: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ChargeResult:
    succeeded: bool
    provider_txn_id: str = ""
    reason: str = ""


class GatewayAdapter(ABC):
    name = ""

    def __init__(self, gateway):
        self.gateway = gateway

    @abstractmethod
    def create_payment(self, checkout, *, notify_url: str, return_url: str) -> str:
        """The URL of the hosted checkout page for `checkout` (a CardCheckout)."""

    @abstractmethod
    def parse_webhook(self, headers, body: bytes) -> WebhookEvent:
        """Verify and read a webhook call. Raises payments.errors.InvalidSignature,
        StaleWebhook or ValidationFailed (`invalid_webhook`)."""

    def charge_token(self, *, token: str, amount: Decimal, currency: str, order_id: str) -> ChargeResult:
        """Charge a stored card (automatic payments). `order_id` is an idempotency key at the provider."""
        raise NotImplementedError(f"{self.name} cannot charge stored cards")
