"""Demo: payments taken here for subscribers of another branch of the demo registry (one applied there, one
refused there, one still pending), and one payment another branch took for a subscriber here.

On a standalone installation nothing is ever sent: the demo records the payments as a branch would
(federation switched on for the demo's own transaction) and plays the owner's answers through the same
path the relay takes (`federation.services.acknowledged`), so the screens show every state. A federated
node gets none (its payments are real ones)."""

from django.test.utils import override_settings

from tarifa.federation import selectors as federation_selectors
from tarifa.federation import services as federation
from tarifa.federation.models import Node
from tarifa.kernel.money import default_currency
from tarifa.ledger.models import BillingAccount

from . import services
from .models import ForeignPayment, ReceivedPayment


def load(*, actor) -> dict:
    if federation_selectors.enabled():
        # A federated node (`tarifa federation demo`) takes real foreign payments; no made-up answers there.
        return {"foreign_payments": 0, "skipped": "federated node"}
    if ForeignPayment.objects.exists():
        return {}
    own = federation_selectors.own_code()
    peer = (Node.objects.filter(role=Node.Role.BRANCH, archived_at__isnull=True).exclude(code=own)
            .order_by("code").first())
    if peer is None:
        return {"foreign_payments": 0}
    currency = default_currency()
    made = []
    with override_settings(TARIFA_NODE_ROLE="branch"):
        for n, (amount, channel) in enumerate([("25.00", "cash"), ("10.00", "bank_transfer"), ("5.00", "cash")], 1):
            made.append(services.take_foreign_payment(
                actor=actor, account=f"{peer.code}-A{n:07d}", amount=amount, channel=channel, currency=currency,
                idempotency_key=f"demo-interbranch-{n}", payer=f"Demo payer {n}"))
        federation.number_messages(peer.code)
        answers = [{"payment": f"{peer.code}-P0000101", "payment_id": "", "account": made[0].account_number},
                   {"refused": {"code": "account_closed", "message": f"Account {made[1].account_number} is closed.",
                                "fields": {}}}]
        for fp, result in zip(made, answers, strict=False):
            message = fp.message
            message.refresh_from_db()
            federation.acknowledged(message, next_expected=message.stream_seq + 1, result=result)
    local = BillingAccount.objects.filter(status=BillingAccount.Status.ACTIVE, currency=currency).order_by("number").first()
    received = 0
    if local is not None and not ReceivedPayment.objects.exists():
        services.apply_received_payment(sender=peer.code, payload={
            "payment_id": "01930000-0000-7000-8000-000000000001", "number": f"{peer.code}-FP0000001",
            "account": local.number, "amount": "12.00", "currency": currency, "channel": "cash",
            "payer": "Visiting subscriber", "received_at": "2026-12-01T10:00:00+00:00"})
        received = 1
    return {"foreign_payments": len(made), "received_payments": received}
