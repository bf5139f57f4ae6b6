"""Payments: accept (from any channel), reverse, refund."""

from contextlib import ExitStack
from decimal import Decimal

from django.db import IntegrityError, transaction

from tarifa.audit import services as recorded
from tarifa.kernel import events
from tarifa.kernel.clock import now
from tarifa.kernel.errors import PermissionDenied, ValidationFailed
from tarifa.kernel.ids import uuid7
from tarifa.kernel.numbering import next_number
from tarifa.kernel.roundtrips import one_round_trip
from tarifa.ledger import services as ledger
from tarifa.ledger.errors import IdempotencyConflict as LedgerIdempotencyConflict
from tarifa.ledger.models import LedgerAccount, Transfer

from .. import errors
from ..models import CashDesk, CashierShift, Channel, Payment, PaymentGateway, Refund
from . import common

# The system account a payment of each channel debits when no desk or gateway names one.
DEFAULT_ACCOUNT = {
    Channel.CASH: "cash:main",
    Channel.BANK_TRANSFER: "bank",
    Channel.CARD: "clearing:card",
    Channel.TERMINAL: "clearing:terminal",
    Channel.VOUCHER: "voucher_liability",
    Channel.MOBILE: "clearing:mobile",
    Channel.OTHER: "clearing:other",
}
# Channels whose default account every payment of the channel debits, with no one to reconcile
# it row by row (no desk, no gateway): spread over several ledger rows so that concurrent
# payments do not queue on one row lock (ledger.spread_account; docs/ledger.md).
SPREAD_CHANNELS = frozenset({Channel.CARD, Channel.TERMINAL, Channel.MOBILE, Channel.OTHER})
GATEWAY_CHANNEL = {PaymentGateway.Kind.TERMINAL: Channel.TERMINAL, PaymentGateway.Kind.CARD: Channel.CARD}


def open_shift_of(user) -> CashierShift | None:
    if user is None:
        return None
    return (CashierShift.objects.select_related("desk", "desk__ledger_account")
            .filter(cashier=user, status=CashierShift.Status.OPEN).first())


def _desk_and_shift(*, actor, channel, desk, shift):
    """Where cash was taken. A cashier's cash payment belongs to their open shift at the desk."""
    user = common.user_of(actor)
    if shift is not None:
        shift = CashierShift.objects.select_related("desk__ledger_account", "cashier").get(pk=shift.pk)
        if shift.status != CashierShift.Status.OPEN:
            raise errors.ShiftClosed(f"Shift {shift} is closed.", fields={"shift": ["Closed."]})
        if user is not None and shift.cashier_id != user.pk:
            raise PermissionDenied(f"Shift {shift} is another cashier's.", code="not_your_shift")
        if desk is not None and desk.pk != shift.desk_id:
            raise ValidationFailed("The shift is at another desk.", code="desk_mismatch", fields={"desk": ["Not the shift's desk."]})
        return shift.desk, shift
    if channel != Channel.CASH:
        if desk is not None:
            raise ValidationFailed("Only cash payments are taken at a desk.", code="desk_not_for_channel",
                                   fields={"desk": ["Only for cash."]})
        return None, None
    current = open_shift_of(user)
    if desk is None:
        return (current.desk, current) if current is not None else (None, None)
    if user is None:
        return desk, None  # an internal actor (import, demo) books cash to a desk directly
    if current is None or current.desk_id != desk.pk:
        raise errors.NoOpenShift(f"You have no open shift at desk {desk.code}: open one first.",
                                 fields={"desk": ["No open shift here."]})
    return desk, current


def _debit_account(*, channel, desk, gateway, debit_account) -> LedgerAccount | None:
    if debit_account is not None:
        return debit_account
    if desk is not None:
        return desk.ledger_account
    if gateway is not None:
        return gateway.clearing_account
    return None


def _content(payment) -> tuple:
    return (str(payment.billing_account_id), payment.amount, payment.currency, payment.channel,
            payment.gateway_id, payment.provider_txn_id or None, payment.desk_id)


def _replay(existing: Payment, candidate: Payment) -> Payment:
    if _content(existing) != _content(candidate):
        raise errors.IdempotencyConflict(
            f"The idempotency key was used for another payment ({existing.number}).",
            fields={"idempotency_key": ["Already used for a different payment."]})
    existing.replayed = True
    return existing


def _by_provider_txn(gateway, provider_txn_id):
    if gateway is None or not provider_txn_id:
        return None
    return Payment.objects.filter(gateway=gateway, provider_txn_id=provider_txn_id).first()


