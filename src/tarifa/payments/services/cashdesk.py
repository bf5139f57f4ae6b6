"""Cash desks, cashier shifts and cash hand-overs."""

from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q

from tarifa.audit import services as recorded
from tarifa.kernel.clock import now
from tarifa.kernel.errors import DomainError, PermissionDenied, ValidationFailed
from tarifa.kernel.ids import uuid7
from tarifa.kernel.money import check_currency
from tarifa.kernel.numbering import next_number
from tarifa.ledger import services as ledger
from tarifa.ledger.models import Transfer

from .. import errors
from ..models import CashDesk, CashHandover, CashierShift
from . import common

DISCREPANCY_ACCOUNT = "cash_discrepancy"
# Shifts were numbered in S (the subscriptions' series) before: those keep their numbers.
SHIFT_SERIES = "SH"
HANDOVER_SERIES = "H"


# --- desks -------------------------------------------------------------------------------------

@transaction.atomic
def create_cash_desk(*, actor, code: str, name: str, currency: str, location: str = "", cashiers=()) -> CashDesk:
    """A cash desk with its cash account `cash:<code>` (created on first use). Errors: field errors,
    invalid_currency, duplicate code."""
    currency = check_currency(currency)
    code = str(code or "").strip()
    if CashDesk.objects.filter(code__iexact=code).exists():
        raise ValidationFailed(f"Cash desk {code!r} exists.", code="duplicate_code", fields={"code": ["Taken."]})
    account = ledger.system_account(f"cash:{code}", currency, name=f"Cash desk {name}"[:200]) if code else None
    desk = recorded.create(CashDesk, actor=actor, code=code, name=name, currency=currency, location=location,
                           ledger_account=account)
    if cashiers:
        desk.cashiers.set(list(cashiers))
        recorded.record(desk, actor=actor, action="cashiers",
                        changes={"cashiers": [[], sorted(u.get_username() for u in cashiers)]})
    return desk


@transaction.atomic
def update_cash_desk(desk: CashDesk, *, actor, cashiers=None, **changes) -> CashDesk:
    """Name, location and the assigned cashiers (code and currency are fixed: the ledger account is)."""
    unknown = set(changes) - {"name", "location"}
    if unknown:
        raise ValidationFailed(f"Cannot change {', '.join(sorted(unknown))} of a cash desk.", code="field_fixed",
                               fields={name: ["Fixed once the desk exists."] for name in unknown})
    desk = recorded.update(desk, actor=actor, **changes)
    if cashiers is not None:
        before = sorted(desk.cashiers.values_list("username", flat=True))
        desk.cashiers.set(list(cashiers))
        after = sorted(u.get_username() for u in cashiers)
        if before != after:
            recorded.record(desk, actor=actor, action="cashiers", changes={"cashiers": [before, after]})
    return desk


@transaction.atomic
def archive_cash_desk(desk: CashDesk, *, actor, reason: str = "") -> CashDesk:
    if desk.shifts.filter(status=CashierShift.Status.OPEN).exists():
        raise errors.ShiftAlreadyOpen(f"Desk {desk.code} has an open shift: close it first.")
    return recorded.archive(desk, actor=actor, reason=reason)


def may_use_desk(user, desk: CashDesk) -> bool:
    return user.has_perm("payments.view_all_desks") or desk.cashiers.filter(pk=user.pk).exists()


def desk_cash(locked_account) -> Decimal:
    """Cash held at a desk on the books: its account's debits − credits (an asset)."""
    return locked_account.debits_posted - locked_account.credits_posted


# --- shifts ------------------------------------------------------------------------------------

