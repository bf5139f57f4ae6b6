"""Input checks and helpers shared by the payments services."""

import hashlib
import hmac
import uuid
from decimal import Decimal

from django.conf import settings

from tarifa.audit import services as recorded
from tarifa.kernel.errors import PermissionDenied, ValidationFailed
from tarifa.kernel.money import CURRENCIES, check_currency, parse_amount, round_minor
from tarifa.ledger.models import BillingAccount

from ..errors import AccountClosed, AccountNotFound, CurrencyMismatch, InvalidChannel
from ..models import Channel

MAX_KEY_LENGTH = 190  # the ledger's keys are "payments:<key>" and hold at most 200 characters


def units(amount, currency: str) -> str:
    """An amount as a person reads it: in the currency's units ("25.00" for USD, "1500" for JPY).
    Messages, memos and the audit trail use it; the ledger and the API keep the exact amount."""
    return f"{round_minor(Decimal(amount), currency if currency in CURRENCIES else 'USD'):f}"


def actor_label(actor) -> str:
    return recorded.actor_label(actor)[:150]


def user_of(actor):
    """The staff user behind `actor`, or None for internal actors ("system", a gateway…)."""
    return actor if actor is not None and not isinstance(actor, str) and getattr(actor, "pk", None) else None


def require(actor, perm: str) -> None:
    """Users need `perm`; internal actors (a string such as "system") are trusted."""
    if hasattr(actor, "has_perm") and not actor.has_perm(perm):
        raise PermissionDenied(f"You need the permission {perm}.", code="permission_denied")


def idempotency_key(value) -> str:
    key = str(value or "").strip()
    if not key:
        raise ValidationFailed("An idempotency key is required: it makes a retry safe.", code="idempotency_key_required",
                               fields={"idempotency_key": ["Required."]})
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(f"The idempotency key is longer than {MAX_KEY_LENGTH} characters.",
                               code="idempotency_key_too_long",
                               fields={"idempotency_key": [f"At most {MAX_KEY_LENGTH} characters."]})
    return key


def channel(value) -> str:
    if value not in Channel.values:
        raise InvalidChannel(f"Unknown payment channel {value!r}.",
                             fields={"channel": [f"One of: {', '.join(Channel.values)}."]})
    return value


def payment_amount(value, currency: str, *, field: str = "amount") -> Decimal:
    """A positive amount in the currency's minor unit (10.00 USD, not 10.001).

    Codes: invalid_amount (not a decimal, a float), amount_zero, amount_negative,
    amount_too_precise, amount_too_large.
    """
    amount = parse_amount(value, field=field)
    if amount == 0:
        raise ValidationFailed(f"{field} must be greater than zero.", code="amount_zero", fields={field: ["Not zero."]})
    if amount < 0:
        raise ValidationFailed(f"{field} cannot be negative.", code="amount_negative",
                               fields={field: ["Must be greater than zero."]})
    places = CURRENCIES[check_currency(currency)]
    if amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise ValidationFailed(f"{field} has more decimal places than {currency} has ({places}).",
                               code="amount_too_precise", fields={field: [f"At most {places} decimal places."]})
    return amount


def non_negative_amount(value, currency: str, *, field: str) -> Decimal:
    amount = parse_amount(value, field=field)
    if amount < 0:
        raise ValidationFailed(f"{field} cannot be negative.", code="amount_negative", fields={field: ["Zero or more."]})
    places = CURRENCIES[check_currency(currency)]
    if amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise ValidationFailed(f"{field} has more decimal places than {currency} has ({places}).",
                               code="amount_too_precise", fields={field: [f"At most {places} decimal places."]})
    return amount


def billing_account(value, *, field: str = "account") -> BillingAccount:
    """A billing account given as the record, its id or its number. Unknown → account_not_found."""
    if isinstance(value, BillingAccount):
        return value
    found = None
    text = str(value or "").strip()
    if text:
        try:
            found = BillingAccount.objects.select_related("ledger_account").filter(pk=uuid.UUID(text)).first()
        except ValueError:
            found = BillingAccount.objects.select_related("ledger_account").filter(number__iexact=text).first()
    if found is None:
        raise AccountNotFound(f"No billing account {text!r}.", fields={field: ["No such account."]})
    return found


def open_account(account: BillingAccount, currency=None) -> BillingAccount:
    """Refuse closed accounts and a currency other than the account's."""
    if currency not in (None, "") and currency != account.currency:
        check_currency(currency)
        raise CurrencyMismatch(f"Account {account} is in {account.currency}, not {currency}.",
                               fields={"currency": [f"The account's currency is {account.currency}."]})
    if account.status != BillingAccount.Status.ACTIVE:
        raise AccountClosed(f"Account {account} is closed.", fields={"account": ["Closed."]})
    return account


def pepper() -> bytes:
    """The key for stored secrets' HMACs (voucher codes, gateway passwords): TARIFA_PAYMENTS_PEPPER,
    else derived from SECRET_KEY — rotating it invalidates unredeemed vouchers and gateway passwords."""
    explicit = getattr(settings, "TARIFA_PAYMENTS_PEPPER", None)
    base = explicit or settings.SECRET_KEY
    return hashlib.sha256(b"tarifa.payments.pepper:" + base.encode()).digest()


def peppered(value: str, purpose: str) -> str:
    return hmac.new(pepper(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()