def _check_gateway(gateway: PaymentGateway, channel: str, amount: Decimal, currency: str) -> None:
    if GATEWAY_CHANNEL.get(gateway.kind) != channel:
        raise ValidationFailed(f"Gateway {gateway.code} takes {gateway.get_kind_display()} payments, not {channel}.",
                               code="gateway_channel_mismatch", fields={"gateway": ["Another channel."]})
    if not gateway.is_active or gateway.archived_at is not None:
        raise errors.GatewayInactive(f"Gateway {gateway.code} is not active.")
    if gateway.currency != currency:
        raise errors.CurrencyMismatch(f"Gateway {gateway.code} takes {gateway.currency}, the account is in {currency}.",
                                      fields={"currency": ["The gateway's currency differs."]})
    if amount < gateway.min_amount:
        raise errors.AmountTooSmall(f"The least {gateway.code} accepts is {common.units(gateway.min_amount, gateway.currency)} {gateway.currency}.",
                                    fields={"amount": ["Too small."]})
    if amount > gateway.max_amount:
        raise errors.AmountTooLarge(f"The most {gateway.code} accepts is {common.units(gateway.max_amount, gateway.currency)} {gateway.currency}.",
                                    fields={"amount": ["Too large."]})


def accept_payment(*, actor, account, amount, channel, idempotency_key, currency=None, desk: CashDesk | None = None,
                   shift: CashierShift | None = None, gateway: PaymentGateway | None = None, provider_txn_id=None,
                   external_reference: str = "", payer: str = "", received_at=None, memo: str = "",
                   debit_account: LedgerAccount | None = None) -> Payment:
    """Apply money received for `account` (a billing account, its id or number) from `channel`, once.

    Debits the channel's system account (the desk's `cash:<desk>`, the gateway's
    `clearing:<gateway>`, `bank`, …) and credits the customer's ledger account with one
    transfer of kind `payment` tagged with the channel (and cashier, desk, gateway).

    Guarantees: one transaction; takes the account lock (rule 7) before anything is
    looked up, so a concurrent retry waits and then replays; idempotent by
    `idempotency_key` (unique in the database) and by (gateway, provider_txn_id): a
    retry returns the first payment with `replayed=True`, different content under the
    same key → 409 `idempotency_conflict`, the same provider transaction for another
    payment → 409 `duplicate_provider_txn`. Emits `payments.payment_received` in the
    same transaction. Nothing is written on error.

    Errors: idempotency_key_required, invalid_channel, account_not_found, invalid_amount,
    amount_zero, amount_negative, amount_too_precise, amount_too_large,
    currency_mismatch, account_closed (409), amount_too_small / amount_too_large (the
    gateway's limits), gateway_inactive, gateway_channel_mismatch, no_open_shift,
    shift_closed, not_your_shift, desk_not_for_channel.
    """
    key = common.idempotency_key(idempotency_key)
    channel = common.channel(channel)
    account = common.billing_account(account)
    amount = common.payment_amount(amount, account.currency)
    common.open_account(account, currency)
    currency = account.currency
    provider_txn_id = str(provider_txn_id).strip()[:100] if provider_txn_id not in (None, "") else None
    if gateway is not None:
        _check_gateway(gateway, channel, amount, currency)
    elif provider_txn_id:
        raise ValidationFailed("A provider transaction id belongs to a gateway.", code="gateway_required",
                               fields={"gateway": ["Required with a provider transaction id."]})
    desk, shift = _desk_and_shift(actor=actor, channel=channel, desk=desk, shift=shift)
    if desk is not None and desk.currency != currency:
        raise errors.CurrencyMismatch(f"Desk {desk.code} takes {desk.currency}; the account is in {currency}.",
                                      fields={"account": ["Another currency than the desk's."]})
    user = common.user_of(actor)
    cashier = shift.cashier if shift is not None else (user if desk is not None else None)
    candidate = Payment(id=uuid7(), billing_account=account, amount=amount, currency=currency, channel=channel,
                        gateway=gateway, provider_txn_id=provider_txn_id, desk=desk, shift=shift,
                        cashier=cashier, idempotency_key=key,
                        external_reference=str(external_reference or "")[:200], payer=str(payer or "")[:200],
                        received_at=received_at or now(), memo=str(memo or ""), actor=common.actor_label(actor))
    debit = _debit_account(channel=channel, desk=desk, gateway=gateway, debit_account=debit_account)
    if debit is None and channel in SPREAD_CHANNELS:
        debit = ledger.spread_account(DEFAULT_ACCOUNT[channel], currency, key=key)
    elif debit is None:
        debit = ledger.system_account(DEFAULT_ACCOUNT[channel], currency)
    tags = {"channel": channel}
    if desk is not None:
        tags["desk"] = desk.code
    if cashier is not None:
        tags["cashier"] = cashier.get_username()
    if gateway is not None:
        tags["gateway"] = gateway.code
    with ExitStack() as batch, transaction.atomic():
        existing = Payment.objects.filter(idempotency_key=key).first()
        if existing is not None:
            return _replay(existing, candidate)
        other = _by_provider_txn(gateway, provider_txn_id)
        if other is not None:
            raise errors.DuplicateProviderTransaction(
                f"{gateway.code} transaction {provider_txn_id} was applied as payment {other.number}.",
                fields={"provider_txn_id": ["Already applied."]})
        try:
            # Takes the account lock (customer, then the channel's account) for the rest of the transaction.
            transfer = ledger.post_transfer(actor=actor, debit=debit, credit=account, amount=amount,
                                            currency=currency, kind=Transfer.Kind.PAYMENT,
                                            idempotency_key=f"payments:{key}", tags=tags,
                                            reference=("payments.payment", str(candidate.id)),
                                            memo=candidate.external_reference)
        except LedgerIdempotencyConflict:
            # A concurrent request with this key committed while this one waited for the lock.
            existing = Payment.objects.filter(idempotency_key=key).first()
            if existing is not None:
                return _replay(existing, candidate)
            raise
        # close_shift takes the desk's account lock too: holding it, the shift's state is settled.
        if shift is not None and not CashierShift.objects.filter(pk=shift.pk, status=CashierShift.Status.OPEN).exists():
            raise errors.ShiftClosed(f"Shift {shift} was closed.", fields={"shift": ["Closed."]})
        candidate.transfer = transfer
        candidate.debit_account = debit
        candidate.number = next_number("P")
        if provider_txn_id:
            try:
                with transaction.atomic():
                    candidate.save(force_insert=True)
            except IntegrityError:
                # A concurrent request with the same provider transaction (another key) won the race.
                other = _by_provider_txn(gateway, provider_txn_id)
                if other is not None:
                    raise errors.DuplicateProviderTransaction(
                        f"{gateway.code} transaction {provider_txn_id} was applied as payment {other.number}."
                    ) from None
                raise
            _record_accepted(candidate, actor=actor, account=account)
        else:
            # The payment, its audit event, its domain event and the end of this block (savepoint
            # released or committed) go out in one round trip: they run under the account lock,
            # which every payment of this channel waits for. The batch ends after the block.
            batch.enter_context(one_round_trip())
            candidate.save(force_insert=True)
            _record_accepted(candidate, actor=actor, account=account)
    candidate.replayed = False
    return candidate


