"""The write path of serving another branch's subscriber (docs/federation.md, "Foreign payments").

At the branch that takes the payment (B):
- `take_foreign_payment`: always accepted with B's own receipt number; in ONE transaction: the
  `ForeignPayment` record, the ledger transfer (B's cash / clearing → `due_to:<A>`) and the message
  `interbranch.foreign_payment` to the owner A (kind `payments`).
- `record_result` (the federation result hook): A's answer — applied (A's payment number) or refused
  (the money moves from `due_to:<A>` to `interbranch_refunds`, owed back to the payer).
- `refund_foreign_payment`: the payer gets a refused payment back (`interbranch_refunds` → the account
  the money was taken into).

At the owner (A):
- `apply_received_payment` (the message handler): the subscriber's account is credited through the
  ordinary payments service (suspension and resumption follow as for a local payment), against
  `due_from:<B>`, exactly once (the payment's idempotency key is `interbranch:<B>:<payment id>`). An
  unknown or closed account, another currency: a refusal (DomainError), answered to B.
"""

import datetime as dt
from decimal import Decimal

from django.db import IntegrityError, transaction

from tarifa.audit import services as recorded
from tarifa.federation import selectors as federation_selectors
from tarifa.federation import services as federation
from tarifa.federation.models import Node
from tarifa.journals import services as journals
from tarifa.kernel.clock import now
from tarifa.kernel.errors import Conflict, NotFound, ValidationFailed
from tarifa.kernel.ids import uuid7
from tarifa.kernel.money import check_currency, default_currency
from tarifa.kernel.numbering import next_number
from tarifa.ledger import services as ledger
from tarifa.ledger.models import Transfer
from tarifa.payments import errors as payment_errors
from tarifa.payments import services as payments
from tarifa.payments.models import Channel
from tarifa.payments.services import common
from tarifa.payments.services.payments import DEFAULT_ACCOUNT

from .models import ForeignPayment, ReceivedPayment

MESSAGE_TYPE = "interbranch.foreign_payment"
KIND = "payments"
SERIES = "FP"
REFUNDS_ACCOUNT = "interbranch_refunds"  # refused foreign payments owed back to their payers (a liability)


def due_to(branch: str) -> str:
    """B's system account of what it took for branch `branch` and owes it (a liability)."""
    return f"due_to:{branch}"


def due_from(branch: str) -> str:
    """A's system account of what branch `branch` took for A's subscribers and owes A (an asset)."""
    return f"due_from:{branch}"


class NotForeign(ValidationFailed):
    code = "not_foreign"


class UnknownBranch(NotFound):
    code = "unknown_branch"


class NotRefundable(Conflict):
    code = "not_refundable"


def owner_of(account_number: str) -> str:
    """The owner branch of an account number: its prefix (HQ-A0000001 → HQ)."""
    head, sep, _rest = str(account_number or "").strip().partition("-")
    return head.upper() if sep and head else ""



def _content(fp: ForeignPayment) -> tuple:
    return (fp.owner_branch, fp.account_number.upper(), Decimal(fp.amount), fp.currency, fp.channel)


def _replay(existing: ForeignPayment, candidate: ForeignPayment) -> ForeignPayment:
    if _content(existing) != _content(candidate):
        raise payment_errors.IdempotencyConflict(
            f"The idempotency key was used for another payment ({existing.number}).",
            fields={"idempotency_key": ["Already used for a different payment."]})
    existing.replayed = True
    return existing


