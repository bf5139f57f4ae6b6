"""Online card payments: start a hosted checkout, apply the provider's signed webhook once."""

import datetime as dt
import uuid

from django.db import transaction

from tarifa.audit import services as recorded
from tarifa.kernel.clock import now
from tarifa.kernel.errors import Conflict, NotFound, ValidationFailed
from tarifa.kernel.ids import uuid7

from .. import errors
from ..gateways import adapter_for
from ..models import CardCheckout, Channel, PaymentGateway, StoredPaymentMethod
from . import common
from .payments import _check_gateway, accept_payment


# A checkout nobody answers expires (the hosted link is valid as long: gateways/testcards.py).
CHECKOUT_TTL = dt.timedelta(minutes=30)


def card_gateway(code_or_gateway) -> PaymentGateway:
    if isinstance(code_or_gateway, PaymentGateway):
        gateway = code_or_gateway
    else:
        gateway = (PaymentGateway.objects.select_related("clearing_account")
                   .filter(code=str(code_or_gateway or ""), kind=PaymentGateway.Kind.CARD).first())
    if gateway is None or gateway.kind != PaymentGateway.Kind.CARD or gateway.archived_at is not None:
        raise NotFound(f"No card gateway {code_or_gateway!r}.", code="gateway_not_found")
    return gateway


@transaction.atomic
def start_card_checkout(*, actor, account, amount, gateway, notify_url: str, return_url: str = "",
                        save_card: bool = False, idempotency_key) -> CardCheckout:
    """Create a checkout and the provider's URL to send the customer to (`redirect_url`).

    Nothing is booked: the payment is applied when the provider's webhook says so.
    Idempotent by key (the same checkout is returned). Errors: gateway_not_found,
    gateway_inactive, account and amount errors, the gateway's limits, idempotency_conflict.
    """
    key = common.idempotency_key(idempotency_key)
    gateway = card_gateway(gateway)
    account = common.billing_account(account)
    amount = common.payment_amount(amount, account.currency)
    common.open_account(account)
    _check_gateway(gateway, Channel.CARD, amount, account.currency)
    existing = CardCheckout.objects.filter(idempotency_key=key).first()
    if existing is not None:
        if (existing.billing_account_id, existing.amount, existing.gateway_id) != (account.pk, amount, gateway.pk):
            raise errors.IdempotencyConflict("The idempotency key was used for another checkout.")
        existing.replayed = True
        return existing
    checkout = CardCheckout(id=uuid7(), gateway=gateway, billing_account=account, amount=amount,
                            currency=account.currency, return_url=return_url or "", save_card=bool(save_card),
                            idempotency_key=key)
    checkout.redirect_url = adapter_for(gateway).create_payment(checkout, notify_url=notify_url,
                                                                return_url=return_url or "")
    checkout.save(force_insert=True)
    recorded.record(checkout, actor=actor, action="create",
                    changes={"amount": [None, common.units(amount, account.currency)], "billing_account": [None, account.number],
                             "gateway": [None, gateway.code]})
    checkout.replayed = False
    return checkout


