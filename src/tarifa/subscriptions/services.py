"""Subscriptions: the only write path for their life cycle.

Every function: keyword arguments, an `actor`, one transaction, an audit record and a
status change row for every transition, a typed `DomainError` on bad input (nothing
written). Money moves only through the ledger's services: one-time fees with
`post_transfer` (key `fee:<subscription>:<kind>:<event>`), recurring fees through the
set-based charge (`charging.post_charges`). Account-level work takes the account lock
(rule 7) through the ledger.

Prepaid limit (issue 3). A prepaid account cannot go below −(credit limit + promised
payments not yet expired). An operation whose fees do not fit is refused with
`insufficient_funds` (409) and writes nothing: activation (activation fee and the first
day), a tariff change (its fee and today under the new tariff), SIM replacement, number
change, voluntary suspension (their fees), a TV channel (today's share), a resumption
from dunning (the reconnection fee) and an operator's resumption for balance (today's
charges). Termination is never refused: its final days are charged while they fit and a
termination fee that does not fit is not charged (the history says so). A resumption
for another cause whose day does not fit leaves the subscription suspended for
`balance`. Postpaid accounts are not limited by these fees.

Events: `subscription.activated`, `subscription.suspended`, `subscription.resumed`,
`subscription.terminated`, `subscription.tariff_changed`, `subscription.sim_replaced`,
`subscription.number_changed`, `subscription.fee_charged` (one-time fees).
"""

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Sum

from tarifa.audit import services as recorded
from tarifa.catalog import selectors as catalog
from tarifa.catalog.services import carry_parameters, resolve_parameters
from tarifa.kernel import events
from tarifa.kernel.clock import now, today
from tarifa.kernel.errors import Conflict, DomainError, ValidationFailed
from tarifa.kernel.numbering import next_number
from tarifa.ledger import services as ledger
from tarifa.ledger.errors import InsufficientFunds

from . import charging, identifiers, thresholds
from .models import (IDENTIFIERS, IdentifierAssignment, PromisedPayment, StatusChange, Subscription,
                     SubscriptionItem, Suspension, TariffPeriod)

Status = Subscription.Status
Cause = Suspension.Cause


def _label(actor) -> str:
    return recorded.actor_label(actor)[:150]


def _lock(sub: Subscription) -> Subscription:
    """The account lock first (rule 7), then the subscription row."""
    ledger.lock_accounts(sub.billing_account)
    return Subscription.objects.select_for_update().select_related("tariff", "service__service_type",
                                                                   "billing_account").get(pk=sub.pk)


def _event(name, sub, **payload):
    events.emit(name, obj=sub, payload={"subscription": str(sub.pk), "number": sub.number,
                                        "billing_account": str(sub.billing_account_id), **payload})


def _transition(sub, *, actor, to, cause="", reason=""):
    frm = sub.status
    StatusChange.objects.create(subscription=sub, from_status=frm, to_status=to, cause=cause, actor=_label(actor),
                                reason=str(reason or ""), at=now())
    sub.status = to
    sub.updated_at = now()
    sub.save(update_fields=["status", "updated_at", "activated_on", "terminated_on"])
    recorded.record(sub, actor=actor, action=to if to != Status.ACTIVE or frm == Status.PENDING else "resume",
                    changes={"status": [frm, to]}, message=str(reason or "") + (f" ({cause})" if cause else ""))


def normalise_identifier(name: str, value) -> str:
    """`value` in the one notation of identifier `name` (E.164 phone numbers, …, see
    identifiers.py); `invalid_identifier` (400) when it cannot be read. Every write of an
    identifier goes through here (screens, API, import), before uniqueness is checked."""
    try:
        return identifiers.normalise(name, value, country_code=settings.TARIFA_DEFAULT_COUNTRY_CODE)
    except identifiers.BadIdentifier as err:
        raise ValidationFailed(f"{name} {value!r}: {err}", code="invalid_identifier",
                               fields={name: [str(err)]}) from None


