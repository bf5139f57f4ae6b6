"""Vouchers (scratch cards): generate a batch, sell it, redeem a card to an account, once.

Accounting (docs/payments.md): generating books nothing (printed cards are not money);
selling a batch (to a dealer, or over a desk) debits what was received — `cash:<desk>`,
`bank` or `dealer:<name>` (a receivable) — and credits `voucher_liability` with count ×
nominal; redeeming a card debits `voucher_liability` and credits the customer (a payment
of channel `voucher`). Unsold batches cannot be redeemed. Expired cards stay in the
liability until written off.
"""

import datetime as dt
import logging
import re
import secrets

from django.db import connection, transaction

from tarifa.audit import context
from tarifa.audit import services as recorded
from tarifa.kernel.clock import now, today
from tarifa.kernel.errors import ValidationFailed
from tarifa.kernel.ids import uuid7
from tarifa.kernel.money import check_currency
from tarifa.kernel.numbering import next_number
from tarifa.ledger import services as ledger
from tarifa.ledger.models import Transfer

from .. import errors
from ..models import CashDesk, Channel, Payment, Voucher, VoucherAttempt, VoucherBatch
from . import common
from .payments import accept_payment

log = logging.getLogger("tarifa.payments.vouchers")

CODE_DIGITS = 16
MAX_BATCH = 100_000
THROTTLE_WINDOW = dt.timedelta(minutes=15)
THROTTLE_FAILURES = 5
LIABILITY_ACCOUNT = "voucher_liability"
SALE_SOURCES = ("cash", "bank", "dealer")


def normalize_code(code: str) -> str:
    return re.sub(r"[\s\-]", "", str(code or ""))


def code_hash(code: str) -> str:
    return common.peppered(normalize_code(code), "voucher")