def _record_accepted(payment: Payment, *, actor, account) -> None:
    recorded.record(payment, actor=actor, action="accept",
                    changes={"amount": [None, common.units(payment.amount, payment.currency)],
                             "channel": [None, payment.channel], "billing_account": [None, account.number]})
    events.emit("payments.payment_received", obj=payment, payload={
        "billing_account": str(account.pk), "billing_account_number": account.number,
        "amount": f"{payment.amount:f}", "currency": payment.currency, "channel": payment.channel,
        "payment": payment.number})


def _lock_payment(payment: Payment, *more_accounts) -> Payment:
    """The account lock (customer, the payment's channel account and `more_accounts`, one call,
    fixed order), then the payment's row."""
    ledger.lock_accounts(payment.billing_account, payment.debit_account_id, *more_accounts)
    return (Payment.objects.select_for_update(of=("self",)).select_related("billing_account", "gateway", "desk")
            .get(pk=payment.pk))


@transaction.atomic
def reverse_payment(payment: Payment, *, actor, reason: str) -> Payment:
    """Book the reversing transfer of `payment` and mark it reversed, at most once.

    For a payment applied by mistake (wrong account, bounced transfer). Permission
    `payments.reverse` for user actors; a reason is required. Takes the account lock,
    then the payment's row lock; the ledger key `payments:reverse:<id>` makes the
    reversal unique. A voucher payment's card becomes redeemable again. Emits
    `payments.payment_reversed`. Errors: permission_denied, reason_required,
    already_reversed (409), not_reversible (a refunded payment: reverse its refunds'
    effect by refunding no further, or adjust).
    """
    common.require(actor, "payments.reverse")
    reason = str(reason or "").strip()
    if not reason:
        raise ValidationFailed("A reason is required.", code="reason_required", fields={"reason": ["Required."]})
    payment = _lock_payment(payment)
    if payment.status == Payment.Status.REVERSED:
        raise errors.AlreadyReversed(f"Payment {payment.number} was reversed at {payment.reversed_at:%Y-%m-%d %H:%M}.")
    if payment.refunded_amount > 0:
        raise errors.NotReversible(f"Payment {payment.number} was partly refunded; it cannot be reversed as a whole.")
    # The ledger's own permission is ledger.reverse_transfer: payments.reverse was checked above, so the
    # movement is booked under the actor's name as an internal actor.
    reversal = ledger.reverse_transfer(payment.transfer, actor=common.actor_label(actor), reason=reason,
                                       idempotency_key=f"payments:reverse:{payment.pk}")
    at = now()
    payment = recorded.update(payment, actor=actor, action="reverse", message=reason, status=Payment.Status.REVERSED,
                              reversal_transfer=reversal, reversed_at=at, reversal_reason=reason)
    if payment.channel == Channel.VOUCHER:
        from .vouchers import reinstate_for_payment

        reinstate_for_payment(payment, actor=actor)
    events.emit("payments.payment_reversed", obj=payment, payload={
        "billing_account": str(payment.billing_account_id), "billing_account_number": payment.billing_account.number,
        "amount": f"{payment.amount:f}", "currency": payment.currency, "channel": payment.channel,
        "payment": payment.number, "reason": reason})
    return payment