def handle_webhook(gateway_code: str, headers, body: bytes) -> CardCheckout:
    """Verify a provider's webhook and apply what it reports, once.

    The signature is verified before anything is read or written (forged → 401
    `invalid_signature`, too old → 401 `stale_webhook`). `payment.succeeded` applies the
    payment (idempotent by (gateway, provider txn id)) and, when the customer asked,
    stores the card's token for automatic payments; `payment.failed` marks the checkout
    failed. A repeated webhook answers as the first did. Errors: gateway_not_found,
    invalid_signature, stale_webhook, invalid_webhook, checkout_not_found (404),
    checkout_mismatch (409: amount/currency differ from the checkout).
    """
    gateway = card_gateway(gateway_code)
    event = adapter_for(gateway).parse_webhook(headers, body)
    actor = f"gateway:{gateway.code}"
    with transaction.atomic():
        try:
            checkout_id = uuid.UUID(event.order_id)
        except ValueError:
            checkout_id = None
        checkout = (CardCheckout.objects.select_for_update(of=("self",)).select_related("billing_account")
                    .filter(pk=checkout_id, gateway=gateway).first()) if checkout_id else None
        if checkout is None:
            raise NotFound(f"No checkout {event.order_id!r} at gateway {gateway.code}.", code="checkout_not_found")
        if event.amount != checkout.amount or event.currency != checkout.currency:
            raise Conflict(f"The provider reports {event.amount} {event.currency}; the checkout is for"
                           f" {common.units(checkout.amount, checkout.currency)} {checkout.currency}.", code="checkout_mismatch")
        if checkout.state == CardCheckout.State.APPLIED:
            checkout.replayed = True
            return checkout
        # A late answer for an expired checkout still counts: a succeeded payment took the
        # customer's money, so it is applied; a failure just records the provider's reason.
        if event.kind == "payment.failed":
            checkout.state = CardCheckout.State.FAILED
            checkout.failure_reason = event.reason or "declined"
            checkout.completed_at = now()
            checkout.save(update_fields=["state", "failure_reason", "completed_at"])
            recorded.record(checkout, actor=actor, action="fail", message=checkout.failure_reason)
            checkout.replayed = False
            return checkout
        if not event.provider_txn_id:
            raise ValidationFailed("A succeeded payment carries the provider's txn_id.", code="invalid_webhook")
        payment = accept_payment(actor=actor, account=checkout.billing_account, amount=checkout.amount,
                                 channel=Channel.CARD, gateway=gateway, provider_txn_id=event.provider_txn_id,
                                 idempotency_key=f"card:{gateway.code}:{event.provider_txn_id}",
                                 external_reference=str(checkout.pk), payer=event.card_label)
        checkout.state = CardCheckout.State.APPLIED
        checkout.provider_txn_id = event.provider_txn_id
        checkout.payment = payment
        checkout.completed_at = now()
        checkout.save(update_fields=["state", "provider_txn_id", "payment", "completed_at"])
        recorded.record(checkout, actor=actor, action="apply", changes={"payment": [None, payment.number]})
        if checkout.save_card and event.card_token:
            method = StoredPaymentMethod.objects.filter(gateway=gateway, token=event.card_token).first()
            if method is None:
                method = StoredPaymentMethod.objects.create(gateway=gateway, billing_account=checkout.billing_account,
                                                            token=event.card_token, label=event.card_label)
                recorded.record(method, actor=actor, action="create", changes={"label": [None, method.label]})
    checkout.replayed = False
    return checkout


@transaction.atomic
def expire_checkouts(*, as_of=None, actor="system:checkouts") -> int:
    """Checkouts still waiting CHECKOUT_TTL after they were started become `expired` (the
    provider never answered: the customer left, or the issuer timed out). Nothing is booked.
    Rows another transaction holds (a webhook being applied) are left for the next run.
    Returns how many expired."""
    at = as_of or now()
    due = list(CardCheckout.objects.select_for_update(skip_locked=True)
               .filter(state=CardCheckout.State.CREATED, created_at__lt=at - CHECKOUT_TTL)
               .order_by("created_at")[:1000])
    reason = f"no answer from the provider within {int(CHECKOUT_TTL.total_seconds() // 60)} minutes"
    for checkout in due:
        checkout.state, checkout.failure_reason, checkout.completed_at = CardCheckout.State.EXPIRED, reason, at
        checkout.updated_at = at
        checkout.save(update_fields=["state", "failure_reason", "completed_at", "updated_at"])
        recorded.record(checkout, actor=actor, action="expire", changes={"state": ["created", "expired"]},
                        message=reason)
    return len(due)


@transaction.atomic
def remove_payment_method(method: StoredPaymentMethod, *, actor, reason: str = "") -> StoredPaymentMethod:
    """Forget a stored card (archived; agreements using it stop)."""
    method = recorded.archive(method, actor=actor, reason=reason)
    for agreement in method.agreements.filter(archived_at__isnull=True, is_active=True):
        recorded.update(agreement, actor=actor, action="deactivate", message="payment method removed", is_active=False)
    return method