@transaction.atomic
def open_shift(*, actor, desk: CashDesk, opening_float=0, cashier=None) -> CashierShift:
    """Open the cashier's shift at `desk` with the float counted in the drawer.

    The shift is `cashier`'s, else the acting user's. Permission
    `payments.operate_cash_desk`; opening a shift for another cashier also needs
    `payments.change_cashiershift` (a supervisor). The cashier must be assigned to the
    desk (or see all desks). One open shift per cashier and per desk (also a database
    constraint). Locks the desk's cash account to note what the books hold at opening.
    Errors: permission_denied, desk_not_assigned (403), shift_already_open (409), amount
    errors, archived.
    """
    common.require(actor, "payments.operate_cash_desk")
    acting = common.user_of(actor)
    user = cashier or acting
    if user is None:
        raise ValidationFailed("A shift belongs to a cashier.", code="cashier_required", fields={"cashier": ["Required."]})
    if acting is not None and user.pk != acting.pk:
        common.require(actor, "payments.change_cashiershift")
    if desk.archived_at is not None:
        raise DomainError(f"Desk {desk.code} is archived.", code="archived", status=409)
    if (acting is not None or cashier is not None) and not may_use_desk(user, desk):
        who = "You are" if user == acting else f"{user.get_username()} is"
        raise errors.DeskNotAssigned(f"{who} not a cashier of desk {desk.code}.")
    opening_float = common.non_negative_amount(opening_float, desk.currency, field="opening_float")
    locked = ledger.lock_accounts(desk.ledger_account_id)[desk.ledger_account_id]
    clash = CashierShift.objects.filter(Q(cashier=user) | Q(desk=desk), status=CashierShift.Status.OPEN).first()
    if clash is not None:
        whose = "You have" if clash.cashier_id == user.pk else f"Desk {desk.code} has"
        raise errors.ShiftAlreadyOpen(f"{whose} an open shift ({clash.number}): close it first.")
    shift = CashierShift(id=uuid7(), number=next_number(SHIFT_SERIES), desk=desk, cashier=user, currency=desk.currency,
                         opened_at=now(), opening_float=opening_float, book_at_open=desk_cash(locked))
    try:
        with transaction.atomic():
            shift.save(force_insert=True)
    except IntegrityError:
        raise errors.ShiftAlreadyOpen("Another shift was opened at the same moment; close it first.") from None
    recorded.record(shift, actor=actor, action="open", changes={"desk": [None, desk.code],
                                                                "opening_float": [None, common.units(opening_float, desk.currency)]})
    return shift


def expected_cash(shift: CashierShift, locked_account=None) -> Decimal:
    """Float + what the desk's books gained since the shift opened (payments − refunds − hand-overs)."""
    if locked_account is None:
        from tarifa.ledger.models import LedgerAccount

        locked_account = LedgerAccount.objects.get(pk=shift.desk.ledger_account_id)
    return shift.opening_float + desk_cash(locked_account) - shift.book_at_open


@transaction.atomic
def close_shift(shift: CashierShift, *, actor, counted_cash, note: str = "") -> CashierShift:
    """Close the shift with the cash counted in the drawer; a difference is recorded and booked.

    expected = float + the desk's booked takings during the shift; discrepancy = counted
    − expected. A shortage is booked from the desk's cash to `cash_discrepancy`, a surplus
    the other way (kind adjustment, tagged with the shift and cashier), so the books match
    the drawer. The shift's cashier closes it (permission `payments.operate_cash_desk`), or a
    supervisor (`payments.change_cashiershift`). Locks the desk's cash account, then the
    shift. Errors: permission_denied, shift_closed (409), not_your_shift (403), amount errors.
    """
    user = common.user_of(actor)
    if user is not None and shift.cashier_id != user.pk:
        if not user.has_perm("payments.change_cashiershift"):
            raise PermissionDenied(f"Shift {shift.number} is another cashier's.", code="not_your_shift")
    else:
        common.require(actor, "payments.operate_cash_desk")
    desk = shift.desk
    counted = common.non_negative_amount(counted_cash, desk.currency, field="counted_cash")
    locked = ledger.lock_accounts(desk.ledger_account_id)[desk.ledger_account_id]
    shift = CashierShift.objects.select_for_update().select_related("desk", "cashier").get(pk=shift.pk)
    if shift.status != CashierShift.Status.OPEN:
        raise errors.ShiftClosed(f"Shift {shift.number} is already closed.")
    expected = expected_cash(shift, locked)
    difference = counted - expected
    transfer = None
    if difference != 0:
        other = ledger.system_account(DISCREPANCY_ACCOUNT, desk.currency, name="Cash discrepancies")
        debit, credit = (other, desk.ledger_account_id) if difference < 0 else (desk.ledger_account_id, other)
        transfer = ledger.post_transfer(actor=actor, debit=debit, credit=credit, amount=abs(difference),
                                        currency=desk.currency, kind=Transfer.Kind.ADJUSTMENT,
                                        idempotency_key=f"payments:shift-discrepancy:{shift.pk}",
                                        tags={"desk": desk.code, "cashier": shift.cashier.get_username(),
                                              "shift": shift.number, "discrepancy": "shortage" if difference < 0
                                              else "surplus"},
                                        reference=("payments.cashiershift", str(shift.pk)),
                                        memo=f"Shift {shift.number}: counted {common.units(counted, desk.currency)}, expected"
                                             f" {common.units(expected, desk.currency)} {desk.currency}")
    return recorded.update(shift, actor=actor, action="close", message=str(note or ""),
                           status=CashierShift.Status.CLOSED, closed_at=now(), expected_cash=expected,
                           counted_cash=counted, discrepancy=difference, discrepancy_transfer=transfer,
                           closing_note=str(note or ""))


