"""Payment gateways: registration, credentials, and how a gateway proves who it is."""

import base64
import binascii
import hmac
import ipaddress
import secrets

from django.db import transaction

from tarifa.audit import services as recorded
from tarifa.kernel.errors import ValidationFailed
from tarifa.kernel.money import check_currency
from tarifa.ledger import services as ledger

from .. import errors
from ..models import PaymentGateway
from . import common


def _networks(values) -> list[str]:
    clean = []
    for value in values or []:
        value = str(value).strip()
        if not value:
            continue
        try:
            clean.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError:
            raise ValidationFailed(f"{value!r} is not an IP address or network.", code="invalid_ip",
                                   fields={"allowed_ips": [f"{value}: not an address or CIDR network."]}) from None
    return clean


def _limits(gateway_fields: dict, currency: str) -> dict:
    for name in ("min_amount", "max_amount"):
        if name in gateway_fields and gateway_fields[name] is not None:
            gateway_fields[name] = common.non_negative_amount(gateway_fields[name], currency, field=name)
    low, high = gateway_fields.get("min_amount"), gateway_fields.get("max_amount")
    if low is not None and high is not None and low > high:
        raise ValidationFailed("The minimum is above the maximum.", code="invalid_limits",
                               fields={"min_amount": ["Above the maximum."]})
    return gateway_fields


def new_password() -> str:
    return secrets.token_urlsafe(24)


def password_hash(password: str) -> str:
    # Generated passwords have 192 bits of entropy, so a keyed hash (fast, peppered) is
    # enough and keeps a terminal request cheap; slow password hashing is for human passwords.
    return common.peppered(password, "gateway-password")


@transaction.atomic
def create_gateway(*, actor, code: str, name: str, kind: str, currency: str, adapter: str = "", username: str = "",
                   allowed_ips=(), min_amount=None, max_amount=None, api_url: str = "", hmac_secret: str = "",
                   is_active: bool = True):
    """Register a gateway with its clearing account `clearing:<code>`; returns (gateway, secrets).

    Terminal networks get a generated HTTP Basic password, card providers a generated
    HMAC secret (or the one the provider issued, `hmac_secret`); `secrets` holds them
    once: only a keyed hash of the password is kept. Errors: field errors, invalid_ip,
    invalid_limits, unknown_adapter, duplicate_code.
    """
    currency = check_currency(currency)
    code = str(code or "").strip()
    if PaymentGateway.objects.filter(code__iexact=code).exists():
        raise ValidationFailed(f"Gateway {code!r} exists.", code="duplicate_code", fields={"code": ["Taken."]})
    if kind == PaymentGateway.Kind.CARD:
        from ..gateways import ADAPTERS

        adapter = adapter or "reference"
        if adapter not in ADAPTERS:
            raise ValidationFailed(f"Unknown adapter {adapter!r}.", code="unknown_adapter",
                                   fields={"adapter": [f"One of: {', '.join(sorted(ADAPTERS))}."]})
    fields = _limits({"min_amount": min_amount, "max_amount": max_amount}, currency)
    fields = {k: v for k, v in fields.items() if v is not None}
    issued = {}
    password = ""
    if kind == PaymentGateway.Kind.TERMINAL:
        username = username or code
        password = new_password()
        issued = {"username": username, "password": password}
    secret = ""
    if kind == PaymentGateway.Kind.CARD:
        secret = hmac_secret or secrets.token_hex(32)
        issued = {"hmac_secret": secret}
    account = ledger.system_account(f"clearing:{code}", currency, name=f"Clearing {name}"[:200]) if code else None
    gateway = recorded.create(PaymentGateway, actor=actor, code=code, name=name, kind=kind, adapter=adapter,
                              currency=currency, is_active=is_active, username=username,
                              password_hash=password_hash(password) if password else "", hmac_secret=secret,
                              allowed_ips=_networks(allowed_ips), api_url=api_url, clearing_account=account, **fields)
    return gateway, issued


@transaction.atomic
def update_gateway(gateway: PaymentGateway, *, actor, **changes) -> PaymentGateway:
    """Name, activity, allow-list, limits, provider URL, username (code, kind, currency are fixed)."""
    allowed = {"name", "is_active", "allowed_ips", "min_amount", "max_amount", "api_url", "username", "adapter"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed(f"Cannot change {', '.join(sorted(unknown))} of a gateway.", code="field_fixed",
                               fields={name: ["Fixed."] for name in unknown})
    if "allowed_ips" in changes:
        changes["allowed_ips"] = _networks(changes["allowed_ips"])
    merged = {"min_amount": changes.get("min_amount", gateway.min_amount),
              "max_amount": changes.get("max_amount", gateway.max_amount)}
    merged = _limits(merged, gateway.currency)
    for name in ("min_amount", "max_amount"):
        if name in changes:
            changes[name] = merged[name]
    return recorded.update(gateway, actor=actor, **changes)


@transaction.atomic
def archive_gateway(gateway: PaymentGateway, *, actor, reason: str = "") -> PaymentGateway:
    return recorded.archive(gateway, actor=actor, reason=reason)


@transaction.atomic
def rotate_credentials(gateway: PaymentGateway, *, actor) -> dict:
    """Issue a new password (terminals) or HMAC secret (card providers); the old one stops working.
    Returns the new secret, shown once. Permission `payments.rotate_credentials`."""
    common.require(actor, "payments.rotate_credentials")
    if gateway.kind == PaymentGateway.Kind.TERMINAL:
        password = new_password()
        recorded.update(gateway, actor=actor, action="rotate_credentials", password_hash=password_hash(password))
        return {"username": gateway.username, "password": password}
    secret = secrets.token_hex(32)
    recorded.update(gateway, actor=actor, action="rotate_credentials", hmac_secret=secret)
    return {"hmac_secret": secret}


def address_allowed(gateway: PaymentGateway, ip: str) -> bool:
    if not gateway.allowed_ips:
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in gateway.allowed_ips)


def authenticate_terminal(code: str, authorization: str, ip: str) -> PaymentGateway:
    """The terminal gateway `code` if the request carries its HTTP Basic credentials from an allowed address.

    Errors: gateway_auth_failed (401: unknown gateway, wrong or missing credentials; the
    same answer for each, so a caller learns nothing), gateway_address_refused (403),
    gateway_inactive (409).
    """
    gateway = PaymentGateway.objects.select_related("clearing_account").filter(
        code=code, kind=PaymentGateway.Kind.TERMINAL, archived_at__isnull=True).first()
    username, password = _basic(authorization)
    expected = gateway.password_hash if gateway is not None and gateway.password_hash else "0" * 64
    given = password_hash(password) if password is not None else "1" * 64
    ok = hmac.compare_digest(expected, given) and gateway is not None and hmac.compare_digest(
        gateway.username.encode(), (username or "").encode())
    if not ok:
        raise errors.GatewayAuthFailed("Wrong gateway credentials.")
    if not address_allowed(gateway, ip):
        raise errors.GatewayAddressRefused(f"Requests from {ip} are not allowed for gateway {code}.")
    if not gateway.is_active:
        raise errors.GatewayInactive(f"Gateway {code} is not active.")
    return gateway


def _basic(header: str) -> tuple[str | None, str | None]:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else (None, None)
