"""The portal's only write path: its users (invited by staff, self-registered with a one-time
code), sign-in with rate limits and optional TOTP, tokens for the mobile app, and what a
customer does in the portal (pay, redeem a voucher, take a promised payment, change a tariff,
pause and resume, edit the profile). The customer's own actions call the owning apps' services
with the portal user as actor (`portal:<login>`); every one is in the audit trail.

Staff actors are identity users (permission checked); portal actors are `PortalUser`s, whose
rights come from `scope.Scope` (role, departments) and who may only touch their own customer.
"""

import datetime as dt
import hashlib
import hmac
import secrets
from decimal import Decimal

from django.conf import settings as django_settings
from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tarifa.audit import context
from tarifa.audit import services as recorded
from tarifa.catalog.pricing import days_in_month, share_of_days
from tarifa.crm import services as crm
from tarifa.crm.models import Contact, Customer
from tarifa.integrations import services as notifications
from tarifa.integrations.models import Channel, Event
from tarifa.kernel.clock import now, today
from tarifa.kernel.errors import DomainError, NotFound, PermissionDenied, ValidationFailed
from tarifa.kernel.money import format_amount
from tarifa.payments import services as payments
from tarifa.subscriptions import services as subscriptions
from tarifa.subscriptions.models import Subscription, Suspension
from tarifa.subscriptions.thresholds import evaluate_account

from . import throttle, totp
from .models import Attempt, Department, OneTimeCode, PortalSettings, PortalToken, PortalUser
from .scope import Scope

CODE_TTL = dt.timedelta(minutes=15)
TOKEN_TTL = dt.timedelta(days=30)
TOKEN_PREFIX = "tpp_"  # portal tokens; staff tokens never start so (and are refused here anyway)
WRONG_LOGIN = "Wrong login or password."
# Hashed once: a login that does not exist costs as much as one that does (no timing oracle).
_DUMMY_HASH = None


class InvalidLogin(DomainError):
    code = "invalid_login"
    status = 401


class OtpRequired(DomainError):
    code = "otp_required"
    status = 401


# Settings -----------------------------------------------------------------------------------------

def current_settings() -> PortalSettings:
    found = PortalSettings.objects.order_by("id").first()
    if found is None:
        try:
            with transaction.atomic():
                found = PortalSettings.objects.create(editable_fields=["email", "phone", "preferred_channel"])
        except IntegrityError:  # pragma: no cover — one row; a concurrent first call made it
            found = PortalSettings.objects.order_by("id").first()
    return found


@transaction.atomic
def update_settings(portal_settings: PortalSettings, *, actor, allowed_tariffs=None, **changes) -> PortalSettings:
    """The operator's portal settings (permission portal.change_portalsettings)."""
    _staff(actor, "portal.change_portalsettings")
    changes.pop("updated_at", None)
    obj = recorded.update(portal_settings, actor=actor, **changes, updated_at=now()) if changes else portal_settings
    if allowed_tariffs is not None:
        before = sorted(t.code for t in obj.allowed_tariffs.all())
        obj.allowed_tariffs.set(list(allowed_tariffs))
        after = sorted(t.code for t in obj.allowed_tariffs.all())
        if before != after:
            recorded.record(obj, actor=actor, action="allowed_tariffs", changes={"allowed_tariffs": [before, after]})
    return obj


# Actors -------------------------------------------------------------------------------------------

def _staff(actor, perm: str) -> None:
    """Staff need `perm`; internal actors ("system", the demo) are trusted; portal users may not."""
    if isinstance(actor, PortalUser):
        raise PermissionDenied("Portal users cannot do this.")
    if hasattr(actor, "has_perm") and not actor.has_perm(perm):
        raise PermissionDenied(f"You need the permission {perm}.", code="permission_denied")


def _portal(user: PortalUser, right: str | None = None) -> Scope:
    """A portal user acting on their own customer: not read-only, active, holding `right`."""
    if not isinstance(user, PortalUser):
        raise PermissionDenied("Only a portal user does this.")
    if user.read_only:
        raise PermissionDenied("This is a read-only view of the customer's portal.", code="read_only")
    if not user.is_active:
        raise PermissionDenied("This portal login is disabled.", code="inactive")
    scope = Scope(user)
    if right and not scope.can(right):
        raise PermissionDenied("Your role does not allow this.", code="role")
    return scope


def _label(actor) -> str:
    return actor.actor if isinstance(actor, PortalUser) else recorded.actor_label(actor)


