"""Online card provider adapters: `ADAPTERS[name](gateway)` speaks one provider's protocol."""

from .base import ChargeResult, GatewayAdapter, WebhookEvent  # noqa: F401
from .reference import ReferenceAdapter
from .simulated import SimulatedAdapter
from .testcards import TestProviderAdapter

ADAPTERS: dict[str, type[GatewayAdapter]] = {"reference": ReferenceAdapter, "simulated": SimulatedAdapter,
                                             "test": TestProviderAdapter}


def adapter_for(gateway) -> GatewayAdapter:
    return ADAPTERS[gateway.adapter or "reference"](gateway)
