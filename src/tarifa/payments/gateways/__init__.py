"""Online card provider adapters: `ADAPTERS[name](gateway)` speaks one provider's protocol."""

from .base import ChargeResult, GatewayAdapter, WebhookEvent  # noqa: F401
from .reference import ReferenceAdapter

ADAPTERS: dict[str, type[GatewayAdapter]] = {"reference": ReferenceAdapter}


def adapter_for(gateway) -> GatewayAdapter:
    return ADAPTERS[gateway.adapter or "reference"](gateway)