def take_foreign_payment(*, actor, account, amount, channel, idempotency_key, currency=None, branch=None,
                         payer: str = "", memo: str = "", received_at=None) -> ForeignPayment:
    """Take a payment for `account`, an account number of another branch (its owner: `branch`, else
    the number's prefix). Always accepted here (the owner may be down); the owner applies it later.

    One transaction: the record (receipt number `<this branch>-FP…`), the transfer from this branch's
    cash (the cashier's open shift's desk for cash, else the channel's system account) to
    `due_to:<owner>`, the message to the owner. Idempotent by `idempotency_key` (a retry returns the
    first record with `replayed=True`; another content → 409 idempotency_conflict). Permission
    `interbranch.add_foreignpayment`. Errors: permission_denied, idempotency_key_required,
    account_required, not_foreign (a local account: take an ordinary payment), unknown_branch,
    invalid_channel, amount errors, invalid_currency, federation_disabled.
    """
    common.require(actor, "interbranch.add_foreignpayment")
    key = common.idempotency_key(idempotency_key)
    number = str(account or "").strip().upper()
    if not number:
        raise ValidationFailed("The account number at the owner branch is required.", code="account_required",
                               fields={"account": ["Required."]})
    owner = (str(branch or "").strip().upper()) or owner_of(number)
    own = federation_selectors.own_code()
    if not owner:
        raise ValidationFailed(f"{number!r} does not name its branch (e.g. B1-A0000001): give the branch.",
                               code="branch_required", fields={"branch": ["Required for this number."]})
    if owner == own:
        raise NotForeign(f"{number} is an account of this branch: take an ordinary payment.",
                         fields={"account": ["An account of this branch."]})
    if not Node.objects.filter(code=owner, role=Node.Role.BRANCH, archived_at__isnull=True).exists():
        raise UnknownBranch(f"No active branch {owner!r} in the node registry.",
                            fields={"branch": [f"No active branch {owner} in the node registry."]})
    channel = common.channel(channel)
    if channel == Channel.VOUCHER:
        raise payment_errors.InvalidChannel("Vouchers are redeemed at their own branch.",
                                            fields={"channel": ["Not for foreign payments."]})
    currency = check_currency(currency or default_currency())
    amount = common.payment_amount(amount, currency)
    user = common.user_of(actor)
    shift = payments.open_shift_of(user) if channel == Channel.CASH else None
    desk = shift.desk if shift is not None else None
    if desk is not None and desk.currency != currency:
        raise payment_errors.CurrencyMismatch(f"Desk {desk.code} takes {desk.currency}, not {currency}.",
                                              fields={"currency": ["Another currency than your desk's."]})
    debit = desk.ledger_account if desk is not None else ledger.system_account(DEFAULT_ACCOUNT[channel], currency)
    candidate = ForeignPayment(id=uuid7(), owner_branch=owner, account_number=number, amount=amount,
                               currency=currency, channel=channel, desk=desk, debit_account=debit,
                               payer=str(payer or "")[:200], memo=str(memo or ""), received_at=received_at or now(),
                               idempotency_key=key, actor=common.actor_label(actor))
    with transaction.atomic():
        existing = ForeignPayment.objects.filter(idempotency_key=key).first()
        if existing is not None:
            return _replay(existing, candidate)
        tags = {"channel": channel, "owner_branch": owner}
        if desk is not None:
            tags["desk"] = desk.code
        transfer = ledger.post_transfer(actor=actor, debit=debit, credit=ledger.system_account(due_to(owner), currency),
                                        amount=amount, currency=currency, kind=Transfer.Kind.PAYMENT,
                                        idempotency_key=f"interbranch:{key}", tags=tags,
                                        reference=("interbranch.foreignpayment", str(candidate.id)),
                                        memo=f"for {number} at {owner}")
        if getattr(transfer, "replayed", False):
            # A concurrent request with this key committed while this one waited for the accounts' lock.
            existing = ForeignPayment.objects.filter(idempotency_key=key).first()
            if existing is not None:
                return _replay(existing, candidate)
        candidate.number = next_number(SERIES)
        candidate.transfer = transfer
        candidate.message = federation.send(receiver=owner, kind=KIND, type=MESSAGE_TYPE, payload={
            "payment_id": str(candidate.id), "number": candidate.number, "account": number,
            "amount": common.units(amount, currency), "currency": currency, "channel": channel, "payer": candidate.payer,
            "received_at": candidate.received_at.isoformat()})
        try:
            with transaction.atomic():
                candidate.save(force_insert=True)
        except IntegrityError:
            raise Conflict("A payment with this idempotency key was taken at the same moment: retry.",
                           code="idempotency_race") from None
        recorded.record(candidate, actor=actor, action="accept",
                        changes={"amount": [None, common.units(amount, currency)], "channel": [None, channel],
                                 "account": [None, f"{number} at {owner}"]})
        journals.record_entry(kind="taken_for", reference=candidate.number, amount=amount, currency=currency,
                              counterparty=owner, occurred_at=candidate.received_at,
                              details={"account": number, "channel": channel})
    candidate.replayed = False
    return candidate