def _check_identifiers(service, values: dict, *, exclude_pk=None) -> dict:
    """The identifiers given, normalised, checked against the service type and unique among
    live subscriptions (`identifier_in_use`, 409, naming the other subscription)."""
    allowed = service.service_type.identifier_kinds
    clean = {}
    for name in IDENTIFIERS:
        value = normalise_identifier(name, values.get(name))
        if not value:
            continue
        if allowed and name not in allowed:
            raise ValidationFailed(f"A {service.service_type} subscription has no {name}.", code="identifier_not_used",
                                   fields={name: [f"Not used by {service.service_type}."]})
        clash = Subscription.objects.exclude(status=Status.TERMINATED).filter(**{name: value})
        if exclude_pk:
            clash = clash.exclude(pk=exclude_pk)
        other = clash.first()
        if other is not None:
            raise Conflict(f"{name} {value!r} is already used by live subscription {other.number}.",
                           code="identifier_in_use", fields={name: [f"Used by {other.number}."]})
        clean[name] = value
    return clean


def _save_identifiers(sub, changes: dict):
    """Write identifier changes; the partial unique indexes catch a concurrent duplicate."""
    before = {name: getattr(sub, name) for name in IDENTIFIERS}
    try:
        with transaction.atomic():
            updated = recorded.update(sub, actor=changes.pop("_actor"), action=changes.pop("_action", "update"),
                                      **changes)
    except IntegrityError:
        raise Conflict("An identifier is already used by another live subscription.",
                       code="identifier_in_use") from None
    _track_identifiers(updated, before)
    return updated


def _track_identifiers(sub, before: dict):
    """Keep the identifier history (who held which identifier when) in step with `sub`."""
    at = now()
    for name in IDENTIFIERS:
        old, new = before.get(name) or "", getattr(sub, name) or ""
        if old == new:
            continue
        if old:
            IdentifierAssignment.objects.filter(subscription=sub, kind=name, valid_until__isnull=True).update(
                valid_until=at)
        if new:
            IdentifierAssignment.objects.create(subscription=sub, kind=name, value=new, valid_from=at)


def promised_credit(account) -> Decimal:
    """The promised payments of `account` not yet expired: credit on top of its limit."""
    return (PromisedPayment.objects.filter(billing_account=account, expires_at__gt=now())
            .aggregate(total=Sum("amount"))["total"] or Decimal(0))


def _one_time_fee(sub, *, actor, kind, event, day=None, refuse=True):
    """Charge the tariff's one-time fee `kind` (if priced) once per `event`.

    On a prepaid account the fee must fit −(credit limit + promised payments); when it
    does not, `refuse=True` raises `insufficient_funds` (the operation is refused, its
    transaction rolls back) and `refuse=False` leaves it uncharged, noted in the history.
    The caller holds the account lock, so the limit is read as locked.
    """
    day = day or today()
    amount = catalog.one_time_fee(sub.tariff, kind, day)
    if not amount:
        return None
    revenue = ledger.system_account(f"revenue:{sub.service.service_type.code}", sub.tariff.currency)
    try:
        transfer = ledger.post_transfer(
            actor=actor, debit=sub.billing_account, credit=revenue, amount=amount, currency=sub.tariff.currency,
            kind="charge", idempotency_key=f"fee:{sub.pk}:{kind}:{event}", reference=sub, enforce_limit=None,
            extra_credit=promised_credit(sub.billing_account),
            tags={"subscription": str(sub.pk), "service": sub.service.code, "tariff": sub.tariff.code, "fee": kind,
                  "period": str(day)}, memo=f"{kind.replace('_', ' ')} {sub.number}")
    except InsufficientFunds as err:
        label = kind.replace("_", " ")
        if refuse:
            raise InsufficientFunds(f"The {label} fee ({amount.normalize():f} {sub.tariff.currency}) does not fit:"
                                    f" {err.message}", fields={"billing_account": ["Insufficient funds."]}) from None
        recorded.record(sub, actor=actor, action="fee_not_charged", changes={"fee": [None, kind]},
                        message=f"{label} fee {amount.normalize():f} {sub.tariff.currency} not charged: {err.message}")
        return None
    if not transfer.replayed:
        _event("subscription.fee_charged", sub, fee=kind, amount=str(amount), currency=sub.tariff.currency)
    return transfer