def _audit(obj, *, actor, action, changes=None, message=""):
    return recorded.record(obj, actor=_label(actor), action=action, changes=changes, message=message)


# Portal users -----------------------------------------------------------------------------------

def normalise_login(value: str) -> str:
    """E-mail addresses and names in lower case; phone numbers as +digits (crm's rule)."""
    value = (value or "").strip()
    if "@" in value:
        return value.lower()
    if value and value.lstrip("+").replace(" ", "").replace("-", "").replace("(", "").replace(")", "").isdigit():
        try:
            return crm.normalize_phone(value)
        except ValidationFailed:
            return value
    return value.lower()


def _check_password(password: str, user: PortalUser | None = None) -> None:
    try:
        validate_password(password or "", user=None)
    except ValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), code="weak_password",
                               fields={"password": list(exc.messages)}) from None


def _user_changes(user: PortalUser) -> dict:
    return {"login": user.login, "role": user.role, "language": user.language, "name": user.name,
            "customer": user.customer.number}


@transaction.atomic
def create_portal_user(*, actor, customer, login: str, password: str, role: str = PortalUser.Role.ADMINISTRATOR,
                       name: str = "", language: str = "en", departments=(), notify_email: bool = True,
                       notify_sms: bool = False) -> PortalUser:
    """A portal login for `customer` (staff: portal.add_portaluser; a customer's portal
    administrator for their own customer). Errors: login_taken, weak_password, customer_archived."""
    if isinstance(actor, PortalUser):
        scope = _portal(actor, "manage")
        if customer.pk != scope.customer_id:
            raise NotFound("No such customer.", code="not_found")
    else:
        _staff(actor, "portal.add_portaluser")
    if not isinstance(customer, Customer):
        customer = Customer.objects.filter(pk=customer).first() or Customer.objects.filter(number=customer).first()
        if customer is None:
            raise ValidationFailed("No such customer.", code="customer_not_found", fields={"customer": ["Unknown."]})
    if customer.archived_at is not None:
        raise ValidationFailed("The customer is archived.", code="customer_archived", fields={"customer": ["Archived."]})
    login = normalise_login(login)
    if not login:
        raise ValidationFailed("A login is required.", code="login_required", fields={"login": ["Required."]})
    if PortalUser.objects.filter(login=login).exists():
        raise ValidationFailed("This login is taken.", code="login_taken", fields={"login": ["Taken."]})
    _check_password(password)
    user = PortalUser(customer=customer, login=login, name=name or "", role=role, language=language or "en",
                      password=make_password(password), notify_email=notify_email, notify_sms=notify_sms)
    recorded.validate(user, exclude=["password", "totp_secret"])
    user.save(force_insert=True)
    departments = list(departments or ())
    if any(d.customer_id != customer.pk for d in departments):
        raise ValidationFailed("A department of another customer.", code="department_other_customer",
                               fields={"departments": ["Another customer's."]})
    user.departments.set(departments)
    _audit(user, actor=actor, action="create", changes=recorded.diff({}, _user_changes(user)))
    _audit(customer, actor=actor, action="portal_user_created", changes={"portal_user": [None, login]})
    return user