@transaction.atomic
def record_result(message, result) -> ForeignPayment | None:
    """The owner's answer to a foreign payment (the federation result hook; idempotent): applied (its
    payment number) or refused (the money is owed back to the payer: `due_to:<A>` → `interbranch_refunds`)."""
    fp = ForeignPayment.objects.select_for_update().filter(message_id=message.pk).first()
    if fp is None or fp.status != ForeignPayment.Status.PENDING:
        return fp
    result = result if isinstance(result, dict) else {}
    refused = result.get("refused")
    fp.resolved_at = now()
    if isinstance(refused, dict):
        fp.status = ForeignPayment.Status.REFUSED
        fp.refusal_code = str(refused.get("code") or "refused")[:64]
        fp.refusal_message = str(refused.get("message") or "")
        fp.refused_transfer = ledger.post_transfer(
            actor=f"branch:{fp.owner_branch}", debit=ledger.system_account(due_to(fp.owner_branch), fp.currency),
            credit=ledger.system_account(REFUNDS_ACCOUNT, fp.currency), amount=fp.amount, currency=fp.currency,
            kind=Transfer.Kind.TRANSFER, idempotency_key=f"interbranch:refused:{fp.id}",
            tags={"owner_branch": fp.owner_branch}, reference=("interbranch.foreignpayment", str(fp.id)),
            memo=f"{fp.number} refused at {fp.owner_branch}: {fp.refusal_code}")
        fp.save(update_fields=["status", "resolved_at", "refusal_code", "refusal_message", "refused_transfer"])
        recorded.record(fp, actor=f"branch:{fp.owner_branch}", action="refused",
                        changes={"status": ["pending", "refused"]}, message=f"{fp.refusal_code}: {fp.refusal_message}"[:500])
        # The taking is undone in this branch's journal (the owner never applied it).
        journals.record_entry(kind="taken_for_reversal", reference=fp.number, amount=fp.amount, currency=fp.currency,
                              counterparty=fp.owner_branch, details={"account": fp.account_number,
                                                                     "refused": fp.refusal_code})
    else:
        fp.status = ForeignPayment.Status.APPLIED
        fp.remote_payment_number = str(result.get("payment") or "")[:32]
        fp.save(update_fields=["status", "resolved_at", "remote_payment_number"])
        recorded.record(fp, actor=f"branch:{fp.owner_branch}", action="applied",
                        changes={"status": ["pending", "applied"]},
                        message=f"payment {fp.remote_payment_number} at {fp.owner_branch}")
    return fp