def _charge_days(sub, *, actor, first, last, refused="raise"):
    """Recurring fees of `sub` from `first` to `last`; `refused` as in charging.post_charges."""
    if last < first:
        return None
    return charging.post_charges(first=first, last=last, actor=actor, scope="s.id = %(sub)s",
                                 params={"sub": sub.pk}, refused=refused)


def _account_open(account):
    if not account.is_active or account.archived_at is not None:
        raise DomainError(f"Account {account} is closed.", code="account_closed", status=409,
                          fields={"billing_account": ["The account is closed."]})


def check_password(password, *, login: str) -> str:
    """The rule for a login's password (RADIUS PAP/CHAP/MS-CHAPv2, so kept recoverable, encrypted):
    only with a login, at most 128 characters (PAP's limit), printable."""
    password = password or ""
    if not password:
        return ""
    if not login:
        raise ValidationFailed("A password needs a login.", code="password_without_login",
                               fields={"password": ["Give the login too."]})
    if len(password) > 128 or not password.isprintable():
        raise ValidationFailed("A password has at most 128 printable characters.", code="invalid_password",
                               fields={"password": ["At most 128 printable characters."]})
    return password


# Creation and activation ----------------------------------------------------------------

@transaction.atomic
def create_subscription(*, actor, billing_account, tariff, parameters=None, note="", activate=False,
                        password="", **identifiers) -> Subscription:
    """A pending subscription of `tariff`'s service for `billing_account`, with identifiers
    unique among live subscriptions (`identifier_in_use`, 409). `activate=True` activates it
    in the same transaction. `password` is the login's (network access), stored encrypted."""
    unknown = set(identifiers) - set(IDENTIFIERS)
    if unknown:
        raise ValidationFailed(f"Unknown fields: {', '.join(sorted(unknown))}.", code="unknown_field")
    _account_open(billing_account)
    if tariff.archived_at is not None:
        raise DomainError("The tariff is archived.", code="tariff_archived", fields={"tariff": ["Archived."]})
    if tariff.currency != billing_account.currency:
        raise ValidationFailed(f"The tariff is in {tariff.currency}, the account in {billing_account.currency}.",
                               code="currency_mismatch", fields={"tariff": ["Another currency than the account's."]})
    service = tariff.service
    params = resolve_parameters(tariff, parameters)
    idents = _check_identifiers(service, identifiers)
    password = check_password(password, login=idents.get("login", ""))
    sub = Subscription(number=next_number("S"), billing_account=billing_account, service=service, tariff=tariff,
                       parameters=params, note=note, access_password=password, **idents)
    recorded.validate(sub)
    try:
        with transaction.atomic():
            sub.save(force_insert=True)
    except IntegrityError:
        raise Conflict("An identifier is already used by another live subscription.", code="identifier_in_use") from None
    StatusChange.objects.create(subscription=sub, from_status="", to_status=Status.PENDING, actor=_label(actor),
                                reason="created", at=now())
    _track_identifiers(sub, {})
    recorded.record(sub, actor=actor, action="create", changes=recorded.diff({}, recorded.snapshot(sub)))
    if activate:
        sub = activate_subscription(sub, actor=actor)
    return sub


@transaction.atomic
def activate_subscription(sub, *, actor, reason="") -> Subscription:
    """pending → active from today: the tariff period starts, the activation fee and today's
    recurring fees are charged, the account's thresholds are evaluated. Takes the account lock.
    On a prepaid account both must fit the limit, or the activation is refused
    (`insufficient_funds`, nothing written)."""
    sub = _lock(sub)
    if sub.status != Status.PENDING:
        raise DomainError(f"Subscription {sub.number} is {sub.status}, not pending.", code="not_pending", status=409)
    _account_open(sub.billing_account)
    day = today()
    if sub.tariff.version_on(day) is None:
        raise DomainError(f"Tariff {sub.tariff.code} has no price in force on {day}.", code="tariff_not_priced",
                          fields={"tariff": ["No price version in force."]})
    sub.activated_on = day
    TariffPeriod.objects.create(subscription=sub, tariff=sub.tariff, valid_from=day)
    _transition(sub, actor=actor, to=Status.ACTIVE, reason=reason or "activated")
    _one_time_fee(sub, actor=actor, kind="activation", event="once", day=day)
    _charge_days(sub, actor=actor, first=day, last=day)
    _event("subscription.activated", sub, tariff=sub.tariff.code)
    thresholds.evaluate(scope="ba.id = %(account)s", params={"account": sub.billing_account_id}, actor=actor)
    sub.refresh_from_db()
    return sub


