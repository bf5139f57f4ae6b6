"""Automatic payments: top an account up from a stored card when its balance falls below a level."""

import logging

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from tarifa.audit import services as recorded
from tarifa.kernel.clock import now
from tarifa.kernel.errors import DomainError, ValidationFailed
from tarifa.kernel.money import parse_amount

from ..gateways import adapter_for
from ..models import AutoPayAgreement, AutoPayRun, Channel, StoredPaymentMethod
from . import common
from .payments import accept_payment

log = logging.getLogger("tarifa.payments.autopay")


def _method(method, account) -> StoredPaymentMethod:
    if method.archived_at is not None:
        raise ValidationFailed("The payment method was removed.", code="payment_method_removed",
                               fields={"payment_method": ["Removed."]})
    if method.billing_account_id != account.pk:
        raise ValidationFailed("The card was stored for another account.", code="payment_method_mismatch",
                               fields={"payment_method": ["Another account's card."]})
    return method


@transaction.atomic
def create_agreement(*, actor, billing_account, payment_method, threshold, amount) -> AutoPayAgreement:
    """Agree to top `billing_account` up by `amount` when its balance is below `threshold`.
    Errors: account errors, payment_method_mismatch, payment_method_removed, amount errors."""
    account = common.open_account(common.billing_account(billing_account))
    _method(payment_method, account)
    amount = common.payment_amount(amount, account.currency)
    threshold = parse_amount(threshold, field="threshold")
    return recorded.create(AutoPayAgreement, actor=actor, billing_account=account, payment_method=payment_method,
                           threshold=threshold, amount=amount, is_active=True)


@transaction.atomic
def update_agreement(agreement: AutoPayAgreement, *, actor, **changes) -> AutoPayAgreement:
    allowed = {"threshold", "amount", "is_active"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed(f"Cannot change {', '.join(sorted(unknown))}.", code="field_fixed",
                               fields={name: ["Fixed."] for name in unknown})
    if "amount" in changes:
        changes["amount"] = common.payment_amount(changes["amount"], agreement.billing_account.currency)
    if "threshold" in changes:
        changes["threshold"] = parse_amount(changes["threshold"], field="threshold")
    return recorded.update(agreement, actor=actor, **changes)


@transaction.atomic
def cancel_agreement(agreement: AutoPayAgreement, *, actor, reason: str = "") -> AutoPayAgreement:
    return recorded.archive(agreement, actor=actor, reason=reason)


def due_agreements():
    """Active agreements whose account's posted balance is below the threshold."""
    return (AutoPayAgreement.objects.filter(is_active=True, archived_at__isnull=True,
                                            payment_method__archived_at__isnull=True,
                                            billing_account__status="active")
            .annotate(balance=F("billing_account__ledger_account__credits_posted")
                      - F("billing_account__ledger_account__debits_posted"))
            .filter(balance__lt=F("threshold"))
            .select_related("billing_account", "payment_method", "payment_method__gateway")
            .order_by("created_at"))


def _claim(agreement, day, balance) -> AutoPayRun | None:
    """The (agreement, day) run to work on: a new one, or one left pending by a crash; None if done."""
    with transaction.atomic():
        run = AutoPayRun.objects.select_for_update().filter(agreement=agreement, day=day).first()
        if run is None:
            try:
                with transaction.atomic():
                    run = AutoPayRun.objects.create(agreement=agreement, day=day, balance_before=balance,
                                                    amount=agreement.amount)
            except IntegrityError:  # a concurrent worker claimed it
                return None
        return run if run.state == AutoPayRun.State.PENDING else None


def _finish(run: AutoPayRun, state: str, *, payment=None, error: str = "") -> None:
    run.state = state
    run.payment = payment
    run.error = error[:2000]
    run.finished_at = now()
    run.save(update_fields=["state", "payment", "error", "finished_at"])


def run_agreement(agreement: AutoPayAgreement, *, day, balance, actor="system:autopay") -> AutoPayRun | None:
    """Charge the stored card once for (agreement, day) and apply the payment.

    Claim (a unique AutoPayRun row, committed), then charge the provider with the run's
    id as its idempotency key (outside any transaction: a provider call must not hold
    locks), then book the payment (key `autopay:<run id>`). A crash after the charge
    leaves the run pending; the next run of the job charges again with the same id —
    which the provider answers with the same transaction — and books it once.
    """
    run = _claim(agreement, day, balance)
    if run is None:
        return None
    method = agreement.payment_method
    gateway = method.gateway
    try:
        result = adapter_for(gateway).charge_token(token=method.token, amount=run.amount,
                                                   currency=agreement.billing_account.currency, order_id=str(run.id))
    except (ConnectionError, NotImplementedError) as exc:
        run.error = str(exc)[:2000]
        run.save(update_fields=["error"])
        log.warning("autopay %s: provider unreachable, will retry: %s", run.id, exc)
        return run
    with transaction.atomic():
        run = AutoPayRun.objects.select_for_update().get(pk=run.pk)
        if run.state != AutoPayRun.State.PENDING:
            return run
        if not result.succeeded:
            _finish(run, AutoPayRun.State.FAILED, error=result.reason or "declined")
            recorded.record(agreement, actor=actor, action="autopay_failed", message=run.error)
            return run
        try:
            with transaction.atomic():
                payment = accept_payment(actor=actor, account=agreement.billing_account, amount=run.amount,
                                         channel=Channel.CARD, gateway=gateway, provider_txn_id=result.provider_txn_id,
                                         idempotency_key=f"autopay:{run.id}", external_reference=f"autopay {day}",
                                         payer=method.label)
        except DomainError as exc:
            _finish(run, AutoPayRun.State.FAILED, error=f"{exc.code}: {exc.message}")
            log.error("autopay %s charged at the provider but not applied: %s", run.id, exc.message)
            return run
        _finish(run, AutoPayRun.State.SUCCEEDED, payment=payment)
    return run


def run_autopay(*, as_of=None, actor="system:autopay") -> dict:
    """Top up every account due, once per agreement and day (the day of `as_of`, default now).

    Safe to run often and concurrently: a day's run is claimed once in the database.
    """
    as_of = as_of or now()
    day = timezone.localtime(as_of).date()
    summary = {"due": 0, "succeeded": 0, "failed": 0, "pending": 0, "skipped": 0}
    for agreement in list(due_agreements()):
        summary["due"] += 1
        run = run_agreement(agreement, day=day, balance=agreement.balance, actor=actor)
        if run is None:
            summary["skipped"] += 1
        else:
            summary[run.state if run.state != AutoPayRun.State.PENDING else "pending"] += 1
    return summary
