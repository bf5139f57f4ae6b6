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


@subscribe("subscription.terminated")
def final_invoice_on_termination(event):
    """The account's last live subscription ended: the customer leaves, so they get a final
    invoice at once for everything not yet invoiced (nothing is issued when nothing is left).

    Idempotent: a second delivery finds nothing left to invoice."""
    from tarifa.subscriptions.models import Subscription

    account = BillingAccount.objects.filter(pk=event.payload.get("billing_account")).first()
    if account is None:
        return
    if Subscription.objects.filter(billing_account=account).exclude(status=Subscription.Status.TERMINATED).exists():
        return
    from . import services

    services.final_invoice_if_due(account=account, actor="system:termination",
                                  reason=f"Final invoice: subscription {event.payload.get('number', '')} terminated"
                                         f"{': ' + event.payload['reason'] if event.payload.get('reason') else ''}")


@subscribe("ledger.account_closed")
def final_invoice_on_closure(event):
    """The account was closed: a final invoice for what is not yet invoiced, if anything."""
    account = BillingAccount.objects.filter(pk=event.payload.get("billing_account")).first()
    if account is None:
        return
    from . import services

    services.final_invoice_if_due(account=account, actor="system:account-closed",
                                  reason=f"Final invoice: account closed{': ' + event.payload['reason'] if event.payload.get('reason') else ''}")


@subscribe("billing.invoice_issued")
@subscribe("billing.credit_note_issued")
def store_issued_document(event):
    """Render an issued invoice's (or credit note's) PDF once, now, and store it: the document is
    what was issued, served as stored ever after (not rendered later with later payment state).

    Idempotent (kept once). A rendering failure (no PDF libraries, a broken operator template)
    is logged and left to the first download, so the other handlers of the event still run."""
    import logging

    from tarifa.kernel.errors import DomainError

    from .documents import invoice_pdf
    from .models import Invoice

    invoice = Invoice.objects.select_related("billing_account", "customer", "credited_invoice").filter(
        pk=event.payload.get("invoice")).first()
    if invoice is None or invoice.is_draft:
        return
    try:
        invoice_pdf(invoice)
    except DomainError as exc:
        logging.getLogger(__name__).warning("invoice %s: document not rendered at issue: %s", invoice.number, exc)