@transaction.atomic
def update_portal_user(user: PortalUser, *, actor, departments=None, **changes) -> PortalUser:
    """Role, name, language, notification preferences, departments."""
    if isinstance(actor, PortalUser):
        scope = _portal(actor, "manage")
        user = scope.get("portal_user", user.pk)
    else:
        _staff(actor, "portal.change_portaluser")
    allowed = {"role", "name", "language", "notify_email", "notify_sms"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed(f"Cannot change {', '.join(sorted(unknown))}.", code="unknown_fields")
    obj = recorded.update(user, actor=_label(actor), **changes) if changes else user
    if departments is not None:
        departments = list(departments)
        if any(d.customer_id != obj.customer_id for d in departments):
            raise ValidationFailed("A department of another customer.", code="department_other_customer",
                                   fields={"departments": ["Another customer's."]})
        before = sorted(d.name for d in obj.departments.all())
        obj.departments.set(departments)
        after = sorted(d.name for d in departments)
        if before != after:
            _audit(obj, actor=actor, action="departments", changes={"departments": [before, after]})
    return obj


@transaction.atomic
def archive_portal_user(user: PortalUser, *, actor, reason: str = "") -> PortalUser:
    """Disable a login (its tokens stop working at once)."""
    _staff(actor, "portal.delete_portaluser")
    PortalToken.objects.filter(portal_user=user, revoked_at__isnull=True).update(revoked_at=now())
    return recorded.archive(user, actor=_label(actor), reason=reason)


@transaction.atomic
def set_password(user: PortalUser, *, actor, password: str, current_password: str | None = None) -> PortalUser:
    """A new password. A portal user changes their own with the current one; staff with
    portal.change_portaluser. Other sessions and tokens of the user are revoked."""
    if isinstance(actor, PortalUser):
        _portal(actor)
        if actor.pk != user.pk or not check_password(current_password or "", user.password):
            raise ValidationFailed("The current password is wrong.", code="wrong_password",
                                   fields={"current_password": ["Wrong."]})
    else:
        _staff(actor, "portal.change_portaluser")
    _check_password(password)
    PortalUser.objects.filter(pk=user.pk).update(password=make_password(password), updated_at=now())
    PortalToken.objects.filter(portal_user=user, revoked_at__isnull=True).update(revoked_at=now())
    _audit(user, actor=actor, action="set_password")
    user.refresh_from_db()
    return user


# Sign-in ------------------------------------------------------------------------------------------

def find_user(login: str) -> PortalUser | None:
    """By login (e-mail, phone, name), else by customer number when that customer has one login."""
    login = normalise_login(login)
    if not login:
        return None
    user = PortalUser.objects.select_related("customer").filter(login=login, archived_at__isnull=True).first()
    if user is None:
        users = list(PortalUser.objects.select_related("customer")
                     .filter(customer__number__iexact=login, archived_at__isnull=True)[:2])
        user = users[0] if len(users) == 1 else None
    return user


def _dummy_check(password: str) -> None:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = make_password("not a real password, for equal timing")
    check_password(password, _DUMMY_HASH)


def authenticate(*, login: str, password: str, otp: str | None = None, ip: str | None = None) -> PortalUser:
    """Check a login: password, then the TOTP code when the user enabled two-factor.

    Rate-limited per login and per client address (throttle.LIMITS, in the database): over the
    limit every attempt is refused — even a right one — with `too_many_attempts` (429). A
    wrong login and a wrong password read the same (`invalid_login`), and take as long.
    `otp_required` (401) only after a right password without a code; a wrong code counts as
    a failure. Every attempt is logged (Attempt) and a success is audited on the portal user."""
    key = normalise_login(login)
    throttle.check(Attempt.Kind.LOGIN, key, ip)
    user = find_user(login)
    if user is None:
        _dummy_check(password or "")
        throttle.note(Attempt.Kind.LOGIN, key, ip, succeeded=False)
        raise InvalidLogin(WRONG_LOGIN)
    if not check_password(password or "", user.password):
        throttle.note(Attempt.Kind.LOGIN, key, ip, succeeded=False)
        raise InvalidLogin(WRONG_LOGIN)
    if user.totp_enabled:
        if not otp:
            raise OtpRequired("Enter the code from your authenticator app.", fields={"otp": ["Required."]})
        step = totp.verify(user.totp_secret, otp, now().timestamp())
        if step is None or step <= user.totp_last_step:
            throttle.note(Attempt.Kind.LOGIN, key, ip, succeeded=False)
            raise InvalidLogin("Wrong code from the authenticator app.", fields={"otp": ["Wrong code."]})
        PortalUser.objects.filter(pk=user.pk).update(totp_last_step=step)
    throttle.note(Attempt.Kind.LOGIN, key, ip, succeeded=True)
    with transaction.atomic():
        PortalUser.objects.filter(pk=user.pk).update(last_login_at=now())
        _audit(user, actor=user, action="login", message=f"from {ip or 'an unknown address'}")
    return user


def logout(user: PortalUser) -> None:
    if user.pk and not user.read_only:
        _audit(user, actor=user, action="logout")


# Two-factor (TOTP, RFC 6238) --------------------------------------------------------------------

@transaction.atomic
def start_totp(user: PortalUser, *, actor) -> str:
    """A new secret (not active until confirmed with a code). Returns it, to show once."""
    _portal(actor)
    if actor.pk != user.pk:
        raise PermissionDenied("Only the user sets up their own two-factor sign-in.")
    secret = totp.new_secret()
    user.totp_secret = secret
    PortalUser.objects.filter(pk=user.pk).update(totp_secret=PortalUser._meta.get_field("totp_secret")
                                                 .get_prep_value(secret), totp_enabled=False, totp_last_step=0)
    _audit(user, actor=actor, action="totp_started")
    return secret


@transaction.atomic
def confirm_totp(user: PortalUser, *, actor, code: str) -> PortalUser:
    _portal(actor)
    user = PortalUser.objects.select_for_update().get(pk=user.pk)
    if actor.pk != user.pk or not user.totp_secret:
        raise DomainError("Start the two-factor set-up first.", code="totp_not_started", status=409)
    step = totp.verify(user.totp_secret, code, now().timestamp())
    if step is None:
        raise ValidationFailed("Wrong code.", code="wrong_code", fields={"code": ["Wrong code."]})
    PortalUser.objects.filter(pk=user.pk).update(totp_enabled=True, totp_last_step=step)
    _audit(user, actor=actor, action="totp_enabled", changes={"totp_enabled": [False, True]})
    user.refresh_from_db()
    return user


@transaction.atomic
def disable_totp(user: PortalUser, *, actor, password: str | None = None) -> PortalUser:
    """The user with their password, or staff (a lost phone)."""
    if isinstance(actor, PortalUser):
        _portal(actor)
        if actor.pk != user.pk or not check_password(password or "", user.password):
            raise ValidationFailed("The password is wrong.", code="wrong_password", fields={"password": ["Wrong."]})
    else:
        _staff(actor, "portal.change_portaluser")
    PortalUser.objects.filter(pk=user.pk).update(totp_enabled=False, totp_secret=PortalUser._meta.get_field(
        "totp_secret").get_prep_value(""), totp_last_step=0)
    _audit(user, actor=actor, action="totp_disabled", changes={"totp_enabled": [True, False]})
    user.refresh_from_db()
    return user


# One-time codes: self-registration and password reset -------------------------------------------

def _hash_code(code: str) -> str:
    return hmac.new(django_settings.SECRET_KEY.encode(), code.encode(), hashlib.sha256).hexdigest()


def _contact_of(customer: Customer, value: str) -> Contact | None:
    for contact in customer.contacts.filter(archived_at__isnull=True):
        try:
            given = crm.normalize_contact_value(contact.kind, value)
        except ValidationFailed:
            continue
        if given == contact.value or (contact.kind == Contact.Kind.EMAIL and given.lower() == contact.value.lower()):
            return contact
    return None


def _send_code(*, purpose, customer, key: str, send_to: str, channel: str, portal_user=None, language="en") -> None:
    """A new code for `key` (the login or address the customer will type with it), sent to `send_to`."""
    code = f"{secrets.randbelow(10 ** 6):06d}"
    row = OneTimeCode.objects.create(purpose=purpose, customer=customer, portal_user=portal_user,
                                     destination=key, code_hash=_hash_code(code), expires_at=now() + CODE_TTL)
    what = "register for the self-care portal" if purpose == OneTimeCode.Purpose.REGISTER else "reset your portal password"
    body = f"Your code to {what}: {code}. It is valid for 15 minutes. If you did not ask for it, ignore this message."
    notifications.send_message(event=Event.PORTAL_CODE, customer=customer, channel=channel, recipient=send_to,
                               subject="Your one-time code", body=body, source_event=f"portal-code:{row.pk}",
                               language=language)
    recorded.record(customer, actor="portal:anonymous", action="portal_code_sent",
                    changes={"purpose": [None, purpose], "sent_to": [None, send_to]})


def request_registration(*, customer_number: str, contact: str, ip: str | None = None) -> None:
    """Send a one-time code to `contact` if it is an e-mail address or phone number of the
    customer `customer_number` (who has self-registration on). Answers the same either way
    (nothing reveals whether the customer or the address exists); rate-limited per address
    given and per client address (`too_many_attempts`)."""
    key = normalise_login(contact)
    throttle.check(Attempt.Kind.SEND, key, ip, count_successes=True)
    throttle.note(Attempt.Kind.SEND, key, ip, succeeded=True)
    if not current_settings().self_registration:
        return
    customer = Customer.objects.filter(number__iexact=(customer_number or "").strip(), archived_at__isnull=True).first()
    found = _contact_of(customer, contact) if customer is not None else None
    if found is None or PortalUser.objects.filter(login=normalise_login(found.value)).exists():
        return
    with transaction.atomic():
        _send_code(purpose=OneTimeCode.Purpose.REGISTER, customer=customer, key=normalise_login(found.value),
                   send_to=found.value,
                   channel=Channel.EMAIL if found.kind == Contact.Kind.EMAIL else Channel.SMS,
                   language=customer.language)


def _take_code(purpose: str, destination: str, code: str, ip: str | None) -> OneTimeCode:
    """The live code `code` sent to `destination`, marked used; rate-limited; generic error."""
    key = normalise_login(destination)
    throttle.check(Attempt.Kind.CODE, key, ip)
    with transaction.atomic():
        row = (OneTimeCode.objects.select_for_update().filter(
            purpose=purpose, destination=key, used_at__isnull=True, expires_at__gt=now(),
            code_hash=_hash_code((code or "").strip())).order_by("-created_at").first())
        if row is not None:
            row.used_at = now()
            row.save(update_fields=["used_at"])
    if row is None:
        throttle.note(Attempt.Kind.CODE, key, ip, succeeded=False)
        raise ValidationFailed("The code is wrong or has expired.", code="invalid_code", fields={"code": ["Wrong or expired."]})
    throttle.note(Attempt.Kind.CODE, key, ip, succeeded=True)
    return row


def complete_registration(*, contact: str, code: str, password: str, ip: str | None = None,
                          language: str = "en") -> PortalUser:
    """With the code sent to `contact`: the portal login `contact` for its customer."""
    _check_password(password)
    row = _take_code(OneTimeCode.Purpose.REGISTER, normalise_login(contact), code, ip)
    user = create_portal_user(actor="portal:self-registration", customer=row.customer, login=row.destination,
                              password=password, language=language)
    _audit(user, actor=user, action="self_registered")
    return user


def request_password_reset(*, login: str, ip: str | None = None) -> None:
    """Send a reset code to the login's e-mail or phone (the login itself when it is one, else
    the customer's preferred contact). Answers the same whether or not the login exists."""
    key = normalise_login(login)
    throttle.check(Attempt.Kind.SEND, key, ip, count_successes=True)
    throttle.note(Attempt.Kind.SEND, key, ip, succeeded=True)
    user = find_user(login)
    if user is None:
        return
    contact = _contact_of(user.customer, user.login)
    if contact is None:
        contact = (user.customer.contacts.filter(archived_at__isnull=True)
                   .order_by("-is_preferred", "created_at").first())
    if contact is None:
        return
    with transaction.atomic():
        _send_code(purpose=OneTimeCode.Purpose.RESET, customer=user.customer, key=user.login, send_to=contact.value,
                   channel=Channel.EMAIL if contact.kind == Contact.Kind.EMAIL else Channel.SMS,
                   portal_user=user, language=user.language)


def complete_password_reset(*, login: str, code: str, password: str, ip: str | None = None) -> PortalUser:
    _check_password(password)
    row = _take_code(OneTimeCode.Purpose.RESET, normalise_login(login), code, ip)
    user = row.portal_user
    set_password(user, actor="portal:password-reset", password=password)
    _audit(user, actor=user, action="password_reset")
    return user


# API tokens (the mobile app) ----------------------------------------------------------------------

@transaction.atomic
def issue_token(user: PortalUser) -> tuple[PortalToken, str]:
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = PortalToken.objects.create(portal_user=user, prefix=raw[:12], key_hash=PortalToken.hash(raw),
                                       expires_at=now() + TOKEN_TTL)
    _audit(user, actor=user, action="token_issued", changes={"token": [None, token.prefix]})
    return token, raw


def token_user(raw: str) -> PortalUser | None:
    if not raw.startswith(TOKEN_PREFIX):
        return None
    token = PortalToken.objects.select_related("portal_user__customer").filter(key_hash=PortalToken.hash(raw)).first()
    if token is None or token.revoked_at is not None or token.expires_at <= now() or not token.portal_user.is_active:
        return None
    return token.portal_user


# What a customer does -----------------------------------------------------------------------------

def start_top_up(user: PortalUser, *, account, amount, gateway, notify_url: str, return_url: str,
                 idempotency_key: str):
    """A card payment through the payment gateway's hosted page; returns the checkout (its
    `redirect_url` is where the customer pays). The payment is booked by the provider's webhook."""
    scope = _portal(user, "money")
    account = scope.get("account", account.pk)
    return payments.start_card_checkout(actor=user.actor, account=account, amount=amount, gateway=gateway,
                                        notify_url=notify_url, return_url=return_url,
                                        idempotency_key=f"portal:{user.pk}:{idempotency_key}")


def refresh_account(user: PortalUser, account) -> None:
    """Re-evaluate the account's services now (the worker does the same after a payment event):
    a customer back from paying sees a suspended service resumed without waiting."""
    scope = Scope(user)
    account = scope.get("account", account.pk)
    if account.is_active and not user.read_only:
        with transaction.atomic():
            evaluate_account(account, actor=user.actor, by="a payment in the portal")


def redeem_voucher(user: PortalUser, *, account, code: str, ip: str | None = None):
    """A scratch card onto `account`. Rate-limited per portal user and per client address
    (the portal's limit) on top of the payments app's own per account and address."""
    scope = _portal(user, "money")
    account = scope.get("account", account.pk)
    key = f"user:{user.pk}"
    throttle.check(Attempt.Kind.VOUCHER, key, ip)
    try:
        payment = payments.redeem_voucher(actor=user.actor, account=account, code=code, ip=ip)
    except DomainError as exc:
        if exc.status != 429:
            throttle.note(Attempt.Kind.VOUCHER, key, ip, succeeded=False)
        raise
    throttle.note(Attempt.Kind.VOUCHER, key, ip, succeeded=True)
    with transaction.atomic():
        evaluate_account(account, actor=user.actor, by="a voucher in the portal")
    return payment


def take_promised_payment(user: PortalUser, *, account):
    scope = _portal(user, "money")
    if not current_settings().promised_payment:
        raise DomainError("Promised payments are not offered in the portal.", code="promised_payment_not_offered",
                          status=409)
    account = scope.get("account", account.pk)
    return subscriptions.grant_promised_payment(account, actor=user.actor)


def allowed_tariffs(sub: Subscription):
    """The operator's self-service tariffs a subscription may change to (same service, currency)."""
    return (current_settings().allowed_tariffs.filter(service_id=sub.service_id, currency=sub.billing_account.currency,
                                                      archived_at__isnull=True)
            .exclude(pk=sub.tariff_id).order_by("name"))


def _fee(tariff, day) -> Decimal:
    version = tariff.version_on(day)
    return version.recurring_fee if version is not None else Decimal(0)


def tariff_quote(sub: Subscription, tariff) -> dict:
    """What a change to `tariff` today costs: the new fee, the rest of this month under each
    tariff (prorated by day), the tariff-change fee, and what is taken now."""
    from tarifa.catalog.selectors import one_time_fee

    day = today()
    end = day.replace(day=days_in_month(day))
    days = (end - day).days + 1

    def rest(t):
        fee = _fee(t, day)
        if t.period == "day":
            return fee * days
        if t.proration == "none":
            return Decimal(0)
        return share_of_days(fee, day, end)

    change_fee = one_time_fee(tariff, "tariff_change", day) or Decimal(0)
    currency = sub.billing_account.currency
    return {"tariff": tariff, "currency": currency, "new_fee": _fee(tariff, day), "old_fee": _fee(sub.tariff, day),
            "period": tariff.get_period_display(), "days": days, "until": end, "rest_new": rest(tariff),
            "rest_old": rest(sub.tariff), "difference": rest(tariff) - rest(sub.tariff), "change_fee": change_fee,
            "requires_ticket": current_settings().tariff_change_requires_ticket}


def change_tariff(user: PortalUser, *, subscription, tariff):
    """Change to a tariff of the operator's self-service list, from today. When the operator
    requires a request for tariff changes, a request is opened instead (returns it)."""
    scope = _portal(user, "services")
    sub = scope.get("subscription", subscription.pk)
    if not allowed_tariffs(sub).filter(pk=tariff.pk).exists():
        raise ValidationFailed("This tariff cannot be chosen here.", code="tariff_not_allowed",
                               fields={"tariff": ["Not offered for self-service."]})
    if current_settings().tariff_change_requires_ticket:
        from . import helpdesk

        if not helpdesk.available():
            raise DomainError("Tariff changes are made by our staff: please contact us.", code="ticket_required",
                              status=409)
        return helpdesk.open_request(user, subject=f"Tariff change of {sub.number} to {tariff.name}",
                                     text=f"Please change {sub.number} from {sub.tariff.name} to {tariff.name}.",
                                     subscription=sub, tariff=tariff)
    return subscriptions.change_tariff(sub, actor=user.actor, tariff=tariff, reason="requested in the self-care portal")


def paused_days_this_year(sub: Subscription) -> int:
    day = today()
    start = day.replace(month=1, day=1)
    total = 0
    for s in sub.suspensions.filter(cause=Suspension.Cause.CUSTOMER_REQUEST):
        first = max(s.started_on, start)
        last = s.ended_on or s.planned_end or day
        if last >= first:
            total += (last - first).days
    return total


def pause_rules(sub: Subscription) -> dict:
    portal_settings = current_settings()
    used = paused_days_this_year(sub)
    from tarifa.catalog.selectors import one_time_fee

    left = max(0, portal_settings.pause_max_days_per_year - used)
    return {"allowed": portal_settings.pause_allowed and sub.tariff.voluntary_suspension,
            "max_days": min(sub.tariff.voluntary_suspension_max_days, left), "used": used,
            "per_year": portal_settings.pause_max_days_per_year, "min_days": max(1, portal_settings.pause_min_days),
            "fee": one_time_fee(sub.tariff, "voluntary_suspension", today()) or Decimal(0),
            "currency": sub.billing_account.currency}


def pause(user: PortalUser, *, subscription, until: dt.date):
    """Pause a line until `until` (exclusive: it resumes that day), within the operator's limits
    (days per calendar year, shortest pause) and the tariff's (allowed, max days, fee)."""
    scope = _portal(user, "services")
    sub = scope.get("subscription", subscription.pk)
    rules = pause_rules(sub)
    if not rules["allowed"]:
        raise DomainError("This service cannot be paused.", code="pause_not_allowed", status=409)
    days = (until - today()).days
    if days < rules["min_days"] or days > rules["max_days"]:
        raise ValidationFailed(f"A pause of {rules['min_days']} to {rules['max_days']} days.", code="pause_length",
                               fields={"until": [f"{rules['min_days']}–{rules['max_days']} days from today."]})
    return subscriptions.suspend(sub, actor=user.actor, cause=Suspension.Cause.CUSTOMER_REQUEST,
                                 reason="paused in the self-care portal", planned_end=until)


def resume(user: PortalUser, *, subscription):
    scope = _portal(user, "services")
    sub = scope.get("subscription", subscription.pk)
    return subscriptions.resume(sub, actor=user.actor, cause=Suspension.Cause.CUSTOMER_REQUEST,
                                reason="resumed in the self-care portal")


@transaction.atomic
def update_preferences(user: PortalUser, *, actor, language: str, notify_email: bool, notify_sms: bool) -> PortalUser:
    _portal(actor)
    if actor.pk != user.pk:
        raise PermissionDenied("Only your own preferences.")
    return recorded.update(user, actor=user.actor, language=language, notify_email=notify_email, notify_sms=notify_sms)


@transaction.atomic
def update_profile(user: PortalUser, *, actor, **values) -> Customer:
    """The customer's fields the operator lets customers edit (PortalSettings.editable_fields);
    e-mail and phone replace the customer's preferred contact of that kind."""
    _portal(actor, "manage")
    allowed = set(current_settings().editable_fields)
    refused = set(values) - allowed
    if refused:
        raise ValidationFailed(f"Cannot change {', '.join(sorted(refused))}.", code="field_not_editable",
                               fields={f: ["Not editable."] for f in refused})
    customer = Customer.objects.get(pk=user.customer_id)
    plain = {k: v for k, v in values.items() if k in ("first_name", "last_name", "preferred_channel")}
    plain = {k: v for k, v in plain.items() if getattr(customer, k) != v}
    if plain:
        customer = crm.update_customer(customer, actor=user.actor, **plain)
    for kind, name in ((Contact.Kind.EMAIL, "email"), (Contact.Kind.PHONE, "phone")):
        if name not in values or not values[name]:
            continue
        value = crm.normalize_contact_value(kind, values[name])
        current = customer.contacts.filter(kind=kind, archived_at__isnull=True).order_by("-is_preferred", "created_at").first()
        if current is not None and current.value == value:
            continue
        crm.add_contact(customer, actor=user.actor, kind=kind, value=value, label="portal", is_preferred=True)
    return customer


@transaction.atomic
def create_department(*, actor, customer, name: str, subscriptions=()) -> Department:
    if isinstance(actor, PortalUser):
        scope = _portal(actor, "manage")
        if customer.pk != scope.customer_id:
            raise NotFound("No such customer.")
    else:
        _staff(actor, "portal.add_department")
    subs = list(subscriptions or ())
    if any(s.billing_account.customer_id != customer.pk for s in subs):
        raise ValidationFailed("A line of another customer.", code="line_other_customer",
                               fields={"subscriptions": ["Another customer's."]})
    dept = recorded.create(Department, actor=_label(actor), customer=customer, name=name)
    dept.subscriptions.set(subs)
    return dept


@transaction.atomic
def update_department(dept: Department, *, actor, name: str | None = None, subscriptions=None) -> Department:
    if isinstance(actor, PortalUser):
        dept = _portal(actor, "manage").get("department", dept.pk)
    else:
        _staff(actor, "portal.change_department")
    dept = Department.objects.select_for_update().get(pk=dept.pk)  # a bound form already changed the instance
    if name is not None and name != dept.name:
        dept = recorded.update(dept, actor=_label(actor), name=name)
    if subscriptions is not None:
        subs = list(subscriptions)
        if any(s.billing_account.customer_id != dept.customer_id for s in subs):
            raise ValidationFailed("A line of another customer.", code="line_other_customer",
                                   fields={"subscriptions": ["Another customer's."]})
        before = sorted(s.number for s in dept.subscriptions.all())
        dept.subscriptions.set(subs)
        after = sorted(s.number for s in subs)
        if before != after:
            _audit(dept, actor=actor, action="lines", changes={"subscriptions": [before, after]})
    return dept


@transaction.atomic
def archive_department(dept: Department, *, actor, reason: str = "") -> Department:
    _staff(actor, "portal.delete_department")
    return recorded.archive(dept, actor=_label(actor), reason=reason)


def view_as(*, actor, customer) -> PortalUser:
    """Staff with portal.view_as_customer open the customer's portal read-only; audited on the
    customer. Returns the read-only stand-in user the pages are rendered for."""
    _staff(actor, "portal.view_as_customer")
    if not getattr(actor, "pk", None):
        raise PermissionDenied("Only a staff user views a customer's portal.")
    recorded.record(customer, actor=actor, action="portal_viewed_as_customer",
                    message="opened the customer's self-care portal read-only")
    stand_in = PortalUser(customer=customer, login=f"staff:{actor.get_username()}", role=PortalUser.Role.ADMINISTRATOR,
                          language="en")
    stand_in.read_only = True
    return stand_in


def account_funds(account) -> dict:
    """Balance, credit limit, promised credit and what may be spent (available) of an account."""
    from tarifa.subscriptions.thresholds import funds_of

    funds = funds_of(account)
    promised = subscriptions.promised_credit(account)
    return {"balance": account.balance, "credit_limit": account.credit_limit, "promised": promised,
            "available": funds.get("funds", account.balance + account.credit_limit + promised),
            "currency": account.currency}


def card_gateway():
    """The card gateway customers pay through in the portal: the first active card gateway."""
    from tarifa.payments.models import PaymentGateway

    return (PaymentGateway.objects.filter(kind=PaymentGateway.Kind.CARD, archived_at__isnull=True)
            .order_by("created_at").first())


def contact_value(customer, kind: str) -> str:
    contact = (customer.contacts.filter(kind=kind, archived_at__isnull=True)
               .order_by("-is_preferred", "created_at").first())
    return contact.value if contact else ""


def recent_periods(n: int = 6) -> list[str]:
    day = today().replace(day=1)
    out = []
    for _ in range(n):
        out.append(f"{day:%Y-%m}")
        day = (day - dt.timedelta(days=1)).replace(day=1)
    return out


def usage_summary(scope, sub, start, end) -> list[dict]:
    """Usage of a line in [start, end] by type and by day: what the customer reads on the service page."""
    from django.db.models import Count, Sum
    from django.db.models.functions import TruncDate

    from tarifa.rating.units import format_usage

    qs = scope.usage().filter(subscription=sub, start_time__date__gte=start, start_time__date__lte=end)
    rows = []
    for row in qs.values("usage_type").annotate(n=Count("id"), units=Sum("usage"), cost=Sum("cost")).order_by("usage_type"):
        days = list(qs.filter(usage_type=row["usage_type"]).annotate(day=TruncDate("start_time")).values("day")
                    .annotate(units=Sum("usage")).order_by("day"))
        peak = max((d["units"] or 0 for d in days), default=0) or 1
        rows.append({"type": row["usage_type"], "records": row["n"], "usage": format_usage(row["units"], row["usage_type"]),
                     "cost": row["cost"] or Decimal(0), "currency": sub.billing_account.currency,
                     "days": [{"day": d["day"], "usage": format_usage(d["units"], row["usage_type"]),
                               "percent": int(100 * (d["units"] or 0) / peak)} for d in days]})
    return rows


def money_text(amount, currency) -> str:
    return format_amount(amount, currency)


def client_context(ip: str | None):
    """Bind the audit context of a portal request (channel `portal`)."""
    ctx = context.current()
    return context.bind(request_id=ctx.request_id, ip=ip or ctx.ip, channel="portal")