@transaction.atomic
def update_subscription(sub, *, actor, note=None, parameters=None, password=None) -> Subscription:
    """Change the note, the parameters the tariff leaves open, or the login's password."""
    changes = {}
    if password is not None:
        changes["access_password"] = check_password(password, login=sub.login)
    if note is not None:
        changes["note"] = note
    if parameters is not None:
        changes["parameters"] = resolve_parameters(sub.tariff, parameters)
    return recorded.update(sub, actor=actor, **changes) if changes else sub


# Suspension and resumption ---------------------------------------------------------------

@transaction.atomic
def suspend(sub, *, actor, cause, reason="", planned_end=None) -> Subscription:
    """Open the blocking cause `cause`; an active subscription becomes suspended.

    Customer requests must be allowed by the tariff, within its max days, and pay the
    voluntary-suspension fee when it has one. Recurring fees already charged for days after
    today are reversed unless the tariff charges suspended days. Suspending for a cause already open is a
    conflict (`already_suspended`). Emits `subscription.suspended` on the transition.
    """
    if cause not in Cause.values:
        raise ValidationFailed(f"Unknown cause {cause!r}.", code="invalid_cause", fields={"cause": ["Unknown."]})
    sub = _lock(sub)
    if sub.status not in (Status.ACTIVE, Status.SUSPENDED):
        raise DomainError(f"Subscription {sub.number} is {sub.status}.", code="not_active", status=409)
    if sub.suspensions.filter(cause=cause, ended_at__isnull=True).exists():
        raise Conflict(f"Subscription {sub.number} is already suspended for {cause}.", code="already_suspended")
    day = today()
    if cause == Cause.CUSTOMER_REQUEST:
        if not sub.tariff.voluntary_suspension:
            raise DomainError("The tariff does not allow voluntary suspension.", code="voluntary_suspension_not_allowed")
        if planned_end is not None:
            if planned_end <= day:
                raise ValidationFailed("The planned end is after today.", code="invalid_dates",
                                       fields={"planned_end": ["After today."]})
            if (planned_end - day).days > sub.tariff.voluntary_suspension_max_days:
                raise ValidationFailed(f"At most {sub.tariff.voluntary_suspension_max_days} days.",
                                       code="suspension_too_long", fields={"planned_end": ["Too long."]})
    suspension = Suspension.objects.create(subscription=sub, cause=cause, started_at=now(), started_on=day,
                                           planned_end=planned_end, reason=str(reason or ""), actor=_label(actor))
    if cause == Cause.CUSTOMER_REQUEST:  # a prepaid account short of the fee: refused
        _one_time_fee(sub, actor=actor, kind="voluntary_suspension", event=suspension.pk, day=day)
    charging.reverse_charged_after(sub, day=day, actor=actor, suspension=True,
                                   reason=f"{sub.number} suspended from {day} ({cause}): day not served")
    if sub.status == Status.ACTIVE:
        _transition(sub, actor=actor, to=Status.SUSPENDED, cause=cause, reason=reason)
        _event("subscription.suspended", sub, cause=cause)
    else:
        recorded.record(sub, actor=actor, action="suspend_cause", changes={"cause": [None, cause]}, message=reason)
    return sub


