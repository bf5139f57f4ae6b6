"""A simulated card provider for demos and development — never for real money.

It speaks the reference protocol for checkouts and webhooks (so `tarifa payments
simulate-webhook` and the demo data exercise the real signature checks), and "charges"
stored cards locally: every charge succeeds with the transaction id `SIM-<order>`, the
same for a repeated order, as a real provider's idempotent charge API answers.
"""

from .base import ChargeResult
from .reference import ReferenceAdapter


class SimulatedAdapter(ReferenceAdapter):
    name = "simulated"

    def charge_token(self, *, token, amount, currency, order_id) -> ChargeResult:
        if token.startswith("declined"):
            return ChargeResult(False, reason="card declined (simulated)")
        return ChargeResult(True, provider_txn_id=f"SIM-{order_id}")