@transaction.atomic
def refund_foreign_payment(fp: ForeignPayment, *, actor, reason: str = "") -> ForeignPayment:
    """Pay a refused foreign payment back to the payer, from the account it was taken into
    (`interbranch_refunds` → that account). Once. Permission `interbranch.refund_foreignpayment`.
    Errors: permission_denied, not_refundable (not refused, or refunded already)."""
    common.require(actor, "interbranch.refund_foreignpayment")
    fp = ForeignPayment.objects.select_for_update().get(pk=fp.pk)
    if fp.status != ForeignPayment.Status.REFUSED:
        raise NotRefundable(f"{fp.number} is {fp.get_status_display().lower()}: only a payment the owner refused "
                            f"is refunded here.")
    reason = str(reason or "").strip() or f"refused at {fp.owner_branch}: {fp.refusal_code}"
    fp.refund_transfer = ledger.post_transfer(
        actor=actor, debit=ledger.system_account(REFUNDS_ACCOUNT, fp.currency), credit=fp.debit_account,
        amount=fp.amount, currency=fp.currency, kind=Transfer.Kind.REFUND, idempotency_key=f"interbranch:refund:{fp.id}",
        tags={"owner_branch": fp.owner_branch, "channel": fp.channel},
        reference=("interbranch.foreignpayment", str(fp.id)), memo=f"refund of {fp.number}: {reason}"[:500])
    fp.status, fp.refunded_at, fp.refund_reason = ForeignPayment.Status.REFUNDED, now(), reason
    fp.save(update_fields=["refund_transfer", "status", "refunded_at", "refund_reason"])
    recorded.record(fp, actor=actor, action="refund", changes={"status": ["refused", "refunded"]}, message=reason[:500])
    return fp


# --- at the owner ---

PAYLOAD_FIELDS = ("payment_id", "number", "account", "amount", "currency")


def apply_received_payment(*, sender: str, payload: dict) -> dict:
    """Credit the owner's account with a payment branch `sender` took (the message handler's work; it runs
    in the receiving transaction). Refusals (DomainError): account_not_found, account_closed,
    currency_mismatch, amount errors, bad_payload."""
    missing = [f for f in PAYLOAD_FIELDS if not payload.get(f)]
    if missing:
        raise ValidationFailed(f"The foreign payment lacks {', '.join(missing)}.", code="bad_payload")
    account = common.billing_account(payload["account"])
    currency = check_currency(payload["currency"])
    common.open_account(account, currency)
    try:
        received_at = dt.datetime.fromisoformat(str(payload.get("received_at") or ""))
    except ValueError:
        received_at = now()
    actor = f"branch:{sender}"
    payment = payments.accept_payment(
        actor=actor, account=account, amount=payload["amount"], currency=currency, channel=Channel.OTHER,
        idempotency_key=f"interbranch:{sender}:{payload['payment_id']}",
        debit_account=ledger.system_account(due_from(sender), currency),
        external_reference=str(payload["number"])[:200], payer=str(payload.get("payer") or "")[:200],
        received_at=received_at, memo=f"Taken at branch {sender} (receipt {payload['number']})")
    received = ReceivedPayment.objects.filter(sender=sender, remote_id=payload["payment_id"]).first()
    if received is None:
        received = ReceivedPayment.objects.create(
            sender=sender, remote_id=payload["payment_id"], remote_number=str(payload["number"])[:32],
            billing_account=account, payment=payment, amount=payment.amount, currency=payment.currency,
            received_at=received_at)
        recorded.record(received, actor=actor, action="apply",
                        changes={"payment": [None, payment.number], "billing_account": [None, account.number]},
                        message=f"{common.units(payment.amount, currency)} {currency} taken at {sender}")
        journals.record_entry(kind="applied_from", reference=str(payload["number"]), amount=payment.amount,
                              currency=currency, counterparty=sender, payment=payment,
                              details={"account": account.number, "payment": payment.number})
    return {"payment": payment.number, "payment_id": str(payment.id), "account": account.number}


# --- cross-branch reads ---

@transaction.atomic
def remember_card(*, branch: str, card: dict, asked: str = "") -> None:
    """Keep the owner's live answer as the last known card, under the customer's number, each account
    number and the number asked for (a cache: no audit)."""
    from .models import SubscriberCard

    numbers = {str((card.get("customer") or {}).get("number") or "").upper(), str(asked or "").strip().upper()}
    numbers |= {str(a.get("number") or "").upper() for a in card.get("accounts") or []}
    at = now()
    for number in sorted(numbers - {""}):
        SubscriberCard.objects.update_or_create(owner_branch=branch, number=number,
                                                defaults={"card": card, "fetched_at": at})