@transaction.atomic
def resume(sub, *, actor, cause, reason="") -> Subscription:
    """Clear the cause `cause`; with no cause left open the subscription is active again,
    today's fees are charged and `subscription.resumed` is emitted. A balance cause is
    cleared only when the funds allow it: at least *resume at*, and today's charges fit
    (`insufficient_funds` otherwise). A resumption from dunning charges the reconnection
    fee, refused on a prepaid account that cannot pay it. For other causes, a prepaid
    account that cannot pay today leaves the subscription suspended for `balance`."""
    sub = _lock(sub)
    open_ = sub.suspensions.filter(cause=cause, ended_at__isnull=True).first()
    if open_ is None:
        raise DomainError(f"Subscription {sub.number} is not suspended for {cause}.", code="not_suspended", status=409)
    if cause == Cause.BALANCE:
        funds = thresholds.funds_of(sub.billing_account)["funds"]
        level = sub.tariff.resume_at if sub.billing_account.payment_mode == "prepaid" else Decimal(0)
        if funds < level:
            raise DomainError(f"Funds {funds.normalize():f} are below the resume level {level.normalize():f}.",
                              code="insufficient_funds", status=409)
    day = today()
    open_.ended_at, open_.ended_on, open_.ended_by = now(), day, _label(actor)
    open_.save(update_fields=["ended_at", "ended_on", "ended_by"])
    if not sub.suspensions.filter(ended_at__isnull=True).exists() and sub.status == Status.SUSPENDED:
        _transition(sub, actor=actor, to=Status.ACTIVE, cause=cause, reason=reason or "resumed")
        if cause == Cause.DUNNING:
            _one_time_fee(sub, actor=actor, kind="reconnection", event=open_.pk, day=day)
        _event("subscription.resumed", sub, cause=cause)
        # Today, and the days a charge run already covered (charged ahead, reversed at the suspension).
        _charge_days(sub, actor=actor, first=day, last=max(day, charging.last_charged_day() or day),
                     refused="raise" if cause == Cause.BALANCE else "suspend")
        thresholds.evaluate(scope="ba.id = %(account)s", params={"account": sub.billing_account_id}, actor=actor)
    else:
        recorded.record(sub, actor=actor, action="clear_cause", changes={"cause": [cause, None]}, message=reason)
    sub.refresh_from_db()
    return sub


def end_voluntary_suspensions(*, as_of: dt.date, actor="system") -> int:
    """Resume customer-requested suspensions whose planned end has come; returns how many
    subscriptions became active (another open cause keeps one suspended)."""
    n = 0
    for susp in Suspension.objects.filter(cause=Cause.CUSTOMER_REQUEST, ended_at__isnull=True,
                                          planned_end__lte=as_of).select_related("subscription"):
        sub = resume(susp.subscription, actor=actor, cause=Cause.CUSTOMER_REQUEST,
                     reason=f"Resumed by the daily charge: the customer's suspension reached its planned end"
                            f" {susp.planned_end}")
        n += sub.status == Status.ACTIVE
    return n


# Tariff change, SIM, number, channels --------------------------------------------------------

