"""What journals react to: payments' domain events (local payments into the journal), the federation
message types of journals (batches and checkpoints at the centre, mismatch reports at a branch), and the
`tarifa federation reconcile` subcommand."""

from tarifa.federation import handlers as messages
from tarifa.kernel.events import subscribe

from . import selectors, services
from .models import JournalEntry, Kind


def _payment(event):
    from tarifa.payments.models import Payment

    return Payment.objects.filter(pk=event.object_id).first()


def on_payment_received(event) -> None:
    """A local payment's entry (kind local, reference = the payment number); none for a payment already in the
    journal under another kind (a foreign payment applied here: interbranch wrote applied_from with it)."""
    if not selectors.enabled():
        return
    payment = _payment(event)
    if payment is None or JournalEntry.objects.filter(payment=payment).exclude(kind=Kind.LOCAL).exists():
        return
    services.record_entry(kind=Kind.LOCAL, reference=payment.number, amount=payment.amount,
                          currency=payment.currency, payment=payment, occurred_at=payment.received_at,
                          details={"channel": payment.channel, "account": event.payload.get("billing_account_number")})


def on_payment_reversed(event) -> None:
    if not selectors.enabled():
        return
    payment = _payment(event)
    if payment is None:
        return
    original = (JournalEntry.objects.filter(payment=payment, kind__in=[Kind.LOCAL, Kind.APPLIED_FROM])
                .order_by("recorded_at").first())
    if original is not None and original.kind == Kind.APPLIED_FROM:
        # A foreign payment un-applied here: its own kind, matched against the taker's taken_for_reversal.
        services.record_entry(kind=Kind.APPLIED_FROM_REVERSAL, reference=original.reference, amount=payment.amount,
                              currency=payment.currency, counterparty=original.counterparty, payment=payment,
                              occurred_at=payment.reversed_at, details={"reason": event.payload.get("reason", "")})
        return
    services.record_entry(kind=Kind.LOCAL_REVERSAL, reference=payment.number, amount=payment.amount,
                          currency=payment.currency, payment=payment, occurred_at=payment.reversed_at,
                          details={"reason": event.payload.get("reason", "")})


def on_payment_refunded(event) -> None:
    if not selectors.enabled():
        return
    from tarifa.payments.models import Refund

    refund = Refund.objects.select_related("payment").filter(pk=event.object_id).first()
    if refund is None:
        return
    services.record_entry(kind=Kind.LOCAL_REFUND, reference=refund.number, amount=refund.amount,
                          currency=refund.currency, payment=refund.payment, occurred_at=refund.created_at,
                          details={"payment": refund.payment.number})


def connect() -> None:
    """Subscribe the payment handlers (idempotent). Done at start-up on the nodes of a federation only: a
    standalone installation keeps no journal and should not pay a job per payment for it."""
    subscribe("payments.payment_received")(on_payment_received)
    subscribe("payments.payment_reversed")(on_payment_reversed)
    subscribe("payments.payment_refunded")(on_payment_refunded)


try:
    if selectors.enabled():
        connect()
except ValueError:  # a bad TARIFA_NODE_ROLE: federation's own checks report it
    pass


# --- federation message types ---

def _centre_only():
    if not selectors.is_centre():
        raise services.NotCentre("This node is not the centre: it keeps no copies of journals.")


@messages.register("journals.batch", version=1)
def apply_batch(message):
    _centre_only()
    return services.store_batch(sender=message.sender, payload=message.payload)


@messages.register("journals.checkpoint", version=1)
def apply_checkpoint(message):
    _centre_only()
    return services.store_checkpoint(sender=message.sender, payload=message.payload)


@messages.register("journals.mismatch", version=1)
def apply_mismatch(message):
    return services.receive_mismatch(sender=message.sender, payload=message.payload)


# --- `tarifa federation reconcile` ---

def _reconcile_arguments(parser):
    parser.add_argument("--date", required=True, help="The day (YYYY-MM-DD, UTC) to reconcile.")


def _reconcile(command, *, date, **opts):
    import datetime as dt
    import json
    import sys

    from django.core.management.base import CommandError

    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        raise CommandError(f"--date: not a date (YYYY-MM-DD): {date!r}") from None
    report = services.reconcile(day, actor="cli")
    command.stdout.write(json.dumps(report, indent=2, default=str))
    if not report["ok"]:
        sys.exit(1)


def _register_commands():
    from tarifa.federation import commands

    commands.register("reconcile", help="Reconcile the branches' payment journals for a day (centre); JSON, "
                                        "exit 1 on a mismatch.", arguments=_reconcile_arguments, run=_reconcile)


_register_commands()