@transaction.atomic
def refund_payment(payment: Payment, *, actor, amount, reason: str, idempotency_key, destination: str = "original",
                   desk: CashDesk | None = None) -> Refund:
    """Pay back (part of) `payment`: to its original channel's account, or in cash at the actor's desk.

    Never more than the payment's amount minus earlier refunds (checked under the
    payment's row lock; the database checks it too). Debits the customer (who may not
    go below their credit limit: what was spent is not refunded) and credits the
    channel's account (or `cash:<desk>`), kind `refund`. Permission `payments.refund`
    for user actors; a reason is required. Idempotent by key. Emits
    `payments.payment_refunded`. Errors: permission_denied, reason_required,
    amount errors, refund_exceeds_payment, already_reversed, invalid_destination,
    no_open_shift, insufficient_funds, idempotency_conflict.
    """
    common.require(actor, "payments.refund")
    key = common.idempotency_key(idempotency_key)
    reason = str(reason or "").strip()
    if not reason:
        raise ValidationFailed("A reason is required.", code="reason_required", fields={"reason": ["Required."]})
    if destination not in Refund.Destination.values:
        raise ValidationFailed(f"Unknown refund destination {destination!r}.", code="invalid_destination",
                               fields={"destination": ["original or cash."]})
    amount = common.payment_amount(amount, payment.currency)
    existing = Refund.objects.filter(idempotency_key=key).first()
    if existing is not None:
        if (existing.payment_id, existing.amount, existing.destination) != (payment.pk, amount, destination):
            raise errors.IdempotencyConflict("The idempotency key was used for another refund.")
        existing.replayed = True
        return existing
    shift = None
    if destination == Refund.Destination.CASH:
        user = common.user_of(actor)
        shift = open_shift_of(user)
        if shift is not None:
            desk = shift.desk
        if desk is None:
            raise errors.NoOpenShift("A cash refund is paid at a desk: open a shift first.")
        credit = desk.ledger_account
    else:
        credit = payment.debit_account
    payment = _lock_payment(payment, credit)
    if payment.status != Payment.Status.APPLIED:
        raise errors.AlreadyReversed(f"Payment {payment.number} is reversed; nothing to refund.")
    if amount > payment.amount - payment.refunded_amount:
        raise errors.RefundExceedsPayment(
            f"At most {common.units(payment.amount - payment.refunded_amount, payment.currency)} {payment.currency} of payment"
            f" {payment.number} can be refunded.", fields={"amount": ["More than is left to refund."]})
    refund_id = uuid7()
    tags = {"channel": payment.channel if destination == Refund.Destination.ORIGINAL else Channel.CASH}
    if desk is not None and destination == Refund.Destination.CASH:
        tags["desk"] = desk.code
    transfer = ledger.post_transfer(actor=actor, debit=payment.billing_account, credit=credit, amount=amount,
                                    currency=payment.currency, kind=Transfer.Kind.REFUND,
                                    idempotency_key=f"payments:refund:{key}", tags=tags,
                                    reference=("payments.refund", str(refund_id)), memo=reason, enforce_limit=True)
    refund = Refund(id=refund_id, number=next_number("R"), payment=payment, billing_account=payment.billing_account,
                    amount=amount, currency=payment.currency, destination=destination, reason=reason,
                    transfer=transfer, desk=desk if destination == Refund.Destination.CASH else None, shift=shift,
                    idempotency_key=key, actor=common.actor_label(actor))
    refund.save(force_insert=True)
    recorded.record(refund, actor=actor, action="create", message=reason,
                    changes={"amount": [None, common.units(amount, payment.currency)], "payment": [None, payment.number]})
    recorded.update(payment, actor=actor, action="refund", message=reason,
                    refunded_amount=payment.refunded_amount + amount)
    events.emit("payments.payment_refunded", obj=refund, payload={
        "billing_account": str(payment.billing_account_id), "amount": f"{amount:f}", "currency": payment.currency,
        "payment": payment.number, "refund": refund.number})
    refund.replayed = False
    return refund