@transaction.atomic
def change_tariff(sub, *, actor, tariff, effective=None, parameters=None, reason="") -> Subscription:
    """Move to `tariff` (same service, same currency) from `effective` (today or later).

    Fees follow the tariff period in force each day, so the change is prorated by day.
    A day already charged under the old tariff is not charged again. A future change
    replaces any other future change. The new tariff's tariff-change fee is charged now.
    Parameters: the new tariff's fixed values replace the old; values the new tariff leaves
    open are kept where still valid, else dropped (`parameters` gives or overrides them);
    for a scheduled change they are set when it takes effect.
    Errors: tariff_other_service, currency_mismatch, backdated_change, not_active,
    insufficient_funds (a prepaid account cannot pay the fee or today under the new tariff).
    """
    sub = _lock(sub)
    day = today()
    effective = effective or day
    if sub.status not in (Status.ACTIVE, Status.SUSPENDED):
        raise DomainError(f"Subscription {sub.number} is {sub.status}.", code="not_active", status=409)
    if tariff.service_id != sub.service_id:
        raise ValidationFailed(f"Tariff {tariff.code} is for {tariff.service}, not {sub.service}.",
                               code="tariff_other_service", fields={"tariff": ["A tariff of another service."]})
    if tariff.currency != sub.billing_account.currency:
        raise ValidationFailed("The tariff is in another currency than the account.", code="currency_mismatch",
                               fields={"tariff": ["Another currency."]})
    if tariff.archived_at is not None:
        raise DomainError("The tariff is archived.", code="tariff_archived", fields={"tariff": ["Archived."]})
    if effective < day:
        raise ValidationFailed("A tariff change takes effect today or later.", code="backdated_change",
                               fields={"effective": [f"{day} or later."]})
    if tariff.version_on(effective) is None:
        raise DomainError(f"Tariff {tariff.code} has no price in force on {effective}.", code="tariff_not_priced")
    if tariff.pk == sub.tariff_id and not sub.tariff_periods.filter(valid_from__gt=day).exists():
        raise DomainError("The subscription already has this tariff.", code="tariff_unchanged", status=409)
    # The new tariff's fixed parameters; open ones carried over where still valid, or given.
    params = carry_parameters(tariff, sub.parameters, parameters)
    # Drop future changes; cut the period in force at `effective`.
    sub.tariff_periods.filter(valid_from__gt=day).delete()
    current = sub.tariff_periods.filter(valid_from__lte=effective).order_by("-valid_from").first()
    if current.valid_from == effective:
        current.tariff = tariff
        current.valid_until = None
        current.parameters = dict(parameters or {})
        current.save(update_fields=["tariff", "valid_until", "parameters"])
    else:
        current.valid_until = effective
        current.save(update_fields=["valid_until"])
        TariffPeriod.objects.create(subscription=sub, tariff=tariff, valid_from=effective,
                                    parameters=dict(parameters or {}))
    old = sub.tariff
    if effective == day:
        recorded.update(sub, actor=actor, action="change_tariff", message=reason, tariff=tariff, parameters=params)
        sub.tariff = tariff
        _charge_days(sub, actor=actor, first=day, last=day)
    else:
        recorded.record(sub, actor=actor, action="schedule_tariff_change",
                        changes={"tariff": [old.code, tariff.code], "effective": [None, str(effective)]},
                        message=reason)
    fee_sub = Subscription(pk=sub.pk, billing_account=sub.billing_account, service=sub.service, tariff=tariff,
                           number=sub.number)
    _one_time_fee(fee_sub, actor=actor, kind="tariff_change", event=f"{effective}-{tariff.code}", day=day)
    _event("subscription.tariff_changed", sub, old_tariff=old.code, tariff=tariff.code, effective=str(effective))
    thresholds.evaluate(scope="ba.id = %(account)s", params={"account": sub.billing_account_id}, actor=actor)
    sub.refresh_from_db()
    return sub


def apply_due_tariff_changes(*, as_of: dt.date, actor="system") -> int:
    """Make the tariff period in force on `as_of` the subscription's current tariff, with its
    parameters: the new tariff's fixed ones, the open ones carried where still valid and
    those given when the change was scheduled."""
    n = 0
    due = (TariffPeriod.objects.filter(valid_from__lte=as_of, valid_until__isnull=True)
           .exclude(subscription__tariff_id=F("tariff_id"))
           .exclude(subscription__status=Status.TERMINATED).select_related("subscription", "tariff"))
    for period in due:
        sub = period.subscription
        try:
            params = carry_parameters(period.tariff, sub.parameters, period.parameters)
        except ValidationFailed as err:  # e.g. a required parameter the catalog added since: kept, said
            params = sub.parameters
            recorded.record(sub, actor=actor, action="parameters_not_carried", message=err.message)
        recorded.update(sub, actor=actor, action="change_tariff", tariff=period.tariff, parameters=params,
                        message=f"scheduled change effective {period.valid_from}")
        n += 1
    return n


@transaction.atomic
def replace_sim(sub, *, actor, iccid, imsi="", reason="") -> Subscription:
    """A new SIM card (ICCID, IMSI) for a live subscription; the SIM replacement fee is charged
    (`insufficient_funds` when a prepaid account cannot pay it)."""
    sub = _lock(sub)
    if sub.status == Status.TERMINATED:
        raise DomainError("The subscription is terminated.", code="terminated", status=409)
    iccid, imsi = normalise_identifier("iccid", iccid), normalise_identifier("imsi", imsi)
    if not iccid:
        raise ValidationFailed("The new ICCID is required.", code="required", fields={"iccid": ["Required."]})
    if iccid == sub.iccid:
        raise DomainError("That SIM is already the subscription's.", code="sim_unchanged", status=409)
    values = {"iccid": iccid, **({"imsi": imsi} if imsi else {})}
    _check_identifiers(sub.service, values, exclude_pk=sub.pk)
    old = sub.iccid
    sub = _save_identifiers(sub, {"_actor": actor, "_action": "replace_sim", **values, "imsi": imsi or sub.imsi})
    sub = Subscription.objects.select_related("tariff", "service__service_type", "billing_account").get(pk=sub.pk)
    _one_time_fee(sub, actor=actor, kind="sim_replacement", event=f"{old}-{iccid}")
    _event("subscription.sim_replaced", sub, old_iccid=old, iccid=iccid)
    return sub