# --- hand-overs --------------------------------------------------------------------------------

@transaction.atomic
def hand_over_cash(*, actor, from_desk: CashDesk, amount, destination: str, idempotency_key, to_desk=None,
                   received_by=None, bank_reference: str = "", note: str = "") -> CashHandover:
    """Record cash leaving a desk for another desk (another cashier) or the bank, with who and when.

    Books `cash:<from>` → `cash:<to>` or `bank` (kind transfer, tagged `handover`). Never
    more than the desk holds on the books. Permission `payments.add_cashhandover`; the
    user must be a cashier of the source desk (or see all desks). Locks both accounts;
    idempotent by key. Errors: permission_denied, desk_not_assigned, invalid_destination,
    same_desk, currency_mismatch, insufficient_cash (409), amount errors, idempotency_conflict.
    """
    common.require(actor, "payments.add_cashhandover")
    key = common.idempotency_key(idempotency_key)
    user = common.user_of(actor)
    if user is not None and not may_use_desk(user, from_desk):
        raise errors.DeskNotAssigned(f"You are not a cashier of desk {from_desk.code}.")
    if destination not in CashHandover.Destination.values:
        raise ValidationFailed(f"Unknown destination {destination!r}.", code="invalid_destination",
                               fields={"destination": ["desk or bank."]})
    amount = common.payment_amount(amount, from_desk.currency)
    if destination == CashHandover.Destination.DESK:
        if to_desk is None:
            raise ValidationFailed("Name the receiving desk.", code="to_desk_required", fields={"to_desk": ["Required."]})
        if to_desk.pk == from_desk.pk:
            raise ValidationFailed("Cash is handed to another desk.", code="same_desk", fields={"to_desk": ["Same desk."]})
        if to_desk.currency != from_desk.currency:
            raise errors.CurrencyMismatch("The desks keep different currencies.", fields={"to_desk": ["Other currency."]})
        target = to_desk.ledger_account_id
    else:
        to_desk = None
        target = ledger.system_account("bank", from_desk.currency).pk
    existing = CashHandover.objects.filter(
        transfer__in=Transfer.objects.by_key(f"payments:handover:{key}")).first()
    if existing is not None:
        if (existing.from_desk_id, existing.amount, existing.destination, existing.to_desk_id) != (
                from_desk.pk, amount, destination, to_desk.pk if to_desk else None):
            raise errors.IdempotencyConflict("The idempotency key was used for another hand-over.")
        existing.replayed = True
        return existing
    locked = ledger.lock_accounts(from_desk.ledger_account_id, target)
    held = desk_cash(locked[from_desk.ledger_account_id])
    if amount > held:
        raise errors.InsufficientCash(f"Desk {from_desk.code} holds {common.units(held, from_desk.currency)} {from_desk.currency} on the"
                                      " books; a hand-over cannot exceed it.", fields={"amount": ["More than held."]})
    shift = CashierShift.objects.filter(desk=from_desk, status=CashierShift.Status.OPEN).first()
    handover_id = uuid7()
    number = next_number(HANDOVER_SERIES)
    transfer = ledger.post_transfer(actor=actor, debit=target, credit=from_desk.ledger_account_id, amount=amount,
                                    currency=from_desk.currency, kind=Transfer.Kind.TRANSFER,
                                    idempotency_key=f"payments:handover:{key}",
                                    tags={"handover": number, "desk": from_desk.code,
                                          **({"to_desk": to_desk.code} if to_desk else {"to": "bank"})},
                                    reference=("payments.cashhandover", str(handover_id)), memo=str(note or ""))
    handover = CashHandover(id=handover_id, number=number, from_desk=from_desk, destination=destination,
                            to_desk=to_desk, amount=amount, currency=from_desk.currency, handed_by=user,
                            handed_by_label=common.actor_label(actor), received_by=received_by,
                            bank_reference=str(bank_reference or "")[:100], handed_at=now(), shift=shift,
                            transfer=transfer, note=str(note or ""))
    handover.save(force_insert=True)
    recorded.record(handover, actor=actor, action="create",
                    changes={"amount": [None, common.units(amount, from_desk.currency)], "from": [None, from_desk.code],
                             "to": [None, to_desk.code if to_desk else "bank"]})
    handover.replayed = False
    return handover
