"""Reactions to other apps' events (run by the events job, see kernel/events.py)."""

from tarifa.kernel.events import subscribe
from tarifa.ledger.models import BillingAccount

from .thresholds import evaluate_account


@subscribe("ledger.account_credited")
def resume_when_paid(event):
    """A payment (or any credit) reached an account: resume what its funds now allow.

    Idempotent: evaluating the same balances twice changes nothing.
    """
    account = BillingAccount.objects.filter(pk=event.payload.get("billing_account")).first()
    if account is not None and account.is_active:
        evaluate_account(account, actor="system:payment")