@transaction.atomic
def change_number(sub, *, actor, phone_number, reason="") -> Subscription:
    """A new phone number for a live subscription; the number-change fee is charged
    (`insufficient_funds` when a prepaid account cannot pay it)."""
    sub = _lock(sub)
    if sub.status == Status.TERMINATED:
        raise DomainError("The subscription is terminated.", code="terminated", status=409)
    phone_number = normalise_identifier("phone_number", phone_number)
    if not phone_number or phone_number == sub.phone_number:
        raise ValidationFailed("Give a new number.", code="number_unchanged", fields={"phone_number": ["A new number."]})
    _check_identifiers(sub.service, {"phone_number": phone_number}, exclude_pk=sub.pk)
    old = sub.phone_number
    sub = _save_identifiers(sub, {"_actor": actor, "_action": "change_number", "phone_number": phone_number})
    sub = Subscription.objects.select_related("tariff", "service__service_type", "billing_account").get(pk=sub.pk)
    _one_time_fee(sub, actor=actor, kind="number_change", event=f"{old}-{phone_number}")
    _event("subscription.number_changed", sub, old_number=old, phone_number=phone_number)
    return sub


@transaction.atomic
def add_item(sub, *, actor, channel=None, package=None) -> SubscriptionItem:
    """Pick a TV channel or package priced by the tariff; charged per item from today
    (`insufficient_funds` when a prepaid account cannot pay today's share)."""
    if (channel is None) == (package is None):
        raise ValidationFailed("Give a channel or a package.", code="invalid_item", fields={"channel": ["One of them."]})
    sub = _lock(sub)
    if sub.status == Status.TERMINATED:
        raise DomainError("The subscription is terminated.", code="terminated", status=409)
    day = today()
    version = sub.tariff.version_on(day)
    priced = version and version.channel_prices.filter(channel=channel, package=package).exists()
    if not priced:
        raise ValidationFailed(f"Tariff {sub.tariff.code} does not sell {channel or package}.", code="item_not_priced",
                               fields={"channel" if channel else "package": ["Not sold under this tariff."]})
    if sub.items.filter(channel=channel, package=package, removed_on__isnull=True).exists():
        raise Conflict("Already picked.", code="item_exists")
    item = recorded.create(SubscriptionItem, actor=actor, subscription=sub, channel=channel, package=package,
                           added_on=day)
    if sub.status != Status.PENDING:
        _charge_days(sub, actor=actor, first=day, last=day)
    return item


@transaction.atomic
def remove_item(item, *, actor, reason="") -> SubscriptionItem:
    """Stop a channel or package from tomorrow (today stays charged)."""
    if item.removed_on is not None:
        raise DomainError("Already removed.", code="item_removed", status=409)
    return recorded.update(item, actor=actor, action="remove", message=reason,
                           removed_on=today() + dt.timedelta(days=1))


# Termination ------------------------------------------------------------------------------------

