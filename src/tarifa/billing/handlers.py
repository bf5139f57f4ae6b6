"""Reactions to other apps' events (run by the events job, see kernel/events.py)."""

from tarifa.kernel.events import subscribe
from tarifa.ledger.models import BillingAccount


@subscribe("ledger.account_credited")
def allocate_and_reevaluate(event):
    """Money reached an account: allocate payments to its invoices (oldest first), then let
    dunning re-evaluate at once, clearing the steps the payment satisfied.

    Idempotent: allocation takes only what is still unallocated; dunning re-evaluates state.
    """
    if event.payload.get("kind") not in ("payment", "adjustment", "transfer", "voucher", "refund"):
        return
    account = BillingAccount.objects.filter(pk=event.payload.get("billing_account")).first()
    if account is None:
        return
    from . import dunning, services

    if event.payload.get("kind") == "payment":
        services.allocate_account(account=account, actor="system:payment")
    dunning.evaluate_account(account, actor="system:payment")