def format_code(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


@transaction.atomic
def generate_batch(*, actor, count: int, nominal, currency: str, expires_on, note: str = "") -> tuple[VoucherBatch, list]:
    """Generate `count` cards of `nominal`; returns (batch, [(serial, code), …]) — the only time the codes exist.

    Codes are 16 random digits (`secrets`); only their HMAC-SHA256 with the
    installation's pepper is stored, with a serial (`<batch number>-<n>`) for support.
    Nothing is booked until the batch is sold. Errors: invalid_count, amount errors,
    invalid_currency, invalid_expiry.
    """
    currency = check_currency(currency)
    try:
        count = int(count)
    except (TypeError, ValueError):
        count = 0
    if not 1 <= count <= MAX_BATCH:
        raise ValidationFailed(f"A batch holds 1 to {MAX_BATCH} cards.", code="invalid_count",
                               fields={"count": [f"1 to {MAX_BATCH}."]})
    nominal = common.payment_amount(nominal, currency, field="nominal")
    if isinstance(expires_on, str):
        try:
            expires_on = dt.date.fromisoformat(expires_on)
        except ValueError:
            expires_on = None
    if not isinstance(expires_on, dt.date) or expires_on < today():
        raise ValidationFailed("The expiry date must be today or later.", code="invalid_expiry",
                               fields={"expires_on": ["Today or later."]})
    batch = VoucherBatch(id=uuid7(), number=next_number("VB", width=5), count=count, nominal=nominal,
                         currency=currency, expires_on=expires_on, note=str(note or ""))
    batch.save(force_insert=True)
    cards, rows, seen = [], [], set()
    while len(cards) < count:
        code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
        digest = code_hash(code)
        if digest in seen:
            continue
        seen.add(digest)
        serial = f"{batch.number}-{len(cards) + 1:06d}"
        cards.append((serial, format_code(code)))
        rows.append((uuid7(), batch.pk, serial, digest))
    with connection.cursor() as cursor:
        # Astronomically unlikely, a code may collide with an older batch's: the unique index says so
        # and the whole batch is refused (generate again).
        with cursor.cursor.copy("COPY payments_voucher (id, batch_id, serial, code_hash, state) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((*row, Voucher.State.ISSUED))
    recorded.record(batch, actor=actor, action="generate",
                    changes={"count": [None, count], "nominal": [None, common.units(nominal, currency)], "currency": [None, currency],
                             "expires_on": [None, str(expires_on)]})
    return batch, cards


@transaction.atomic
def sell_batch(batch: VoucherBatch, *, actor, paid_via: str, sold_to: str = "", desk: CashDesk | None = None) -> VoucherBatch:
    """Activate the batch: its value (count × nominal) becomes `voucher_liability`, paid via
    `cash` (at `desk`), `bank`, or owed by a `dealer` (`dealer:<sold_to>` receivable).

    Permission `payments.sell_voucherbatch`. Once per batch (ledger key). Errors:
    permission_denied, batch_not_generated (409), invalid_source, desk_required.
    """
    common.require(actor, "payments.sell_voucherbatch")
    batch = VoucherBatch.objects.select_for_update().get(pk=batch.pk)
    if batch.state != VoucherBatch.State.GENERATED:
        raise ValidationFailed(f"Batch {batch.number} is {batch.get_state_display().lower()}.",
                               code="batch_not_generated", status=409)
    if paid_via not in SALE_SOURCES:
        raise ValidationFailed(f"Unknown source {paid_via!r}.", code="invalid_source",
                               fields={"paid_via": [f"One of: {', '.join(SALE_SOURCES)}."]})
    if paid_via == "cash":
        if desk is None:
            raise ValidationFailed("Name the desk that took the cash.", code="desk_required", fields={"desk": ["Required."]})
        if desk.currency != batch.currency:
            raise errors.CurrencyMismatch("The desk keeps another currency.", fields={"desk": ["Other currency."]})
        debit = desk.ledger_account_id
    elif paid_via == "bank":
        debit = ledger.system_account("bank", batch.currency).pk
    else:
        dealer = re.sub(r"[^A-Za-z0-9_.\-]", "_", (sold_to or "").strip())[:60] or "unnamed"
        debit = ledger.system_account(f"dealer:{dealer}", batch.currency, name=f"Dealer {sold_to}"[:200]).pk
    liability = ledger.system_account(LIABILITY_ACCOUNT, batch.currency, name="Vouchers sold, not redeemed")
    transfer = ledger.post_transfer(actor=actor, debit=debit, credit=liability, amount=batch.nominal * batch.count,
                                    currency=batch.currency, kind=Transfer.Kind.VOUCHER,
                                    idempotency_key=f"payments:voucher-sale:{batch.pk}",
                                    tags={"voucher_batch": batch.number, "paid_via": paid_via},
                                    reference=("payments.voucherbatch", str(batch.pk)),
                                    memo=f"Voucher batch {batch.number} sold to {sold_to}".strip())
    return recorded.update(batch, actor=actor, action="sell", message=str(sold_to or ""), state=VoucherBatch.State.ACTIVE,
                           sold_to=str(sold_to or "")[:200], sale_transfer=transfer, activated_at=now())


def _failures(account_id, ip) -> bool:
    since = now() - THROTTLE_WINDOW
    recent = VoucherAttempt.objects.filter(at__gte=since).exclude(outcome__in=("redeemed", "replayed"))
    if account_id is not None and recent.filter(billing_account_id=account_id).count() >= THROTTLE_FAILURES:
        return True
    return bool(ip) and recent.filter(ip=ip).count() >= THROTTLE_FAILURES


def _attempt(account_id, ip, actor, outcome, serial=""):
    """Log the attempt so that it survives the refusal that follows (autocommit when not in a transaction)."""
    VoucherAttempt.objects.create(billing_account_id=account_id, ip=ip or None, actor=common.actor_label(actor),
                                  serial=serial, outcome=outcome)
    if outcome not in ("redeemed", "replayed"):
        log.warning("voucher redemption refused: %s (account %s, address %s, actor %s, serial %s)", outcome,
                    account_id, ip or "-", common.actor_label(actor), serial or "-")


def redeem_voucher(*, actor, account, code: str, ip: str | None = None, idempotency_key=None) -> Payment:
    """Redeem a scratch card to `account`, once: a payment of channel `voucher` for its nominal.

    Throttled: after 5 failed attempts in 15 minutes for the account or from the client
    address (`ip`, default the request's), every attempt is refused with
    `voucher_throttled` (429) until the window passes. Every attempt is logged
    (VoucherAttempt rows and the `tarifa.payments.vouchers` logger) — the only rows a
    refused redemption leaves. Locks the voucher row, then the account lock through
    accept_payment. A retry with the same `idempotency_key` returns the same payment.
    Permission `payments.redeem_voucher` for user actors. Errors: voucher_throttled,
    voucher_unknown (404), voucher_used, voucher_expired, voucher_not_active (409),
    account_not_found, account_closed, currency_mismatch.
    """
    common.require(actor, "payments.redeem_voucher")
    ip = ip if ip is not None else (context.current().ip or None)
    account = common.billing_account(account)
    digest = code_hash(code)
    key = f"voucher:{common.idempotency_key(idempotency_key)}" if idempotency_key else None
    # A replay answers the first result before anything else: it is not an attempt at a code,
    # so it is neither throttled nor counted as a failure.
    done = _replay(key, digest, account, ip, actor) if key else None
    if done is not None:
        return done
    if _failures(account.pk, ip):
        _attempt(account.pk, ip, actor, "throttled")
        raise errors.VoucherThrottled("Too many wrong voucher codes: try again in 15 minutes.")
    outcome = None
    serial = ""
    try:
        with transaction.atomic():
            voucher = (Voucher.objects.select_for_update(of=("self",)).select_related("batch")
                       .filter(code_hash=digest).first())
            if voucher is None:
                outcome = "unknown"
                raise errors.VoucherUnknown("No such voucher code.", fields={"code": ["Unknown code."]})
            serial = voucher.serial
            if key and voucher.state == Voucher.State.REDEEMED:
                # A concurrent request with this key redeemed it while we waited for the row lock.
                done = _replay(key, digest, account, ip, actor, log_conflict=False)
                if done is not None:
                    return done
            if voucher.state == Voucher.State.REDEEMED:
                outcome = "used"
                raise errors.VoucherUsed(f"Voucher {voucher.serial} was already redeemed.", fields={"code": ["Used."]})
            if voucher.batch.state != VoucherBatch.State.ACTIVE:
                outcome = "not_active"
                raise errors.VoucherNotActive(f"Voucher {voucher.serial} is not on sale.", fields={"code": ["Not active."]})
            if voucher.batch.expires_on < today():
                outcome = "expired"
                raise errors.VoucherExpired(f"Voucher {voucher.serial} expired on {voucher.batch.expires_on}.",
                                            fields={"code": ["Expired."]})
            common.open_account(account, voucher.batch.currency)
            liability = ledger.system_account(LIABILITY_ACCOUNT, voucher.batch.currency)
            if not key:  # one key per redemption: a reversed card's second redemption is a new payment
                earlier = Payment.objects.filter(channel=Channel.VOUCHER, external_reference=voucher.serial).count()
                key = f"voucher:{voucher.pk}:{earlier}"
            payment = accept_payment(actor=actor, account=account, amount=voucher.batch.nominal,
                                     channel=Channel.VOUCHER, idempotency_key=key, debit_account=liability,
                                     external_reference=voucher.serial)
            voucher.state = Voucher.State.REDEEMED
            voucher.redeemed_at = now()
            voucher.billing_account = account
            voucher.payment = payment
            voucher.save(update_fields=["state", "redeemed_at", "billing_account", "payment"])
            recorded.record(voucher.batch, actor=actor, action="redeem",
                            changes={"voucher": [None, voucher.serial], "billing_account": [None, account.number]})
    except errors.DomainError as exc:
        _attempt(account.pk, ip, actor, outcome or exc.code, serial)
        raise
    _attempt(account.pk, ip, actor, "redeemed", serial)
    return payment


def _replay(key: str, digest: str, account, ip, actor, *, log_conflict: bool = True) -> Payment | None:
    """The payment this idempotency key made, if any (marked `replayed`, logged as a replay);
    idempotency_conflict when the key redeemed another card or to another account."""
    done = Payment.objects.filter(idempotency_key=key).first()
    if done is None:
        return None
    voucher = Voucher.objects.filter(code_hash=digest).first()
    if voucher is None or done.external_reference != voucher.serial or done.billing_account_id != account.pk:
        if log_conflict:  # (inside redeem_voucher's try, the refusal is logged there)
            _attempt(account.pk, ip, actor, "idempotency_conflict", voucher.serial if voucher else "")
        raise errors.IdempotencyConflict("The idempotency key was used to redeem another voucher.")
    _attempt(account.pk, ip, actor, "replayed", voucher.serial)
    done.replayed = True
    return done


def reinstate_for_payment(payment: Payment, *, actor) -> None:
    """A reversed voucher payment gives the card back: it may be redeemed again (to the right account)."""
    voucher = Voucher.objects.select_for_update().filter(payment=payment).first()
    if voucher is None:
        return
    voucher.state = Voucher.State.ISSUED
    voucher.redeemed_at = None
    voucher.billing_account = None
    voucher.payment = None
    voucher.save(update_fields=["state", "redeemed_at", "billing_account", "payment"])
    recorded.record(voucher.batch, actor=actor, action="reinstate", changes={"voucher": [None, voucher.serial]},
                    message=f"payment {payment.number} reversed")