@transaction.atomic
def terminate(sub, *, actor, reason="") -> Subscription:
    """End the service today with final charges: every day up to today not yet charged,
    and the termination fee. Recurring fees already charged for later days (a charge run
    for a future day) are reversed — new reversal transfers naming the termination. Identifiers become free for other subscriptions. Open
    suspensions are closed. Emits `subscription.terminated`. Never refused for funds: on
    a prepaid account the final days are charged while they fit, and a termination fee
    that does not fit is not charged (recorded in the subscription's history)."""
    sub = _lock(sub)
    if sub.status == Status.TERMINATED:
        raise DomainError("Already terminated.", code="terminated", status=409)
    day = today()
    IdentifierAssignment.objects.filter(subscription=sub, valid_until__isnull=True).update(valid_until=now())
    if sub.status == Status.PENDING:
        sub.terminated_on = None
        _transition(sub, actor=actor, to=Status.TERMINATED, reason=reason or "cancelled before activation")
        return sub
    last_run = charging_last_day()
    first = max(sub.activated_on, (last_run + dt.timedelta(days=1)) if last_run else sub.activated_on)
    sub.terminated_on = day
    _charge_days(sub, actor=actor, first=min(first, day), last=day, refused="skip")
    charging.reverse_charged_after(sub, day=day, actor=actor, suspension=False,
                                   reason=f"{sub.number} terminated on {day}: day not served")
    Suspension.objects.filter(subscription=sub, ended_at__isnull=True).update(
        ended_at=now(), ended_on=day, ended_by=_label(actor))
    sub.tariff_periods.filter(valid_from__gt=day).delete()
    sub.items.filter(removed_on__isnull=True).update(removed_on=day + dt.timedelta(days=1))
    _transition(sub, actor=actor, to=Status.TERMINATED, reason=reason or "terminated")
    _one_time_fee(sub, actor=actor, kind="termination", event="once", day=day, refuse=False)
    _event("subscription.terminated", sub, reason=reason)
    return sub


def charging_last_day():
    return charging.last_charged_day()


# Promised payment -------------------------------------------------------------------------------

@transaction.atomic
def grant_promised_payment(account, *, actor) -> PromisedPayment:
    """Temporary credit for `account`: the largest amount its live subscriptions' tariffs offer,
    for their number of days, at most once per their interval. Re-evaluates the account at once
    (a suspended subscription resumes when the credit covers it)."""
    ledger.lock_accounts(account)
    _account_open(account)
    tariffs = [s.tariff for s in account.subscriptions.exclude(status__in=[Status.TERMINATED, Status.PENDING])
               .select_related("tariff")]
    offers = [t for t in tariffs if t.promised_payment_amount > 0]
    if not offers:
        raise DomainError("No tariff of this account offers a promised payment.", code="promised_payment_not_offered",
                          status=409)
    best = max(offers, key=lambda t: t.promised_payment_amount)
    at = now()
    last = account.promised_payments.order_by("-granted_at").first()
    if last is not None and at - last.granted_at < dt.timedelta(days=best.promised_payment_interval_days):
        raise DomainError(f"A promised payment was already taken on {last.granted_at:%Y-%m-%d}; at most one per "
                          f"{best.promised_payment_interval_days} days.", code="promised_payment_too_soon", status=409)
    promise = PromisedPayment(billing_account=account, amount=best.promised_payment_amount, granted_at=at,
                              expires_at=at + dt.timedelta(days=best.promised_payment_days), actor=_label(actor))
    recorded.validate(promise)
    promise.save(force_insert=True)
    recorded.record(promise, actor=actor, action="create", changes=recorded.diff({}, recorded.snapshot(promise)))
    events.emit("account.promised_payment", obj=account, payload={"billing_account": str(account.pk),
                                                                  "amount": str(promise.amount),
                                                                  "expires_at": promise.expires_at.isoformat()})
    thresholds.evaluate(scope="ba.id = %(account)s", params={"account": account.pk}, actor=actor,
                        by="a promised payment")
    return promise


def expire_promised_payments(*, actor="system") -> int:
    """Mark promises past their time as expired and re-evaluate their accounts."""
    at = now()
    n = 0
    for promise in PromisedPayment.objects.filter(expires_at__lte=at, expired_at__isnull=True):
        with transaction.atomic():
            ledger.lock_accounts(promise.billing_account)
            PromisedPayment.objects.filter(pk=promise.pk).update(expired_at=at)
            recorded.record(promise, actor=actor, action="expire")
            thresholds.evaluate(scope="ba.id = %(account)s", params={"account": promise.billing_account_id},
                                actor=actor, by="a promised payment's expiry")
        n += 1
    return n
