"""Billing accounts and the double-entry ledger: the only write path (rules 1, 3, 4, 5, 7).

Lock order (rule 7). Every function that moves money or changes an account's terms
locks ledger account rows first, all at once, with one
`SELECT … FOR UPDATE ORDER BY (kind = 'system'), id`: customer accounts by id, then
system accounts by id. System accounts (cash desks, revenue, clearing) are the hot
rows every movement touches, so they are locked last and held for the shortest time.
Then, if any: the hold row; then the transfer is inserted and the totals are updated
in the same transaction. The lock on a billing account's ledger row is *the* account
lock: invoicing, dunning and payments take it with `lock_accounts()`.

Idempotency (rule 5). Every movement carries a caller-chosen `idempotency_key`. The
key is looked up after the locks are taken, so a retry racing its original waits and
then returns what the original wrote (`transfer.replayed is True`); the same key with
other content raises `IdempotencyConflict` (409 `idempotency_conflict`). A refused
movement writes nothing.

Limits. A prepaid account cannot go below −credit_limit: available (balance − pending
debits) after a debit must stay ≥ −credit_limit, or `InsufficientFunds` (409
`insufficient_funds`). `enforce_limit=None` (the default) enforces it for prepaid
accounts only; `True` for postpaid ones too; `False` never (reversals, operator
adjustments). `extra_credit` lowers the floor by a credit the caller grants on top of
the limit (subscriptions' promised payments). The bulk path checks nothing unless
asked (`post_transfers_bulk(enforce_limit=None)`): then it posts each account's rows
only while they fit, in a stated order, and refuses the rest (see there).
"""

import dataclasses
import datetime as dt
import json
import re
import uuid
import zlib
from collections.abc import Iterable
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction

from tarifa.audit import services as recorded
from tarifa.kernel.clock import now, today
from tarifa.kernel.errors import (
    DomainError,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from tarifa.kernel.events import emit
from tarifa.kernel.ids import uuid7
from tarifa.kernel.money import LEDGER_QUANTUM, check_currency, parse_amount
from tarifa.kernel.money import default_currency as _default_currency
from tarifa.kernel.numbering import next_number

from .errors import (
    AccountClosed,
    AlreadyReversed,
    CurrencyMismatch,
    HoldExpired,
    HoldNotPending,
    IdempotencyConflict,
    InsufficientFunds,
    NotReversible,
    SameAccount,
)
from .models import BillingAccount, Hold, LedgerAccount, PaymentModeChange, Transfer

ZERO = Decimal(0)
MAX_KEY_LENGTH = 200
MAX_TAGS = 32
DEFAULT_HOLD_TIMEOUT = dt.timedelta(days=1)
SYSTEM_CODE = re.compile(r"^[a-z_]+(:[A-Za-z0-9_.\-]+)?(~[0-9]+)?$")
# A spread system account's rows (see spread_account): `code`, `code~2` … `code~N`.
SPREAD_ROWS = int(getattr(settings, "TARIFA_LEDGER_SPREAD_ROWS", 8))
KINDS = frozenset(Transfer.Kind.values)


# --- inputs ---------------------------------------------------------------------------------

def actor_label(actor) -> str:
    return recorded.actor_label(actor)[:150]


def _require(actor, perm: str) -> None:
    """Users need `perm`; internal actors (a string such as "system") are trusted."""
    if hasattr(actor, "has_perm") and not actor.has_perm(perm):
        raise PermissionDenied(f"You need the permission {perm}.", code="permission_denied")


def _key(idempotency_key) -> str:
    key = str(idempotency_key or "").strip()
    if not key:
        raise ValidationFailed("An idempotency key is required.", code="idempotency_key_required",
                               fields={"idempotency_key": ["Required."]})
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(f"The idempotency key is longer than {MAX_KEY_LENGTH} characters.",
                               code="idempotency_key_too_long",
                               fields={"idempotency_key": [f"At most {MAX_KEY_LENGTH} characters."]})
    return key


def _kind(kind) -> str:
    if kind not in KINDS:
        raise ValidationFailed(f"Unknown transfer kind {kind!r}.", code="invalid_kind",
                               fields={"kind": [f"One of: {', '.join(sorted(KINDS))}."]})
    return kind


def _tags(tags) -> dict:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or len(tags) > MAX_TAGS:
        raise ValidationFailed("Tags are a mapping of at most 32 names to values.", code="invalid_tags",
                               fields={"tags": ["A JSON object of at most 32 entries."]})
    clean = {}
    for name, value in tags.items():
        if not isinstance(name, str) or not name or len(name) > 50:
            raise ValidationFailed(f"Bad tag name {name!r}.", code="invalid_tags", fields={"tags": ["Bad tag name."]})
        if isinstance(value, Decimal):
            value = str(value)
        elif hasattr(value, "pk") and hasattr(value, "_meta"):
            value = str(value.pk)
        elif isinstance(value, float) or not isinstance(value, (str, int, bool, type(None))):
            raise ValidationFailed(f"Tag {name!r}: values are strings, integers or booleans.", code="invalid_tags",
                                   fields={"tags": [f"{name}: a string, integer or boolean."]})
        clean[name] = value
    return clean


def _reference(reference) -> tuple[str, str]:
    """None, a model instance, or (type label, id)."""
    if reference is None:
        return "", ""
    if hasattr(reference, "_meta"):
        return reference._meta.label_lower, str(reference.pk)
    if isinstance(reference, (tuple, list)) and len(reference) == 2:
        return str(reference[0])[:100], str(reference[1])[:64]
    raise ValidationFailed("A reference is a record or (type, id).", code="invalid_reference")


def _account_id(account):
    if isinstance(account, uuid.UUID):  # a ledger account id, from internal callers
        return account
    if isinstance(account, BillingAccount):
        return account.ledger_account_id
    if isinstance(account, LedgerAccount):
        return account.pk
    raise ValidationFailed(f"Not a ledger or billing account: {account!r}.", code="invalid_account")


def _amount(value, field="amount") -> Decimal:
    return parse_amount(value, field=field, positive=True)


# --- the account lock -------------------------------------------------------------------------

@dataclasses.dataclass
class LockedAccount:
    """A ledger account row as locked, with its billing account's terms (None for system accounts)."""

    id: object
    kind: str
    code: str
    currency: str
    debits_posted: Decimal
    credits_posted: Decimal
    debits_pending: Decimal
    credits_pending: Decimal
    billing_account_id: object
    number: str | None
    payment_mode: str | None
    credit_limit: Decimal | None
    status: str | None
    customer_id: object

    @property
    def balance(self) -> Decimal:
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> Decimal:
        return self.credits_posted - self.debits_posted - self.debits_pending

    @property
    def closed(self) -> bool:
        return self.status == BillingAccount.Status.CLOSED

    @property
    def label(self) -> str:
        return self.number or self.code


LOCK_SQL = """
SELECT la.id, la.kind, la.code, la.currency, la.debits_posted, la.credits_posted, la.debits_pending,
       la.credits_pending, ba.id, ba.number, ba.payment_mode, ba.credit_limit, ba.status, ba.customer_id
FROM ledger_ledgeraccount la LEFT JOIN ledger_billingaccount ba ON ba.ledger_account_id = la.id
WHERE la.id = ANY(%s)
ORDER BY (la.kind = 'system'), la.id
FOR UPDATE OF la
"""

# The same, plus the id of the transfer holding `key` if any: one round trip for the
# common case. The key is read from the statement's snapshot, taken before the lock
# wait; a writer that committed meanwhile is caught by the INSERT's ON CONFLICT (and,
# for the funds check, by a second look — see _post).
LOCK_WITH_KEY_SQL = LOCK_SQL.replace(
    "ba.customer_id\n", "ba.customer_id,\n       (SELECT k.transfer_id FROM ledger_transfer_key k WHERE k.idempotency_key = %s)\n")


def _lock(ids, key=None):
    with connection.cursor() as cursor:
        if key is None:
            cursor.execute(LOCK_SQL, [ids])
        else:
            cursor.execute(LOCK_WITH_KEY_SQL, [key, ids])
        rows = cursor.fetchall()
    locked = {row[0]: LockedAccount(*row[:14]) for row in rows}
    missing = [i for i in ids if i not in locked]
    if missing:
        raise NotFound(f"Unknown ledger account {missing[0]}.", code="account_not_found")
    existing = rows[0][14] if key is not None and rows else None
    return locked, existing


def lock_accounts(*accounts) -> dict:
    """Take the account lock (rule 7) on billing or ledger accounts, in the fixed order.

    Must run inside the caller's transaction; the locks are held until it ends.
    Returns {ledger account id: LockedAccount}. Unknown accounts raise NotFound.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("lock_accounts() must run inside a transaction")
    return _lock(list(dict.fromkeys(_account_id(a) for a in accounts)))[0]


def _check_limit(account: LockedAccount, debit: Decimal, enforce_limit, *, floor: Decimal | None = None,
                 extra_credit: Decimal = ZERO) -> None:
    if account.billing_account_id is None or enforce_limit is False:
        return
    if enforce_limit is None and account.payment_mode != BillingAccount.PaymentMode.PREPAID:
        return
    minimum = -account.credit_limit - extra_credit if floor is None else floor
    if account.available - debit < minimum:
        extra = f" + {extra_credit.normalize():f} granted" if extra_credit else ""
        raise InsufficientFunds(
            f"Account {account.label} has {account.available.normalize():f} {account.currency} available"
            f" (credit limit {account.credit_limit.normalize():f}{extra}); {debit.normalize():f} {account.currency}"
            f" would take it below {minimum.normalize():f}.",
            fields={"amount": ["Insufficient funds."]})


UPDATE_TOTALS_SQL = """
UPDATE ledger_ledgeraccount a
SET debits_posted = a.debits_posted + v.dp, credits_posted = a.credits_posted + v.cp,
    debits_pending = a.debits_pending + v.dq, credits_pending = a.credits_pending + v.cq
FROM (VALUES {values}) AS v(id, dp, cp, dq, cq)
WHERE a.id = v.id
"""


def _apply(cursor, deltas: dict) -> None:
    """Add (debits_posted, credits_posted, debits_pending, credits_pending) deltas; rows are locked."""
    values = ", ".join(["(%s::uuid, %s::numeric, %s::numeric, %s::numeric, %s::numeric)"] * len(deltas))
    params = [p for account_id, d in deltas.items() for p in (account_id, *d)]
    cursor.execute(UPDATE_TOTALS_SQL.format(values=values), params)


def _add(deltas: dict, account_id, dp=ZERO, cp=ZERO, dq=ZERO, cq=ZERO) -> None:
    old = deltas.get(account_id, (ZERO, ZERO, ZERO, ZERO))
    deltas[account_id] = (old[0] + dp, old[1] + cp, old[2] + dq, old[3] + cq)


# --- transfers ---------------------------------------------------------------------------------

# Claim the key, insert and add to both accounts' totals in one statement; nothing is
# written when the key was already claimed (the conflict is resolved by the caller). The
# claim is the key table's primary key (the transfer table is partitioned by month: no
# unique index across months there); a second reversal of a transfer, or a second posting
# of a hold, fails on the key table's partial unique indexes.
INSERT_TRANSFER_SQL = """
WITH claimed AS (
  INSERT INTO ledger_transfer_key (idempotency_key, transfer_id, reverses_id, pending_id)
  VALUES (%(key)s, %(id)s, %(reverses)s, %(pending)s)
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING transfer_id
), inserted AS (
  INSERT INTO ledger_transfer (id, branch, debit_account_id, credit_account_id, amount, currency, kind, tags,
                               reference_type, reference_id, idempotency_key, reverses_id, pending_id, memo, actor,
                               created_at)
  SELECT c.transfer_id, %(branch)s, %(debit)s, %(credit)s, %(amount)s, %(currency)s, %(kind)s, %(tags)s::jsonb,
         %(ref_type)s, %(ref_id)s, %(key)s, %(reverses)s::uuid, %(pending)s::uuid, %(memo)s, %(actor)s,
         %(at)s::timestamptz
  FROM claimed c
  RETURNING id
), totals AS (
  UPDATE ledger_ledgeraccount a
  SET debits_posted = a.debits_posted + CASE WHEN a.id = %(debit)s THEN %(amount)s ELSE 0 END,
      credits_posted = a.credits_posted + CASE WHEN a.id = %(credit)s THEN %(amount)s ELSE 0 END,
      debits_pending = a.debits_pending - CASE WHEN a.id = %(hold_debit)s THEN %(held)s ELSE 0 END,
      credits_pending = a.credits_pending - CASE WHEN a.id = %(hold_credit)s THEN %(held)s ELSE 0 END
  WHERE a.id IN (%(debit)s, %(credit)s) AND EXISTS (SELECT 1 FROM inserted)
  RETURNING a.id
)
SELECT id, (SELECT count(*) FROM totals) FROM inserted
"""


def _replay(existing, candidate_content: dict, key: str):
    if existing.content() != candidate_content:
        raise IdempotencyConflict(
            f"The idempotency key {key!r} was used for a different movement ({existing.pk}).",
            fields={"idempotency_key": ["Already used for a different request."]})
    existing.replayed = True
    return existing


def _post(*, actor, debit, credit, amount, currency, kind, idempotency_key, tags=None, reference=None, memo="",
          enforce_limit=None, floor=None, extra_credit=ZERO, reverses=None, hold=None, allow_closed=False,
          locked=None) -> Transfer:
    """The one way a transfer is written. Runs in the caller's transaction, after validation."""
    key = _key(idempotency_key)
    amount = _amount(amount)
    currency = check_currency(currency)
    kind = _kind(kind)
    ref_type, ref_id = _reference(reference)
    debit_id, credit_id = _account_id(debit), _account_id(credit)
    if debit_id == credit_id:
        raise SameAccount("A transfer debits one account and credits another.",
                          fields={"credit_account": ["Must differ from the debit account."]})
    transfer = Transfer(id=uuid7(), debit_account_id=debit_id, credit_account_id=credit_id, amount=amount,
                        currency=currency, kind=kind, tags=_tags(tags), reference_type=ref_type,
                        reference_id=ref_id, idempotency_key=key, reverses=reverses, pending=hold,
                        memo=str(memo or ""), actor=actor_label(actor), created_at=now())
    if locked is None:
        locked, existing_id = _lock([debit_id, credit_id], key)
    else:
        existing_id = Transfer.objects.by_key(key).values_list("pk", flat=True).first()
    if existing_id is not None:
        return _replay(Transfer.objects.get(pk=existing_id), transfer.content(), key)
    d, c = locked[debit_id], locked[credit_id]
    for account in (d, c):
        if account.currency != currency:
            raise CurrencyMismatch(f"Account {account.label} is in {account.currency}, not {currency}.",
                                   fields={"currency": [f"The account's currency is {account.currency}."]})
        if account.closed and not allow_closed:
            raise AccountClosed(f"Account {account.label} is closed.")
    try:
        _check_limit(d, amount, enforce_limit, floor=floor, extra_credit=extra_credit)
    except InsufficientFunds:
        # A retry racing its original sees the original's debit but not (in the lock
        # statement's snapshot) its key: look again before refusing.
        existing = Transfer.objects.by_key(key).first()
        if existing is not None:
            return _replay(existing, transfer.content(), key)
        raise
    if hold is not None and {hold.debit_account_id, hold.credit_account_id} != {debit_id, credit_id}:
        raise ValueError("a hold is posted between its own accounts")
    with connection.cursor() as cursor:
        cursor.execute(INSERT_TRANSFER_SQL, {
            "id": transfer.id, "branch": transfer.branch, "debit": debit_id, "credit": credit_id, "amount": amount,
            "currency": currency, "kind": kind, "tags": json.dumps(transfer.tags), "ref_type": ref_type,
            "ref_id": ref_id, "key": key, "reverses": reverses.pk if reverses else None,
            "pending": hold.pk if hold else None, "memo": transfer.memo, "actor": transfer.actor,
            "at": transfer.created_at, "held": hold.amount if hold else ZERO,
            "hold_debit": hold.debit_account_id if hold else None,
            "hold_credit": hold.credit_account_id if hold else None})
        inserted = cursor.fetchone()
    if inserted is None:  # a concurrent writer took the key first (another pair of accounts)
        return _replay(Transfer.objects.by_key(key).get(), transfer.content(), key)
    if c.billing_account_id is not None:
        # Money reached a customer's account (payment, refund of a charge, adjustment…):
        # subscriptions re-evaluate suspension by balance in a job enqueued in this
        # transaction, so a payment resumes service within seconds.
        emit("ledger.account_credited", payload={
            "billing_account": str(c.billing_account_id), "ledger_account": str(credit_id),
            "transfer": str(transfer.id), "amount": f"{amount:f}", "currency": currency, "kind": kind})
    transfer.replayed = False
    return transfer


@transaction.atomic
def post_transfer(*, actor, debit, credit, amount, currency, kind, idempotency_key, tags=None, reference=None,
                  memo="", enforce_limit=None, extra_credit=ZERO) -> Transfer:
    """Move `amount` from `debit` to `credit` (ledger or billing accounts), once per key.

    Guarantees: one transaction; locks both accounts in the fixed order; idempotent by
    `idempotency_key` (a retry returns the first transfer with `replayed=True`; other
    content → 409 `idempotency_conflict`); balances updated with the transfer; nothing
    written on error. Where the limit is enforced, the debit account may go down to
    −(credit limit + `extra_credit`), read under the lock (`extra_credit`: a credit the
    caller grants on top of the limit, such as a promised payment). Errors:
    invalid_amount, amount_too_precise, amount_not_positive, amount_too_large,
    invalid_currency, currency_mismatch, same_account, invalid_kind, invalid_tags,
    idempotency_key_required, account_not_found (404), account_closed,
    insufficient_funds, idempotency_conflict (409).
    """
    return _post(actor=actor, debit=debit, credit=credit, amount=amount, currency=currency, kind=kind,
                 idempotency_key=idempotency_key, tags=tags, reference=reference, memo=memo,
                 enforce_limit=enforce_limit, extra_credit=_extra_credit(extra_credit))


def _extra_credit(value) -> Decimal:
    extra = parse_amount(value or 0, field="extra_credit")
    if extra < 0:
        raise ValidationFailed("An extra credit is zero or more.", code="invalid_amount",
                               fields={"extra_credit": ["Zero or more."]})
    return extra


@transaction.atomic
def reverse_transfer(transfer: Transfer, *, actor, reason: str, idempotency_key) -> Transfer:
    """Book the mirror of `transfer` (credit ↔ debit, same amount, kind `reversal`), at most once.

    Never refused for funds or a closed account: a correction must always be possible.
    Permission `ledger.reverse_transfer` for user actors. Idempotent by key. Errors:
    permission_denied (403), reason_required, not_reversible (a reversal is not
    reversed; reverse the original again instead — it cannot be), already_reversed,
    idempotency_conflict (409).
    """
    _require(actor, "ledger.reverse_transfer")
    reason = _reason(reason)
    original = Transfer.objects.get(pk=transfer.pk)
    if original.kind == Transfer.Kind.REVERSAL:
        raise NotReversible("A reversal cannot itself be reversed; post a new transfer instead.")
    locked = lock_accounts(original.debit_account_id, original.credit_account_id)
    key = _key(idempotency_key)
    existing = Transfer.objects.by_key(key).first()
    if existing is None:
        previous = Transfer.objects.filter(reverses=original).first()
        if previous is not None:
            raise AlreadyReversed(f"Transfer {original.pk} was already reversed by {previous.pk}.")
    result = _post(actor=actor, debit=original.credit_account_id, credit=original.debit_account_id, amount=original.amount,
                   currency=original.currency, kind=Transfer.Kind.REVERSAL, idempotency_key=key, tags=original.tags,
                   reference=(original.reference_type, original.reference_id) if original.reference_type else None,
                   memo=reason, enforce_limit=False, reverses=original, allow_closed=True, locked=locked)
    if not result.replayed:
        for account in BillingAccount.objects.filter(ledger_account__in=[original.debit_account_id,
                                                                         original.credit_account_id]):
            recorded.record(account, actor=actor, action="reverse",
                            changes={"transfer": [str(original.pk), str(result.pk)]}, message=reason)
    return result


def _reason(reason) -> str:
    reason = str(reason or "").strip()
    if not reason:
        raise ValidationFailed("A reason is required.", code="reason_required", fields={"reason": ["Required."]})
    return reason


# --- holds (two-phase transfers) ---------------------------------------------------------------

INSERT_HOLD_SQL = """
INSERT INTO ledger_hold (id, branch, debit_account_id, credit_account_id, amount, currency, kind, tags, reference_type,
                         reference_id, idempotency_key, memo, actor, created_at, expires_at, state, resolved_by,
                         resolution_note)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, 'pending', '', '')
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id
"""


@transaction.atomic
def create_hold(*, actor, debit, credit, amount, currency, idempotency_key, expires_at=None, kind="hold_post",
                tags=None, reference=None, memo="", enforce_limit=None) -> Hold:
    """Reserve `amount`: it counts in the accounts' pending totals until posted, voided or expired.

    The debit account's available balance drops at once (limits as for post_transfer).
    `expires_at` defaults to one day from now; `kind` is the kind of the transfer that
    posting will write. Locks both accounts; idempotent by key (retry returns the hold
    with `replayed=True`). Errors: as post_transfer, plus invalid_expiry.
    """
    key = _key(idempotency_key)
    amount = _amount(amount)
    currency = check_currency(currency)
    kind = _kind(kind)
    ref_type, ref_id = _reference(reference)
    at = now()
    expires_at = expires_at or at + DEFAULT_HOLD_TIMEOUT
    if expires_at <= at:
        raise ValidationFailed("A hold must expire in the future.", code="invalid_expiry",
                               fields={"expires_at": ["Must be in the future."]})
    debit_id, credit_id = _account_id(debit), _account_id(credit)
    if debit_id == credit_id:
        raise SameAccount("A hold debits one account and credits another.",
                          fields={"credit_account": ["Must differ from the debit account."]})
    hold = Hold(id=uuid7(), debit_account_id=debit_id, credit_account_id=credit_id, amount=amount, currency=currency,
                kind=kind, tags=_tags(tags), reference_type=ref_type, reference_id=ref_id, idempotency_key=key,
                memo=str(memo or ""), actor=actor_label(actor), created_at=at, expires_at=expires_at)
    locked = lock_accounts(debit, credit)
    existing = Hold.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return _replay(existing, hold.content(), key)
    for account in (locked[debit_id], locked[credit_id]):
        if account.currency != currency:
            raise CurrencyMismatch(f"Account {account.label} is in {account.currency}, not {currency}.",
                                   fields={"currency": [f"The account's currency is {account.currency}."]})
        if account.closed:
            raise AccountClosed(f"Account {account.label} is closed.")
    _check_limit(locked[debit_id], amount, enforce_limit)  # the key was read after the lock: no race here
    with connection.cursor() as cursor:
        cursor.execute(INSERT_HOLD_SQL, [hold.id, hold.branch, debit_id, credit_id, amount, currency, kind,
                                         json.dumps(hold.tags), ref_type, ref_id, key, hold.memo, hold.actor, at,
                                         expires_at])
        if cursor.fetchone() is None:
            return _replay(Hold.objects.get(idempotency_key=key), hold.content(), key)
        _apply(cursor, {debit_id: (ZERO, ZERO, amount, ZERO), credit_id: (ZERO, ZERO, ZERO, amount)})
    hold.replayed = False
    return hold


RESOLVE_HOLD_SQL = """
UPDATE ledger_hold SET state = %s, resolved_at = %s, resolved_by = %s, resolution_note = %s
WHERE id = %s AND state = 'pending'
"""


def _lock_hold(hold: Hold) -> tuple[dict, Hold]:
    locked = lock_accounts(hold.debit_account_id, hold.credit_account_id)
    return locked, Hold.objects.select_for_update().get(pk=hold.pk)


@transaction.atomic
def post_hold(hold: Hold, *, actor, idempotency_key, amount=None, memo="") -> Transfer:
    """Post a pending hold: one transfer of `amount` (default: all of it; less releases the rest).

    Exactly once: locks the accounts then the hold, checks it is pending and unexpired,
    moves it to `posted` with a conditional UPDATE, and writes the transfer (`pending`
    = the hold, unique). A retry with the same key returns the same transfer. Errors:
    hold_not_pending, hold_expired, idempotency_conflict (409), amount_exceeds_hold and
    the amount errors (400).
    """
    key = _key(idempotency_key)
    locked, hold = _lock_hold(hold)
    post_amount = hold.amount if amount is None else _amount(amount)
    existing = Transfer.objects.by_key(key).first()
    if existing is not None and existing.pending_id == hold.pk:
        if existing.amount != post_amount:
            raise IdempotencyConflict(f"The idempotency key {key!r} posted this hold for {existing.amount}.")
        existing.replayed = True
        return existing
    if hold.state != Hold.State.PENDING:
        raise HoldNotPending(f"The hold is already {hold.state}; a hold is resolved once.")
    if hold.expires_at <= now():
        raise HoldExpired(f"The hold expired at {hold.expires_at:%Y-%m-%d %H:%M:%S}.")
    if post_amount > hold.amount:
        raise ValidationFailed(f"Cannot post {post_amount.normalize():f}: the hold is for {hold.amount.normalize():f}.",
                               code="amount_exceeds_hold", fields={"amount": ["More than the hold."]})
    with connection.cursor() as cursor:
        cursor.execute(RESOLVE_HOLD_SQL, [Hold.State.POSTED, now(), actor_label(actor), str(memo or ""), hold.pk])
        if cursor.rowcount != 1:
            raise HoldNotPending("The hold is no longer pending.")
    return _post(actor=actor, debit=hold.debit_account_id, credit=hold.credit_account_id, amount=post_amount,
                 currency=hold.currency, kind=hold.kind, idempotency_key=key, tags=hold.tags,
                 reference=(hold.reference_type, hold.reference_id) if hold.reference_type else None,
                 memo=memo or hold.memo, enforce_limit=False, hold=hold, allow_closed=True, locked=locked)


@transaction.atomic
def void_hold(hold: Hold, *, actor, reason: str = "") -> Hold:
    """Release a pending hold. Voiding a voided hold returns it unchanged (safe to retry).

    Locks the accounts then the hold. Errors: hold_not_pending (posted or expired).
    """
    _locked, hold = _lock_hold(hold)
    if hold.state == Hold.State.VOIDED:
        hold.replayed = True
        return hold
    if hold.state != Hold.State.PENDING:
        raise HoldNotPending(f"The hold is already {hold.state}; a hold is resolved once.")
    at = now()
    with connection.cursor() as cursor:
        cursor.execute(RESOLVE_HOLD_SQL, [Hold.State.VOIDED, at, actor_label(actor), str(reason or ""), hold.pk])
        if cursor.rowcount != 1:
            raise HoldNotPending("The hold is no longer pending.")
        _apply(cursor, {hold.debit_account_id: (ZERO, ZERO, -hold.amount, ZERO),
                        hold.credit_account_id: (ZERO, ZERO, ZERO, -hold.amount)})
    hold.refresh_from_db()
    hold.replayed = False
    return hold


EXPIRE_SQL = """
WITH expired AS (
  UPDATE ledger_hold SET state = 'expired', resolved_at = %s, resolved_by = 'system:expiry'
  WHERE id = ANY(%s) AND state = 'pending' AND expires_at <= %s
  RETURNING debit_account_id, credit_account_id, amount
), deltas AS (
  SELECT account_id, sum(dq) AS dq, sum(cq) AS cq FROM (
    SELECT debit_account_id AS account_id, amount AS dq, 0 AS cq FROM expired
    UNION ALL SELECT credit_account_id, 0, amount FROM expired) d
  GROUP BY account_id
), updated AS (
  UPDATE ledger_ledgeraccount a SET debits_pending = a.debits_pending - deltas.dq,
                                    credits_pending = a.credits_pending - deltas.cq
  FROM deltas WHERE a.id = deltas.account_id
  RETURNING a.id
)
SELECT (SELECT count(*) FROM expired), (SELECT count(*) FROM updated)
"""


def expire_holds(*, as_of=None, batch_size: int = 1000) -> int:
    """Expire every pending hold whose `expires_at` ≤ `as_of` (default now); returns how many.

    Set-based, one transaction per batch: locks the batch's accounts in the fixed order,
    then expires with a conditional UPDATE (a hold posted or voided meanwhile is left
    alone) and releases the pending totals of exactly the holds it expired. Safe to run
    concurrently and to re-run.
    """
    as_of = as_of or now()
    total = 0
    while True:
        with transaction.atomic():
            batch = list(Hold.objects.filter(state=Hold.State.PENDING, expires_at__lte=as_of)
                         .order_by("expires_at", "id").values_list("id", "debit_account_id", "credit_account_id")
                         [:batch_size])
            if not batch:
                return total
            accounts = {a for _id, d, c in batch for a in (d, c)}
            with connection.cursor() as cursor:
                cursor.execute(LOCK_SQL, [list(accounts)])
                cursor.execute(EXPIRE_SQL, [now(), [h[0] for h in batch], as_of])
                expired, _accounts = cursor.fetchone()
        total += expired
        if len(batch) < batch_size:
            return total


# --- billing accounts ---------------------------------------------------------------------------

def _payment_mode(mode) -> str:
    if mode not in BillingAccount.PaymentMode.values:
        raise ValidationFailed(f"Unknown payment mode {mode!r}.", code="invalid_payment_mode",
                               fields={"payment_mode": ["prepaid or postpaid."]})
    return mode


def _credit_limit(value) -> Decimal:
    limit = parse_amount(value, field="credit_limit")
    if limit < 0:
        raise ValidationFailed("The credit limit cannot be negative.", code="credit_limit_negative",
                               fields={"credit_limit": ["Zero or more."]})
    return limit


@transaction.atomic
def open_account(*, actor, customer, currency, payment_mode="prepaid", credit_limit=0) -> BillingAccount:
    """Open a billing account for `customer`, with its ledger account `customer:<number>`.

    Numbered `next_number("A")` in this transaction; the opening mode is the first row
    of the payment-mode history. Errors: invalid_currency, invalid_payment_mode,
    credit_limit_negative and amount errors, customer_closed (409).
    """
    currency = check_currency(currency)
    payment_mode = _payment_mode(payment_mode)
    credit_limit = _credit_limit(credit_limit)
    if getattr(customer, "archived_at", None) is not None or getattr(customer, "status", "active") != "active":
        raise DomainError(f"Customer {customer} is closed or archived.", code="customer_closed", status=409,
                          fields={"customer": ["The customer is closed."]})
    number = next_number("A")
    ledger = LedgerAccount.objects.create(code=f"customer:{number}", kind=LedgerAccount.Kind.CUSTOMER,
                                          currency=currency, name=str(getattr(customer, "display_name", ""))[:200])
    account = recorded.create(BillingAccount, actor=actor, number=number, customer=customer, currency=currency,
                              payment_mode=payment_mode, credit_limit=credit_limit, ledger_account=ledger)
    PaymentModeChange.objects.create(billing_account=account, from_mode="", to_mode=payment_mode,
                                     effective_date=today(), actor=actor_label(actor), reason="opened")
    return account


def _locked_billing(account: BillingAccount) -> tuple[LockedAccount, BillingAccount]:
    locked = lock_accounts(account)[account.ledger_account_id]
    return locked, BillingAccount.objects.select_related("ledger_account").get(pk=account.pk)


# Apps above the ledger that keep money of an account in flight (online charging's open
# sessions and their reservations) settle it when the account switches payment mode, in the
# switch's transaction and under its lock: hook(account, *, actor, from_mode, to_mode) returns
# a dict of counts (e.g. {"settled_sessions": 2}) and "notes" (sentences for the operator).
_switch_hooks: list = []


def on_payment_mode_switch(hook):
    """Register a hook the payment-mode switch runs before the mode changes (see `_switch_hooks`)."""
    if hook not in _switch_hooks:
        _switch_hooks.append(hook)
    return hook


@transaction.atomic
def switch_payment_mode(account: BillingAccount, *, actor, payment_mode, reason: str = "") -> BillingAccount:
    """Switch prepaid ↔ postpaid from today; the history keeps every mode and its start.

    Takes the account lock. Permission `ledger.switch_payment_mode` for user actors.
    Before the mode changes, the registered hooks settle what is in flight (online charging
    closes the account's open sessions at what they reported and releases their holds); what
    they did is kept on the history row (`PaymentModeChange.effects`), in the audit message,
    and on the returned account as `mode_change`.
    Errors: invalid_payment_mode, payment_mode_unchanged (409), account_closed.
    """
    _require(actor, "ledger.switch_payment_mode")
    payment_mode = _payment_mode(payment_mode)
    _locked, account = _locked_billing(account)
    if not account.is_active:
        raise AccountClosed(f"Account {account} is closed.")
    if account.payment_mode == payment_mode:
        raise DomainError(f"Account {account} is already {payment_mode}.", code="payment_mode_unchanged", status=409,
                          fields={"payment_mode": ["Already so."]})
    effects: dict = {"notes": []}
    for hook in _switch_hooks:
        done = dict(hook(account, actor=actor, from_mode=account.payment_mode, to_mode=payment_mode) or {})
        effects["notes"] += [str(n) for n in done.pop("notes", [])]
        for name, value in done.items():
            effects[name] = effects.get(name, 0) + value if isinstance(value, int) else value
    change = PaymentModeChange.objects.create(
        billing_account=account, from_mode=account.payment_mode, to_mode=payment_mode, effective_date=today(),
        actor=actor_label(actor), reason=str(reason or ""), effects=effects)
    reason_text = str(reason or "").strip().rstrip(".")
    message = " ".join(part for part in [f"{reason_text}." if reason_text else "", *effects["notes"]] if part)
    account = recorded.update(account, actor=actor, action="switch_payment_mode", message=message,
                              payment_mode=payment_mode)
    account.mode_change = change
    return account


@transaction.atomic
def set_credit_limit(account: BillingAccount, *, actor, credit_limit) -> BillingAccount:
    """Change the credit limit (≥ 0) under the account lock; lowering it never moves money.

    Errors: credit_limit_negative, amount errors, account_closed.
    """
    _require(actor, "ledger.change_billingaccount")
    credit_limit = _credit_limit(credit_limit)
    _locked, account = _locked_billing(account)
    if not account.is_active:
        raise AccountClosed(f"Account {account} is closed.")
    return recorded.update(account, actor=actor, credit_limit=credit_limit)


@transaction.atomic
def close_account(account: BillingAccount, *, actor, reason: str = "") -> BillingAccount:
    """Close an account whose balance is zero and that has no pending holds. Final. Emits
    `ledger.account_closed`.

    Takes the account lock. Permission `ledger.close_account` for user actors. Errors:
    account_closed, balance_not_zero, holds_pending (409).
    """
    _require(actor, "ledger.close_account")
    locked, account = _locked_billing(account)
    if not account.is_active:
        raise AccountClosed(f"Account {account} is already closed.")
    if locked.balance != 0:
        raise DomainError(f"Account {account} has a balance of {locked.balance.normalize():f} {locked.currency};"
                          " refund or transfer it first.", code="balance_not_zero", status=409)
    if locked.debits_pending or locked.credits_pending:
        raise DomainError(f"Account {account} has pending holds; post or void them first.", code="holds_pending",
                          status=409)
    closed = recorded.update(account, actor=actor, action="close", message=str(reason or ""),
                             status=BillingAccount.Status.CLOSED, closed_at=now())
    # Upper layers react (billing: the final invoice), through the outbox.
    emit("ledger.account_closed", obj=closed, payload={"billing_account": str(closed.pk), "number": closed.number,
                                                       "reason": str(reason or "")})
    return closed


def system_account(code: str, currency: str, *, name: str = "") -> LedgerAccount:
    """The system account `code` in `currency`, created on first use (race-safe).

    Codes: `cash:<desk>`, `clearing:<gateway>`, `revenue:<service type>`,
    `taxes_payable:<tax code>`, `voucher_liability`, `settlement:<branch>`,
    `adjustments`, `bank`, … (`customer:` codes belong to billing accounts).
    """
    currency = check_currency(currency)
    if not SYSTEM_CODE.match(code or "") or code.startswith("customer:") or len(code) > 100:
        raise ValidationFailed(f"Bad system account code {code!r}.", code="invalid_account_code",
                               fields={"code": ["A lower-case prefix, optionally ':' and a name, e.g. cash:DESK1."]})
    found = LedgerAccount.objects.filter(code=code, currency=currency).first()
    if found is not None:
        return found
    with connection.cursor() as cursor:
        cursor.execute("""INSERT INTO ledger_ledgeraccount (id, branch, code, kind, currency, name, debits_posted,
                          credits_posted, debits_pending, credits_pending, created_at)
                          VALUES (%s, %s, %s, 'system', %s, %s, 0, 0, 0, 0, %s)
                          ON CONFLICT (code, currency) DO NOTHING""",
                       [uuid7(), settings.TARIFA_BRANCH_CODE, code, currency, name[:200], now()])
    return LedgerAccount.objects.get(code=code, currency=currency)


@transaction.atomic
def spread_account(code: str, currency: str, *, key: str, name: str = "") -> LedgerAccount:
    """One row of the system account `code`, spread over SPREAD_ROWS ledger rows (default 8).

    Every posting locks the rows it touches until its transaction ends, so a system
    account that every payment of a channel debits (`clearing:card`) serialises them all.
    Spread, it is `SPREAD_ROWS` ordinary system accounts: `code` itself and `code~2` …
    `code~N`, one chosen by a hash of `key` (the caller's idempotency key: a retry lands
    on the same row). Each row is a full ledger account — its totals are its transfers',
    checked by `tarifa ledger check` like any other — and the account's balance is the
    sum of its rows (`selectors.spread_balance`). A refund or reversal books against the
    row the original movement used. Rows are created on first use.
    """
    row = zlib.crc32(str(key).encode()) % SPREAD_ROWS + 1 if SPREAD_ROWS > 1 else 1
    return system_account(code if row == 1 else f"{code}~{row}", currency, name=name)


def adjust(*, actor, account: BillingAccount, amount, reason: str, idempotency_key, tags=None) -> Transfer:
    """A manual correction: positive credits the customer, negative debits them (against `adjustments`).

    Permission `ledger.adjust` for user actors; a reason is required and kept as the
    memo and in the account's history. Not limited by funds (an operator's decision).
    Idempotent by key. Errors: permission_denied, reason_required, amount_zero, amount
    errors, account_closed, idempotency_conflict.
    """
    _require(actor, "ledger.adjust")
    reason = _reason(reason)
    amount = parse_amount(amount)
    if amount == 0:
        raise ValidationFailed("An adjustment moves a non-zero amount.", code="amount_zero",
                               fields={"amount": ["Not zero."]})
    other = system_account("adjustments", account.currency)
    debit, credit = (other, account) if amount > 0 else (account, other)
    transfer = _post(actor=actor, debit=debit, credit=credit, amount=abs(amount), currency=account.currency,
                     kind=Transfer.Kind.ADJUSTMENT, idempotency_key=idempotency_key, tags=tags, reference=account,
                     memo=reason, enforce_limit=False)
    if not transfer.replayed:
        recorded.record(account, actor=actor, action="adjust", message=reason,
                        changes={"amount": [None, f"{amount.normalize():f}"], "transfer": [None, str(transfer.pk)]})
    return transfer


@transaction.atomic
def transfer_between_accounts(*, actor, source: BillingAccount, target: BillingAccount, amount, reason: str,
                              idempotency_key) -> Transfer:
    """Move money the source has (available ≥ amount; credit is not moved) to another account
    of the same customer in the same currency.

    Permission `ledger.transfer_funds` for user actors. Locks both accounts (fixed
    order); idempotent by key. Errors: permission_denied, reason_required,
    not_same_customer, currency_mismatch, same_account, insufficient_funds,
    account_closed, idempotency_conflict, amount errors.
    """
    _require(actor, "ledger.transfer_funds")
    reason = _reason(reason)
    if source.pk == target.pk:
        raise SameAccount("Source and target are the same account.", fields={"target": ["Choose another account."]})
    if source.customer_id != target.customer_id:
        raise ValidationFailed("Funds move only between accounts of the same customer.", code="not_same_customer",
                               fields={"target": ["Another customer's account."]})
    if source.currency != target.currency:
        raise CurrencyMismatch(f"{source} is in {source.currency}, {target} in {target.currency}.",
                               fields={"target": ["Another currency."]})
    transfer = _post(actor=actor, debit=source, credit=target, amount=amount, currency=source.currency,
                     kind=Transfer.Kind.TRANSFER, idempotency_key=idempotency_key, reference=source, memo=reason,
                     enforce_limit=True, floor=ZERO)
    if not transfer.replayed:
        for account, direction in ((source, "to"), (target, "from")):
            recorded.record(account, actor=actor, action="transfer_funds", message=reason,
                            changes={"amount": [None, f"{transfer.amount.normalize():f}"],
                                     direction: [None, str(target if direction == "to" else source)]})
    return transfer


# --- customer registration -----------------------------------------------------------------------

def default_currency() -> str:
    return _default_currency()


def may_open_accounts(actor) -> bool:
    """Whether `actor` may open billing accounts (internal actors, strings, may)."""
    return not hasattr(actor, "has_perm") or actor.has_perm("ledger.add_billingaccount")


@transaction.atomic
def register_customer(*, actor, currency=None, payment_mode=None, credit_limit=None, **customer_fields):
    """Register a customer (crm) with their first billing account, in one transaction.

    crm cannot import the ledger (apps depend downward), so this is the write path the
    customer screens and `POST /api/v1/customers/` use. Errors: crm's, then open_account's.
    The first account is opened only for an actor who may open accounts
    (ledger.add_billingaccount): for one who may not, the customer is registered without an
    account when no account terms were given (someone who may opens it later), and the whole
    registration is refused (permission_denied, nothing written) when terms were given.
    """
    from tarifa.crm import services as crm

    terms_given = any(v not in (None, "") for v in (currency, payment_mode, credit_limit))
    if not may_open_accounts(actor):
        if terms_given:
            _require(actor, "ledger.add_billingaccount")
        return crm.create_customer(actor=actor, **customer_fields)
    customer = crm.create_customer(actor=actor, **customer_fields)
    open_account(actor=actor, customer=customer, currency=currency or default_currency(),
                 payment_mode=payment_mode or "prepaid", credit_limit=credit_limit or 0)
    return customer


# --- the bulk path --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class BulkTransfer:
    """One row of post_transfers_bulk: ledger account ids, a positive amount, a unique key."""

    debit_account_id: object
    credit_account_id: object
    amount: Decimal
    currency: str
    kind: str
    idempotency_key: str
    tags: dict | None = None
    reference_type: str = ""
    reference_id: str = ""
    memo: str = ""


@dataclasses.dataclass(frozen=True)
class BulkResult:
    staged: int  # rows given
    inserted: int  # transfers written now
    existing: int  # rows whose key was already posted with the same content (a re-run)
    refused: int = 0  # rows left out because they did not fit the debit account's limit (enforce_limit)


STAGE_COLUMNS = ("debit_account_id", "credit_account_id", "amount", "currency", "kind", "idempotency_key", "tags",
                 "reference_type", "reference_id", "memo")

BULK_STAGE_SQL = """
DROP TABLE IF EXISTS ledger_bulk_stage;
CREATE TEMP TABLE ledger_bulk_stage (
  id uuid NOT NULL DEFAULT ledger_uuid7(),
  debit_account_id uuid, credit_account_id uuid, amount numeric, currency text, kind text,
  idempotency_key text, tags jsonb, reference_type text, reference_id text, memo text
) ON COMMIT DROP;
"""

BULK_VALIDATE_SQL = """
SELECT idempotency_key, problem FROM (
  SELECT s.idempotency_key, CASE
    WHEN s.idempotency_key IS NULL OR s.idempotency_key = '' THEN 'idempotency_key_required'
    WHEN length(s.idempotency_key) > %(max_key)s THEN 'idempotency_key_too_long'
    WHEN s.amount IS NULL OR s.amount <= 0 THEN 'amount_not_positive'
    WHEN s.amount <> round(s.amount, 6) THEN 'amount_too_precise'
    WHEN s.amount >= 1e14 THEN 'amount_too_large'
    WHEN s.kind IS NULL OR NOT (s.kind = ANY(%(kinds)s)) THEN 'invalid_kind'
    WHEN s.debit_account_id IS NULL OR s.credit_account_id IS NULL OR d.id IS NULL OR c.id IS NULL
      THEN 'account_not_found'
    WHEN s.debit_account_id = s.credit_account_id THEN 'same_account'
    WHEN s.currency IS DISTINCT FROM d.currency OR s.currency IS DISTINCT FROM c.currency THEN 'currency_mismatch'
    WHEN bd.status = 'closed' OR bc.status = 'closed' THEN 'account_closed'
    WHEN s.tags IS NOT NULL AND jsonb_typeof(s.tags) <> 'object' THEN 'invalid_tags'
    WHEN length(coalesce(s.reference_type, '')) > 100 OR length(coalesce(s.reference_id, '')) > 64
      THEN 'invalid_reference'
  END AS problem
  FROM ledger_bulk_stage s
  LEFT JOIN ledger_ledgeraccount d ON d.id = s.debit_account_id
  LEFT JOIN ledger_ledgeraccount c ON c.id = s.credit_account_id
  LEFT JOIN ledger_billingaccount bd ON bd.ledger_account_id = s.debit_account_id
  LEFT JOIN ledger_billingaccount bc ON bc.ledger_account_id = s.credit_account_id
) checked
WHERE problem IS NOT NULL
LIMIT 20
"""

BULK_LOCK_SQL = """
SELECT count(*) FROM (
  SELECT la.id FROM ledger_ledgeraccount la
  WHERE la.id IN (SELECT debit_account_id FROM ledger_bulk_stage UNION SELECT credit_account_id FROM ledger_bulk_stage)
  ORDER BY (la.kind = 'system'), la.id
  FOR UPDATE
) locked
"""

BULK_INSERT_SQL = """
WITH claimed AS (
  INSERT INTO ledger_transfer_key (idempotency_key, transfer_id)
  SELECT s.idempotency_key, s.id FROM ledger_bulk_stage s
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING transfer_id
), inserted AS (
  INSERT INTO ledger_transfer (id, branch, debit_account_id, credit_account_id, amount, currency, kind, tags,
                               reference_type, reference_id, idempotency_key, memo, actor, created_at)
  SELECT s.id, %(branch)s, s.debit_account_id, s.credit_account_id, s.amount, s.currency, s.kind,
         coalesce(s.tags, '{}'::jsonb), coalesce(s.reference_type, ''), coalesce(s.reference_id, ''),
         s.idempotency_key, coalesce(s.memo, ''), %(actor)s, %(at)s::timestamptz
  FROM ledger_bulk_stage s JOIN claimed c ON c.transfer_id = s.id
  RETURNING debit_account_id, credit_account_id, amount
), deltas AS (
  SELECT account_id, sum(dp) AS dp, sum(cp) AS cp FROM (
    SELECT debit_account_id AS account_id, amount AS dp, 0 AS cp FROM inserted
    UNION ALL SELECT credit_account_id, 0, amount FROM inserted) d
  GROUP BY account_id
), updated AS (
  UPDATE ledger_ledgeraccount a SET debits_posted = a.debits_posted + deltas.dp,
                                    credits_posted = a.credits_posted + deltas.cp
  FROM deltas WHERE a.id = deltas.account_id
  RETURNING a.id
)
SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM updated)
"""

# The limit, after the lock (so the totals read are the ones the insert adds to): rows
# debiting a limited customer account are taken in `{order}` and posted only while the
# running sum fits, available − running sum ≥ −(credit limit + extra credit). The sum runs
# over refused rows too, so an account's posted rows are a prefix of its rows in that
# order. Rows whose key is already posted are left out of the sum (the insert skips
# them); credits in the same batch are not counted (conservative).
BULK_REFUSE_SQL = """
CREATE TEMP TABLE ledger_bulk_refused ON COMMIT DROP AS
WITH extra(account_id, amount) AS ({extra}), credit AS (
  SELECT account_id, sum(amount) AS amount FROM extra GROUP BY account_id
), checked AS (
  SELECT s.id, la.credits_posted - la.debits_posted - la.debits_pending AS available,
         -ba.credit_limit - coalesce(cr.amount, 0) AS floor,
         sum(s.amount) OVER (PARTITION BY s.debit_account_id ORDER BY {order}, s.idempotency_key, s.id
                             ROWS UNBOUNDED PRECEDING) AS running
  FROM ledger_bulk_stage s
  JOIN ledger_ledgeraccount la ON la.id = s.debit_account_id
  JOIN ledger_billingaccount ba ON ba.ledger_account_id = s.debit_account_id
  LEFT JOIN credit cr ON cr.account_id = s.debit_account_id
  WHERE ({every} OR ba.payment_mode = 'prepaid')
    AND NOT EXISTS (SELECT 1 FROM ledger_transfer_key k WHERE k.idempotency_key = s.idempotency_key)
)
SELECT s.*, c.available, c.floor, c.running FROM ledger_bulk_stage s JOIN checked c ON c.id = s.id
WHERE c.available - c.running < c.floor
"""

NO_EXTRA_CREDIT = "SELECT NULL::uuid, NULL::numeric WHERE false"

# Rows not inserted (their key existed, or repeated within the batch) must match the
# transfer that holds the key; the staged id tells which rows were inserted.
BULK_CONFLICTS_SQL = """
SELECT s.idempotency_key, t.id FROM ledger_bulk_stage s
JOIN ledger_transfer_key k ON k.idempotency_key = s.idempotency_key
JOIN ledger_transfer t ON t.id = k.transfer_id
WHERE t.id <> s.id AND (
  t.debit_account_id, t.credit_account_id, t.amount, t.currency, t.kind, t.tags, t.reference_type,
  t.reference_id, t.memo, t.reverses_id, t.pending_id
) IS DISTINCT FROM (
  s.debit_account_id, s.credit_account_id, s.amount, s.currency, s.kind, coalesce(s.tags, '{}'::jsonb),
  coalesce(s.reference_type, ''), coalesce(s.reference_id, ''), coalesce(s.memo, ''), NULL::uuid, NULL::uuid
)
LIMIT 20
"""


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _copy_text(value) -> str:
    """A value in COPY's text format: NULL is \\N; backslash, tab and line breaks escaped."""
    if value is None:
        return "\\N"
    value = str(value)
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:  # rare: translate is slow
        return value.translate(_COPY_ESCAPES)
    return value


def _bulk_line(row) -> str:
    """One row as a line of COPY text: built by hand, which is several times faster than
    adapting each value through the driver — it matters at a million rows."""
    if isinstance(row, dict):
        row = BulkTransfer(**row)
    if isinstance(row, BulkTransfer):
        row = (row.debit_account_id, row.credit_account_id, row.amount, row.currency, row.kind, row.idempotency_key,
               row.tags, row.reference_type, row.reference_id, row.memo)
    elif not 6 <= len(row) <= 10:
        raise ValidationFailed("A bulk row has 6 to 10 fields (see BulkTransfer).", code="bulk_invalid")
    elif len(row) < 10:
        row = tuple(row) + (None, "", "", "")[len(row) - 6:]
    debit, credit, amount, currency, kind, key, tags, ref_type, ref_id, memo = row
    if type(amount) is not Decimal and (not isinstance(amount, (int, str)) or isinstance(amount, bool)):
        raise ValidationFailed(f"Bulk amounts are Decimals, never {type(amount).__name__}: row {key!r}.",
                               code="invalid_amount")
    text = _copy_text
    return (f"{text(debit)}\t{text(credit)}\t{text(amount)}\t{text(currency)}\t{text(kind)}\t{text(key)}\t"
            f"{text(_JSON.encode(tags)) if tags is not None else NULL_TEXT}\t{text(ref_type or '')}\t"
            f"{text(ref_id or '')}\t{text(memo or '')}\n")


NULL_TEXT = "\\N"


@transaction.atomic
def post_transfers_bulk(rows: Iterable | None = None, *, query: str | None = None, params=None, actor="system",
                        created_at=None, enforce_limit=False, extra_credit: str | None = None,
                        order_by: str | None = None) -> BulkResult:
    """Post many transfers with set-based SQL in one transaction; a re-run posts nothing twice.

    Give `rows` (BulkTransfer, dicts or tuples in BulkTransfer's field order; streamed
    into a temporary table with COPY) or `query`, a SELECT yielding the columns
    (debit_account_id, credit_account_id, amount, currency, kind, idempotency_key, tags,
    reference_type, reference_id, memo) — run as INSERT … SELECT, so charges computed in
    SQL never travel through Python.

    Then: one validation pass (any bad row → ValidationFailed `bulk_invalid` naming up
    to 20 keys, nothing written); the accounts involved are locked in the fixed order;
    one statement claims the keys (`ON CONFLICT (idempotency_key) DO NOTHING` on the key
    table), inserts the transfers whose key it claimed and adds to
    the account totals only what `RETURNING` says was inserted; rows skipped for an
    existing key must match it, or IdempotencyConflict rolls the whole batch back.
    Batches of 10⁴–10⁵ rows keep lock times and memory modest.

    Funds limits are not checked by default (`enforce_limit=False`: rating, billing,
    imports). With `enforce_limit=None` (prepaid customer accounts) or `True` (every
    customer account), each such account's rows are taken in `order_by` (an SQL
    ORDER BY list over the staged row `s`, e.g. `"s.tags->>'period'"`; then the key)
    and posted only while they fit: available (read after the lock) − running sum ≥
    −(credit limit + extra credit). The first row that does not fit and every later row
    of that account are refused: not posted, counted in `refused`, and kept until the end
    of the transaction (or the next call) in the temporary table `ledger_bulk_refused`
    (the staged columns plus `available`, `floor`, `running`) for the caller to act on
    set-based. `extra_credit` is an optional SELECT of (ledger account id, amount) run
    with `params` (so give params as a mapping), a credit the caller grants on top of
    the limit. A refusal is not an error: the rest of the batch is posted.
    """
    if (rows is None) == (query is None):
        raise ValueError("give rows or query")
    at = created_at or now()
    with connection.cursor() as cursor:
        cursor.execute(BULK_STAGE_SQL)
        columns = ", ".join(STAGE_COLUMNS)
        if query is not None:
            # Staged in key order, so the ids (time-ordered, given as rows are staged) follow
            # the keys: the insert into ledger_transfer then walks the idempotency-key and
            # reference indexes (keys name the referenced object) in order, not at random.
            cursor.execute(f"INSERT INTO ledger_bulk_stage ({columns}) SELECT * FROM ({query}) AS q ({columns})"
                           " ORDER BY idempotency_key", params or [])
        else:
            with cursor.cursor.copy(f"COPY ledger_bulk_stage ({columns}) FROM STDIN") as copy:
                chunk = []
                for row in rows:
                    chunk.append(_bulk_line(row))
                    if len(chunk) >= 5000:
                        copy.write("".join(chunk))
                        chunk.clear()
                if chunk:
                    copy.write("".join(chunk))
        cursor.execute("SELECT count(*) FROM ledger_bulk_stage")
        staged = cursor.fetchone()[0]
        if not staged:
            return BulkResult(0, 0, 0)
        cursor.execute("ANALYZE ledger_bulk_stage")
        cursor.execute(BULK_VALIDATE_SQL, {"max_key": MAX_KEY_LENGTH, "kinds": sorted(KINDS)})
        problems = cursor.fetchall()
        if problems:
            raise ValidationFailed(
                f"{len(problems)}{'+' if len(problems) == 20 else ''} bad rows, e.g. {problems[0][0]!r}:"
                f" {problems[0][1]}; nothing was posted.", code="bulk_invalid",
                fields={"rows": [f"{key}: {problem}" for key, problem in problems]})
        cursor.execute(BULK_LOCK_SQL)
        refused = 0
        if enforce_limit is not False:
            cursor.execute("DROP TABLE IF EXISTS ledger_bulk_refused")
            cursor.execute(BULK_REFUSE_SQL.format(extra=extra_credit or NO_EXTRA_CREDIT,
                                                  order=order_by or "s.idempotency_key",
                                                  every="TRUE" if enforce_limit else "FALSE"),
                           (params or {}) if extra_credit else None)
            refused = cursor.rowcount
            if refused:
                cursor.execute("DELETE FROM ledger_bulk_stage WHERE id IN (SELECT id FROM ledger_bulk_refused)")
        cursor.execute(BULK_INSERT_SQL, {"branch": settings.TARIFA_BRANCH_CODE, "actor": actor_label(actor),
                                         "at": at})
        inserted, _updated = cursor.fetchone()
        if inserted < staged - refused:
            cursor.execute(BULK_CONFLICTS_SQL)
            conflicts = cursor.fetchall()
            if conflicts:
                raise IdempotencyConflict(
                    f"{len(conflicts)} keys were posted before with other content, e.g. {conflicts[0][0]!r}"
                    f" ({conflicts[0][1]}); nothing was posted.",
                    fields={"rows": [f"{key}: {tid}" for key, tid in conflicts]})
        cursor.execute("DROP TABLE ledger_bulk_stage")
    return BulkResult(staged=staged, inserted=inserted, existing=staged - inserted - refused, refused=refused)


# --- partitions of the transfer table ----------------------------------------------------------

# How many months ahead the periodic job keeps partitions ready (the DEFAULT partition takes
# a transfer whose month has none, but a month's partition cannot be made once the default
# holds rows of that month: docs/ledger.md, "Partitions").
PARTITION_MONTHS_AHEAD = 3


def ensure_transfer_partitions(ahead: int = PARTITION_MONTHS_AHEAD) -> int:
    """Make the monthly partitions of `ledger_transfer` for this month and the next `ahead`
    months (UTC) that do not exist yet, each with its guards; returns how many were made.
    Idempotent: the job `ledger.ensure_partitions` runs it daily; the DDL is the database
    function of migration 0008. Fails (nothing made) if the DEFAULT partition holds rows of
    a month to be made."""
    if ahead < 0:
        raise ValidationFailed("Months ahead cannot be negative.", code="invalid_months", fields={"ahead": [">= 0"]})
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT ledger_transfer_ensure_partitions(%s)", [ahead])
        return cursor.fetchone()[0]


__all__ = [
    "LEDGER_QUANTUM", "BulkResult", "BulkTransfer", "LockedAccount", "adjust", "close_account", "create_hold",
    "ensure_transfer_partitions", "expire_holds", "lock_accounts", "open_account", "post_hold", "post_transfer", "post_transfers_bulk",
    "register_customer", "reverse_transfer", "set_credit_limit", "switch_payment_mode", "system_account",
    "transfer_between_accounts", "void_hold",
]
