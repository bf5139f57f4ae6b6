"""Online charging: the only write path of credit-control sessions (ARCHITECTURE.md rules 1, 4, 5, 7).

A session asks for units (`start`), reports what it used and asks for more (`update`),
and ends (`terminate`); a one-shot request (an SMS, a VOD purchase) is an `event`.
Every call, in one transaction:

1. takes the account lock (`ledger.lock_accounts`, rule 7) — the one lock of the billing
   account, so requests of all the sessions of an account are serialised;
2. answers a request number it has seen from the stored answer (a retransmission is
   charged once);
3. debits what was reported used: cost(used so far) − what the session already paid
   (`pricing.py`: the whole call priced from its answer time, as rating prices its CDR),
   by posting the session's open hold (the part it does not cover is released; usage past
   the grant is still charged);
4. reserves the next slice as a new hold: the most units (≤ asked) whose price fits
   available balance + credit limit + promised payments (prepaid), read under the lock —
   so the open reservations of an account never exceed what it may spend, and N
   concurrent sessions each get what is left. Free units of the tariff's bundles are
   given before money. A grant smaller than asked carries a final-unit indication; none
   at all is result 4012 (credit limit reached).

Silent sessions: `expire_sessions` (a job every minute) expires the holds past their
validity (the ledger's `expire_holds`) and closes their sessions at what was reported.
Result codes are Diameter's (RFC 4006), also used by the HTTP API and for RADIUS.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext, ngettext

from tarifa.audit import services as recorded
from tarifa.kernel.clock import now
from tarifa.kernel.errors import NotFound, ValidationFailed
from tarifa.ledger import services as ledger
from tarifa.ledger.models import BillingAccount, Hold
from tarifa.rating import engine, plans
from tarifa.rating import services as rating
from tarifa.rating.models import Bundle, BundleCounter, TariffRating
from tarifa.rating.selectors import measure_of
from tarifa.rating.usage import period_start
from tarifa.subscriptions import selectors as subscriptions
from tarifa.subscriptions.models import Subscription
from tarifa.subscriptions.services import promised_credit

from . import pricing
from .models import CallMatch, ChargingRequest, ChargingSession, DiameterPeer, Reservation

ZERO = Decimal(0)

# Result codes (RFC 6733, RFC 4006).
SUCCESS = 2001
END_USER_SERVICE_DENIED = 4010
CREDIT_CONTROL_NOT_APPLICABLE = 4011
CREDIT_LIMIT_REACHED = 4012
UNKNOWN_SESSION_ID = 5002
INVALID_AVP_VALUE = 5004
USER_UNKNOWN = 5030
RATING_FAILED = 5031
RESULT_TEXT = {
    SUCCESS: "success", END_USER_SERVICE_DENIED: "end user service denied",
    CREDIT_CONTROL_NOT_APPLICABLE: "credit control not applicable", CREDIT_LIMIT_REACHED: "credit limit reached",
    UNKNOWN_SESSION_ID: "unknown session", INVALID_AVP_VALUE: "invalid value", USER_UNKNOWN: "user unknown",
    RATING_FAILED: "rating failed",
}

TERMINATE = "terminate"
REDIRECT = "redirect"


def validity() -> int:
    """Seconds a grant is valid (Validity-Time); the hold lives a grace minute longer."""
    return int(getattr(settings, "TARIFA_CHARGING_VALIDITY", 600))


def topup_url() -> str:
    return getattr(settings, "TARIFA_CHARGING_TOPUP_URL", "")


GRACE = dt.timedelta(seconds=60)
SIX = Decimal("0.000001")


def _money(value: Decimal) -> str:
    """An amount as the answers give it: a decimal string with the ledger's 6 places."""
    return f"{Decimal(value).quantize(SIX):f}"


@dataclasses.dataclass
class Answer:
    """What a credit-control request is answered (stored with the request for retransmissions)."""

    result_code: int
    session: str | None = None
    granted: int = 0  # base units: ns for time, bytes, items
    validity_time: int = 0
    final_unit: str = ""  # "", "terminate" or "redirect"
    redirect_url: str = ""
    charged: str = "0"  # what this request debited
    total: str = "0"  # what the session cost so far
    reserved: str = "0"  # money held for the grant
    currency: str = ""
    message: str = ""
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.result_code == SUCCESS

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("replayed")
        return data

    @classmethod
    def stored(cls, data: dict) -> Answer:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields}, replayed=True)


class Refused(Exception):
    """A request answered with a failure result code (nothing charged)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# --- subscriber and tariff -------------------------------------------------------------------------

def identifier_value(kind: str, value: str) -> str:
    """The stored form of a subscriber identifier: E.164 with '+', IMSI digits, login as given."""
    value = str(value or "").strip()
    if kind == "e164":
        if value.lower().startswith("tel:"):
            value = value[4:]
        digits = value.lstrip("+")
        return "+" + digits if digits.isdigit() else value
    return value


def find_subscription(kind: str, value: str, at: dt.datetime) -> Subscription:
    """The subscription that held the identifier at `at` (any kind), else Refused 5030."""
    stored = identifier_value(kind, value)
    sub = subscriptions.owner_of_identifier(stored, at) if stored else None
    if sub is None and kind == "any" and stored.isdigit():
        stored = "+" + stored  # an E.164 number written without its '+'
        sub = subscriptions.owner_of_identifier(stored, at)
    if sub is None:
        raise Refused(USER_UNKNOWN, f"No subscription holds {stored or '(nothing)'}.")
    return sub


def clean_destination(value: str) -> str:
    """Dialled digits from a number or a SIP/tel URI ("tel:+4930…", "sip:+4930…@ims")."""
    text = str(value or "").strip()
    for scheme in ("tel:", "sip:", "sips:"):
        if text.lower().startswith(scheme):
            text = text[len(scheme):]
    text = text.split("@", 1)[0].split(";", 1)[0]
    return text.lstrip("+")


@dataclasses.dataclass
class Terms:
    tenant: str
    category: str
    rating_subject: str
    rating_plan: str
    rounding: int
    tariff_id: object
    service_type: str


def _terms(sub: Subscription, usage_type: str, at: dt.datetime) -> Terms:
    day = at.astimezone(ZoneInfo(settings.TIME_ZONE)).date()
    if sub.status != Subscription.Status.ACTIVE or sub.activated_on is None or day < sub.activated_on:
        raise Refused(END_USER_SERVICE_DENIED, f"Subscription {sub.number} is {sub.status}.")
    tariff = subscriptions.tariff_on(sub, day)
    if tariff is None:
        raise Refused(END_USER_SERVICE_DENIED, f"Subscription {sub.number} has no tariff on {day}.")
    tr = (TariffRating.objects.filter(tariff=tariff, archived_at__isnull=True)
          .select_related("tenant", "rating_plan").first())
    if tr is None:
        raise Refused(RATING_FAILED, f"Tariff {tariff.code} has no rating.")
    service_type = tariff.service.service_type.code if tariff.service_id else "usage"
    return Terms(tenant=tr.tenant.code, category=tr.category_for(usage_type), rating_subject=tr.subject,
                 rating_plan=tr.rating_plan.code if tr.rating_plan_id else "", rounding=tr.rounding_decimals,
                 tariff_id=tariff.pk, service_type=service_type)


def _pricing(session: ChargingSession) -> pricing.Pricing:
    from tarifa.rating.models import UsageType

    split = UsageType.objects.filter(code=session.usage_type).values_list("split_by_time", flat=True).first()
    if split is None:
        split = session.usage_type in engine.VOICE_USAGE_TYPES
    return pricing.Pricing(
        plan=plans.plan_for(session.tenant), tenant=session.tenant, category=session.category,
        subject=session.rating_subject or session.subject, destination=session.destination,
        answer_time=session.started_at.astimezone(ZoneInfo(settings.TIME_ZONE)), split=bool(split),
        rounding_decimals=session.rounding_decimals, rating_plan=session.rating_plan or None,
        free=session.free_units)


def _measure(usage_type: str) -> str:
    return measure_of(usage_type)


# --- money ---------------------------------------------------------------------------------------------

def _revenue(session: ChargingSession):
    return ledger.system_account(f"revenue:{_service_type(session)}", session.currency)


def _service_type(session: ChargingSession) -> str:
    sub = session.subscription
    return sub.service.service_type.code if sub.service_id else "usage"


def _budget(account: BillingAccount, locked) -> Decimal | None:
    """What the account may still reserve, read under its lock; None = no limit (postpaid)."""
    if locked.payment_mode != BillingAccount.PaymentMode.PREPAID:
        return None
    return locked.available + locked.credit_limit + promised_credit(account)


def _tags(session: ChargingSession) -> dict:
    return {"usage_type": session.usage_type, "service_type": _service_type(session),
            "subscription": session.subscription.number, "charging": session.origin}


def _charge(session: ChargingSession, *, actor, amount: Decimal, key: str, memo: str) -> None:
    """Debit (amount > 0) or give back (amount < 0) outside a hold; never refused for funds."""
    if amount > 0:
        ledger.post_transfer(actor=actor, debit=session.billing_account, credit=_revenue(session), amount=amount,
                             currency=session.currency, kind="charge", idempotency_key=key, tags=_tags(session),
                             reference=session, memo=memo, enforce_limit=False)
    elif amount < 0:
        ledger.post_transfer(actor=actor, debit=_revenue(session), credit=session.billing_account, amount=-amount,
                             currency=session.currency, kind="adjustment", idempotency_key=key,
                             tags=_tags(session), reference=session, memo=memo + " (correction)",
                             enforce_limit=False)


def _settle(session: ChargingSession, *, actor, used: int, price: pricing.Pricing, expired=False) -> Decimal:
    """Debit cost(used) − charged, through the open reservation's hold; close the reservation.

    Returns what was debited (negative: given back). The session is saved by the caller.
    """
    target = price.cost(used)
    delta = target - session.charged
    res = session.reservations.filter(state=Reservation.State.OPEN).select_related("hold").first()
    rest = delta
    if res is not None:
        hold = res.hold
        if hold is not None:
            hold = Hold.objects.get(pk=hold.pk)
            usable = hold.state == Hold.State.PENDING and hold.expires_at > now()
            if usable and delta > 0:
                post = min(delta, hold.amount)
                ledger.post_hold(hold, actor=actor, idempotency_key=f"charging:{res.pk}:post", amount=post,
                                 memo=f"Online charging: {session}")
                rest = delta - post
            elif hold.state == Hold.State.PENDING:
                ledger.void_hold(hold, actor=actor, reason="online charging: settled")
        res.state = Reservation.State.EXPIRED if expired else Reservation.State.SETTLED
        res.resolved_at = now()
        res.save(update_fields=["state", "resolved_at"])
    key = f"charging:{res.pk if res else session.pk}:{session.last_request_number}:rest"
    _charge(session, actor=actor, amount=rest, key=key, memo=f"Online charging: {session}")
    session.charged = target
    session.used_units = used
    session.rated_units = price.rated_usage(used)
    return delta


def _free_left(session: ChargingSession, bundle: Bundle) -> tuple[int, dt.date]:
    day = session.started_at.astimezone(ZoneInfo(settings.TIME_ZONE)).date()
    start = period_start(day, bundle.period)
    used = (BundleCounter.objects.filter(subscription_id=session.subscription_id, bundle=bundle, period_start=start)
            .values_list("used", flat=True).first() or 0)
    held = sum(ChargingSession.objects.filter(subscription_id=session.subscription_id, state="open",
                                              bundle=bundle).exclude(pk=session.pk)
               .values_list("free_units", flat=True))
    return max(bundle.allowance - used - held, 0), start


def _take_free(session: ChargingSession, *, requested: int, price: pricing.Pricing, tariff_id) -> None:
    """Units before money: give the session free units of a matching bundle for this slice."""
    if requested <= 0:
        return
    bundles = [b for b in Bundle.objects.filter(tariff_id=tariff_id, usage_type=session.usage_type,
                                               archived_at__isnull=True).order_by("code")]
    if session.bundle_id:
        bundles = [b for b in bundles if b.pk == session.bundle_id]
    if not bundles:
        return
    destination = None
    for bundle in bundles:
        if bundle.destinations:
            if destination is None:
                try:
                    destination = price.rate(1).spans[0].destination_id
                except (engine.RatingError, IndexError):
                    destination = ""
            if destination not in bundle.destinations:
                continue
        left, _start = _free_left(session, bundle)
        still_free = max(session.free_units - session.used_units, 0)
        take = min(left, max(requested - still_free, 0))
        if take > 0:
            session.free_units += take
            session.bundle = bundle
            price.free = session.free_units
        return


def _release_free(session: ChargingSession) -> None:
    """At the end: the free units actually used go to the bundle counter; the rest back to the bundle."""
    if not session.bundle_id or not session.free_units:
        return
    bundle = session.bundle
    used = min(session.free_units, session.used_units)
    _left, start = _free_left(session, bundle)
    rating.use_free_units(subscription_id=session.subscription_id, bundle_id=bundle.pk, period_start=start,
                          units=used)
    session.free_units = used


def _reserve(session: ChargingSession, *, actor, requested: int, price: pricing.Pricing, locked, terms_tariff,
             rn: int, validity_s: int | None = None) -> Answer:
    """Reserve the next slice; the answer for the request (grant, final units).

    `validity_s`: how long the grant is valid when the caller knows better than the default
    (RADIUS: until the next Interim-Update is due)."""
    valid = int(validity_s or validity())
    measure = _measure(session.usage_type)
    if requested <= 0:
        requested = pricing.DEFAULT_QUOTA[measure]
    if terms_tariff is not None:
        _take_free(session, requested=requested, price=price, tariff_id=terms_tariff)
    budget = _budget(session.billing_account, locked)
    units, amount = pricing.grant(price, used=session.used_units, requested=requested, budget=budget,
                                  step=pricing.STEP[measure])
    answer = Answer(result_code=SUCCESS, session=str(session.pk), currency=session.currency,
                    validity_time=valid, total=_money(session.charged))
    if units == 0:
        answer.result_code = CREDIT_LIMIT_REACHED
        answer.final_unit = TERMINATE
        answer.message = "Credit limit reached: top up the account."
        answer.validity_time = 0
        session.final_unit = True
        return answer
    at = now()
    expires = at + dt.timedelta(seconds=valid) + GRACE
    hold = None
    if amount > 0:
        hold = ledger.create_hold(actor=actor, debit=session.billing_account, credit=_revenue(session),
                                  amount=amount, currency=session.currency, kind="charge",
                                  idempotency_key=f"charging:{session.pk}:{rn}:hold", expires_at=expires,
                                  tags=_tags(session), reference=session, memo=f"Online charging: {session}",
                                  enforce_limit=False)  # the floor (with promised payments) was checked above
    Reservation.objects.create(session=session, billing_account=session.billing_account, hold=hold, units=units,
                               free_units=max(min(session.free_units - session.used_units, units), 0),
                               amount=amount, currency=session.currency, created_at=at, expires_at=expires)
    answer.granted = units
    answer.reserved = _money(amount)
    if units < requested:
        session.final_unit = True
        answer.final_unit = REDIRECT if topup_url() else TERMINATE
        answer.redirect_url = topup_url()
        answer.message = "Final units: the balance covers no more."
    return answer


def _record(session, *, rtype, rn, requested=0, used=0, answer: Answer, charged=ZERO) -> Answer:
    ChargingRequest.objects.create(session=session, request_type=rtype, request_number=rn, requested_units=requested,
                                   used_units=used, granted_units=answer.granted, charged=charged,
                                   result_code=answer.result_code, answer=answer.as_dict(), created_at=now())
    return answer


def _replay(session: ChargingSession, rn: int) -> Answer | None:
    stored = session.requests.filter(request_number=rn).values_list("answer", flat=True).first()
    return Answer.stored(stored) if stored is not None else None


def _refusal(code: int, message: str, session=None) -> Answer:
    return Answer(result_code=code, session=str(session.pk) if session else None, message=message)


# --- the service functions --------------------------------------------------------------------------

def start(*, actor, identifier: str, identifier_kind: str = "e164", usage_type: str, external_id: str,
          origin: str = ChargingSession.Origin.HTTP, peer: str = "", destination: str = "", requested: int = 0,
          request_number: int = 0, started_at: dt.datetime | None = None, kind=ChargingSession.Kind.SESSION,
          validity_s: int | None = None) -> Answer:
    """Open a session and reserve its first slice (CCR-Initial). Idempotent by (origin, external id).

    Refusals are answers, not exceptions: 5030 user unknown, 4010 service denied, 5031
    rating failed, 4012 credit limit reached (the session is kept, state `refused`).
    """
    at = started_at or now()
    external_id = str(external_id or "").strip()
    if not external_id:
        raise ValidationFailed("A session id is required.", code="session_id_required",
                               fields={"external_id": ["Required."]})
    try:
        sub = find_subscription(identifier_kind, identifier, at)
        terms = _terms(sub, usage_type, at)
    except Refused as refused:
        return _refusal(refused.code, refused.message)
    with transaction.atomic():
        account = sub.billing_account
        locked = ledger.lock_accounts(account)[account.ledger_account_id]
        existing = ChargingSession.objects.filter(origin=origin, external_id=external_id).first()
        if existing is not None:
            return _replay(existing, request_number) or _refusal(
                INVALID_AVP_VALUE, f"Session {external_id} already started.", existing)
        session = ChargingSession(
            subscription=sub, billing_account=account, kind=kind, usage_type=usage_type, origin=origin,
            external_id=external_id, peer=peer, subject=identifier_value(identifier_kind, identifier),
            destination=clean_destination(destination), started_at=at, tenant=terms.tenant,
            category=terms.category, rating_subject=terms.rating_subject, rating_plan=terms.rating_plan,
            rounding_decimals=terms.rounding, currency=account.currency, last_request_number=request_number)
        session.save()
        price = _pricing(session)
        try:
            answer = _reserve(session, actor=actor, requested=requested, price=price, locked=locked,
                              terms_tariff=terms.tariff_id, rn=request_number, validity_s=validity_s)
        except engine.RatingError as exc:
            answer = _refusal(RATING_FAILED, f"{exc.code}: {exc.message}", session)
        if not answer.ok:
            session.state = ChargingSession.State.REFUSED
            session.ended_at = at
            session.termination_cause = RESULT_TEXT.get(answer.result_code, str(answer.result_code))
            session.free_units = 0
        session.save()
        return _record(session, rtype=ChargingRequest.Type.INITIAL, rn=request_number, requested=requested,
                       answer=answer)


def _locked_session(session_or_id) -> tuple[ChargingSession, object]:
    pk = session_or_id.pk if isinstance(session_or_id, ChargingSession) else session_or_id
    account_id = ChargingSession.objects.filter(pk=pk).values_list("billing_account_id", flat=True).first()
    if account_id is None:
        raise NotFound("No such charging session.", code="session_not_found")
    account = BillingAccount.objects.get(pk=account_id)
    locked = ledger.lock_accounts(account)[account.ledger_account_id]
    session = (ChargingSession.objects.select_for_update(of=("self",))
               .select_related("subscription__service__service_type", "billing_account").get(pk=pk))
    return session, locked


def find_session(origin: str, external_id: str) -> ChargingSession | None:
    return ChargingSession.objects.filter(origin=origin, external_id=external_id).first()


@transaction.atomic
def update(session, *, actor, used: int, requested: int = 0, request_number: int | None = None,
           validity_s: int | None = None) -> Answer:
    """Debit what was used (total reported this slice) and reserve the next slice (CCR-Update).

    `used` is the usage of the slice just ended (as Diameter's Used-Service-Unit). A request
    number seen before is answered from the stored answer (charged once).
    """
    session, locked = _locked_session(session)
    rn = session.last_request_number + 1 if request_number is None else request_number
    replay = _replay(session, rn)
    if replay is not None:
        return replay
    if session.state != ChargingSession.State.OPEN:
        return _record_late(session, rn=rn, used=used, rtype=ChargingRequest.Type.UPDATE)
    if used < 0 or requested < 0:
        raise ValidationFailed("Units are zero or more.", code="invalid_units")
    price = _pricing(session)
    session.last_request_number = max(rn, session.last_request_number)
    try:
        charged = _settle(session, actor=actor, used=session.used_units + used, price=price)
        terms_tariff = subscriptions.tariff_on(session.subscription, session.started_at.astimezone(
            ZoneInfo(settings.TIME_ZONE)).date())
        locked = ledger.lock_accounts(session.billing_account)[session.billing_account.ledger_account_id]
        answer = _reserve(session, actor=actor, requested=requested, price=price, locked=locked,
                          terms_tariff=terms_tariff.pk if terms_tariff else None, rn=rn, validity_s=validity_s)
    except engine.RatingError as exc:
        return _record(session, rtype=ChargingRequest.Type.UPDATE, rn=rn, used=used,
                       answer=_refusal(RATING_FAILED, f"{exc.code}: {exc.message}", session))
    answer.charged = _money(charged)
    answer.total = _money(session.charged)
    session.save()
    return _record(session, rtype=ChargingRequest.Type.UPDATE, rn=rn, requested=requested, used=used, answer=answer,
                   charged=charged)


def _record_late(session, *, rn, used, rtype) -> Answer:
    """A request for a session already ended: nothing more is charged (5002 unknown session)."""
    answer = _refusal(UNKNOWN_SESSION_ID, f"The session is {session.state}.", session)
    answer.total = _money(session.charged)
    return _record(session, rtype=rtype, rn=rn, used=used, answer=answer)


@transaction.atomic
def terminate(session, *, actor, used: int = 0, request_number: int | None = None, cause: str = "") -> Answer:
    """Debit the last slice's usage, release the rest, close the session (CCR-Termination)."""
    session, locked = _locked_session(session)
    rn = session.last_request_number + 1 if request_number is None else request_number
    replay = _replay(session, rn)
    if replay is not None:
        return replay
    if session.state != ChargingSession.State.OPEN:
        return _record_late(session, rn=rn, used=used, rtype=ChargingRequest.Type.TERMINATE)
    if used < 0:
        raise ValidationFailed("Units are zero or more.", code="invalid_units")
    session.last_request_number = max(rn, session.last_request_number)
    price = _pricing(session)
    try:
        charged = _settle(session, actor=actor, used=session.used_units + used, price=price)
    except engine.RatingError as exc:
        return _record(session, rtype=ChargingRequest.Type.TERMINATE, rn=rn, used=used,
                       answer=_refusal(RATING_FAILED, f"{exc.code}: {exc.message}", session))
    _release_free(session)
    session.state = ChargingSession.State.CLOSED
    session.ended_at = now()
    session.termination_cause = cause or "terminated"
    session.save()
    answer = Answer(result_code=SUCCESS, session=str(session.pk), currency=session.currency, charged=_money(charged),
                    total=_money(session.charged))
    return _record(session, rtype=ChargingRequest.Type.TERMINATE, rn=rn, used=used, answer=answer, charged=charged)


def event(*, actor, identifier: str, identifier_kind: str = "e164", usage_type: str, external_id: str,
          origin: str = ChargingSession.Origin.HTTP, peer: str = "", destination: str = "", units: int = 1,
          at: dt.datetime | None = None) -> Answer:
    """Charge a one-shot event (SMS, VOD purchase) of `units` at once (CCR-Event, direct debiting).

    All or nothing: when the balance does not cover it, 4012 and nothing is charged.
    """
    answer = start(actor=actor, identifier=identifier, identifier_kind=identifier_kind, usage_type=usage_type,
                   external_id=external_id, origin=origin, peer=peer, destination=destination, requested=units,
                   started_at=at, kind=ChargingSession.Kind.EVENT)
    if answer.replayed or not answer.ok or answer.session is None:
        return answer
    session = ChargingSession.objects.get(pk=answer.session)
    if answer.granted < units:
        # Not all of it fits: an event is not delivered in part.
        with transaction.atomic():
            session, _locked = _locked_session(session)
            _settle(session, actor=actor, used=0, price=_pricing(session))
            _release_free(session)
            session.state = ChargingSession.State.REFUSED
            session.ended_at = now()
            session.termination_cause = RESULT_TEXT[CREDIT_LIMIT_REACHED]
            session.save()
            stored = session.requests.get(request_number=0)
            refused = _refusal(CREDIT_LIMIT_REACHED, "Credit limit reached: top up the account.", session)
            refused.final_unit = TERMINATE
            stored.answer, stored.result_code, stored.granted_units = refused.as_dict(), refused.result_code, 0
            stored.save(update_fields=["answer", "result_code", "granted_units"])
            return refused
    done = terminate(session, actor=actor, used=units, request_number=1, cause="event")
    done.granted = units
    with transaction.atomic():
        ChargingRequest.objects.filter(session=session, request_number=0).update(answer=done.as_dict())
    return done


def expire_sessions(*, as_of: dt.datetime | None = None, actor="system:charging") -> int:
    """Close the silent sessions: their reservation's validity is over; settle at what was reported.

    The ledger expires the holds (`expire_holds`, exactly once); each session is then
    closed at the usage it reported (already debited), state `expired`. Returns how many.
    """
    as_of = as_of or now()
    ledger.expire_holds(as_of=as_of)
    done = 0
    for pk in (Reservation.objects.filter(state=Reservation.State.OPEN, expires_at__lte=as_of)
               .values_list("session_id", flat=True)):
        with transaction.atomic():
            session, _locked = _locked_session(pk)
            res = session.reservations.filter(state=Reservation.State.OPEN).first()
            if session.state != ChargingSession.State.OPEN or res is None or res.expires_at > as_of:
                continue
            _settle(session, actor=actor, used=session.used_units, price=_pricing(session), expired=True)
            _release_free(session)
            session.state = ChargingSession.State.EXPIRED
            session.ended_at = as_of
            session.termination_cause = "validity time over"
            session.save()
            done += 1
    return done


def open_sessions_of(account: BillingAccount):
    return ChargingSession.objects.filter(billing_account=account, state=ChargingSession.State.OPEN)


def _close_at_reported(session: ChargingSession, *, actor, cause: str) -> Decimal:
    """Close an open (locked) session at the usage it reported: debit what is due, release the rest
    of its reservation, put its used free units on the bundle counter. Audited. Returns the debit."""
    reserved_before = session.reservations.filter(state=Reservation.State.OPEN).values_list("amount", flat=True)
    held = sum(reserved_before, ZERO)
    charged = _settle(session, actor=actor, used=session.used_units, price=_pricing(session))
    _release_free(session)
    session.state = ChargingSession.State.CLOSED
    session.ended_at = now()
    session.termination_cause = cause
    session.save()
    recorded.record(session, actor=actor, action="settle", message=cause, changes={
        "state": ["open", "closed"], "charged": [None, _money(session.charged)], "released": [_money(held), None]})
    return charged


def settle_open_sessions(account: BillingAccount, *, actor, cause: str = "payment mode switch") -> int:
    """Close every open session of an account at what it reported (a switch of payment mode).

    Each session is debited what it reported and not yet paid; the rest of its reservation (the
    ledger hold) is released. Runs in the caller's transaction when there is one (the switch
    of payment mode settles in its own). Returns how many sessions were settled.
    """
    done = 0
    for pk in open_sessions_of(account).order_by("started_at", "id").values_list("pk", flat=True):
        with transaction.atomic():
            session, _locked = _locked_session(pk)
            if session.state != ChargingSession.State.OPEN:
                continue
            _close_at_reported(session, actor=actor, cause=cause)
            done += 1
    return done


def settle_on_switch(account: BillingAccount, *, actor, from_mode: str, to_mode: str) -> dict:
    """The payment-mode switch's hook (`ledger.services.on_payment_mode_switch`): settle the open
    sessions in the switch's transaction and say how many."""
    n = settle_open_sessions(account, actor=actor, cause=f"payment mode switch ({from_mode} → {to_mode})")
    if n:
        note = ngettext("%(n)s open online charging session was settled at what it reported; its reservation "
                        "was released.",
                        "%(n)s open online charging sessions were settled at what they reported; their reservations "
                        "were released.", n) % {"n": n}
    else:
        note = gettext("No open online charging session: nothing to settle.")
    return {"settled_sessions": n, "notes": [note]}


# --- semi-online billing: CDRs of calls charged online ---------------------------------------------------

def match_tolerance() -> int:
    """Seconds a CDR's start may differ from its online session's start (TARIFA_SEMI_ONLINE_TOLERANCE)."""
    return int(getattr(settings, "TARIFA_SEMI_ONLINE_TOLERANCE", 5))


# The destination as sessions keep it (`clean_destination`), in SQL.
_CLEAN_DESTINATION_SQL = ("ltrim(split_part(split_part(regexp_replace(btrim(r.destination), '^(tel|sips?):', '', 'i'),"
                          " '@', 1), ';', 1), '+')")


class SemiOnline:
    """The online charger rating's usage pipeline consults (`rating.usage.register_online_charging`).

    `claim`: resolved CDRs whose call has an online session (same subscription, usage type and
    destination, start within the tolerance; not refused, not matched before) are claimed —
    rating then neither charges them nor puts them on an invoice. Each session is claimed by one
    record at most (the nearest start), each record claims one session at most.
    `reconcile`: for each claimed record that rated, book rated cost − charged online as a
    correction and record the match (`CallMatch`).
    """

    def claim(self, cursor, *, resolved: str, claims: str) -> None:
        cursor.execute(f"""
            INSERT INTO {claims} (n, session_id, free_units, bundle_id)
            SELECT n, session_id, free_units, bundle_id FROM (
              SELECT DISTINCT ON (session_id) n, session_id, free_units, bundle_id FROM (
                SELECT DISTINCT ON (r.n) r.n, s.id AS session_id, least(s.free_units, s.used_units) AS free_units,
                       s.bundle_id, abs(extract(epoch FROM s.started_at - r.start_time)) AS gap
                FROM {resolved} r
                JOIN charging_chargingsession s ON s.subscription_id = r.subscription_id
                     AND s.kind = 'session' AND s.state <> 'refused' AND s.usage_type = r.usage_type
                     AND s.destination = {_CLEAN_DESTINATION_SQL}
                     AND s.started_at >= r.start_time - make_interval(secs => %(tolerance)s)
                     AND s.started_at <= r.start_time + make_interval(secs => %(tolerance)s)
                WHERE r.reason = '' AND NOT EXISTS (SELECT 1 FROM charging_callmatch m WHERE m.session_id = s.id)
                  -- only the sessions of the batch's time span (an index range, however many sessions exist)
                  AND s.started_at >= (SELECT min(start_time) FROM {resolved}) - make_interval(secs => %(tolerance)s)
                  AND s.started_at <= (SELECT max(start_time) FROM {resolved}) + make_interval(secs => %(tolerance)s)
                ORDER BY r.n, gap, s.started_at, s.id) best
              ORDER BY session_id, gap, n) one
            ON CONFLICT DO NOTHING""", {"tolerance": match_tolerance()})

    def reconcile(self, matches: list[dict], *, actor, batch=None) -> None:
        for m in matches:
            reconcile_call(actor=actor, session_id=m["session"], usage_record_id=m["usage_record"], cost=m["cost"],
                           usage=m["usage"], source=m["source"], record_id=m["record_id"], batch=batch)


SEMI_ONLINE = SemiOnline()


def reconcile_call(*, actor, session_id, usage_record_id, cost, usage: int, source: str = "", record_id: str = "",
                   batch=None) -> CallMatch:
    """Match a rated CDR to the online session of its call and book the difference (idempotent).

    The session still open is closed first at what it reported (the CDR says the call ended).
    The correction (rated cost − charged online, exact to 6 places) is a transfer with the key
    `semionline:<session>`, referencing the match and tagged with the usage record and the
    session: a charge when the CDR costs more, a refund (adjustment) when less, none when equal.
    """
    with transaction.atomic():
        session, _locked = _locked_session(session_id)
        found = CallMatch.objects.filter(session=session).first()
        if found is not None:
            return found
        was_open = session.state == ChargingSession.State.OPEN
        if was_open:
            _close_at_reported(session, actor=actor, cause="CDR received (semi-online)")
        offline = Decimal(cost).quantize(SIX)
        difference = offline - session.charged
        match = CallMatch.objects.create(
            session=session, usage_record_id=usage_record_id, billing_account=session.billing_account,
            batch=batch,
            source=str(source or "")[:64], record_id=str(record_id or "")[:128], online_units=session.used_units,
            offline_units=int(usage or 0), online_cost=session.charged, offline_cost=offline, difference=difference,
            currency=session.currency, session_was_open=was_open, matched_at=now())
        if difference:
            tags = {**_tags(session), "semi_online": True, "usage_record": str(usage_record_id),
                    "charging_session": str(session.pk)}
            memo = f"Semi-online correction: CDR {source}/{record_id} of {session}"
            key = f"semionline:{session.pk}"
            if difference > 0:
                transfer = ledger.post_transfer(
                    actor=actor, debit=session.billing_account, credit=_revenue(session), amount=difference,
                    currency=session.currency, kind="charge", idempotency_key=key, tags=tags, reference=match,
                    memo=memo, enforce_limit=False)
            else:
                transfer = ledger.post_transfer(
                    actor=actor, debit=_revenue(session), credit=session.billing_account, amount=-difference,
                    currency=session.currency, kind="adjustment", idempotency_key=key, tags=tags, reference=match,
                    memo=memo, enforce_limit=False)
            match.correction = transfer
            match.save(update_fields=["correction"])
        session.matched_usage = str(usage_record_id)
        session.save(update_fields=["matched_usage"])
        recorded.record(match, actor=actor, action="create", message="semi-online match", changes={
            "session": [None, str(session.pk)], "usage_record": [None, str(usage_record_id)],
            "online_cost": [None, _money(match.online_cost)], "offline_cost": [None, _money(offline)],
            "difference": [None, _money(difference)]})
        return match


# --- the small API the AAA server (RADIUS prepaid) uses ---------------------------------------------------

def reserve(*, actor, identifier, identifier_kind="login", usage_type, session_id, requested=0, destination="",
            validity_s: int | None = None):
    """RADIUS Access-Request/Start: open a session and reserve quota (see `start`)."""
    return start(actor=actor, identifier=identifier, identifier_kind=identifier_kind, usage_type=usage_type,
                 external_id=session_id, origin=ChargingSession.Origin.RADIUS, destination=destination,
                 requested=requested, validity_s=validity_s)


def rated_usage_type(*, subscription: Subscription, usage_types, at: dt.datetime | None = None) -> str | None:
    """The first of `usage_types` (time or bytes measured) that `subscription`'s tariff prices online now.

    Decided with the terms and pricing a session would get (`_terms`, `_pricing`): an active
    subscription, its tariff of the day with a rating, and a rate for one step of the usage type
    in the rating plan (a flat-rate tariff has no rating: None, nothing to reserve).
    """
    at = at or now()
    for code in usage_types:
        measure = _measure(code)
        if measure not in ("time", "bytes"):
            continue
        try:
            terms = _terms(subscription, code, at)
        except Refused:
            return None
        probe = ChargingSession(subscription=subscription, usage_type=code, started_at=at, tenant=terms.tenant,
                                category=terms.category, rating_subject=terms.rating_subject,
                                subject=subscription.login, rating_plan=terms.rating_plan,
                                rounding_decimals=terms.rounding)
        try:
            _pricing(probe).rate(pricing.STEP[measure])
        except engine.RatingError:
            continue
        return code
    return None


@transaction.atomic
def bind_session(session, *, external_id: str) -> ChargingSession:
    """RADIUS: a session opened at Access-Request without an Acct-Session-Id takes the accounting
    session's id when its Accounting-Start (or first record) arrives."""
    session, _locked = _locked_session(session)
    external_id = str(external_id or "").strip()
    if not external_id:
        raise ValidationFailed("A session id is required.", code="session_id_required")
    if ChargingSession.objects.filter(origin=session.origin, external_id=external_id).exclude(pk=session.pk).exists():
        raise ValidationFailed(f"Session {external_id} exists.", code="session_exists")
    session.external_id = external_id
    session.save(update_fields=["external_id"])
    return session


# --- Diameter peers ----------------------------------------------------------------------------------------

def _peer_fields(fields: dict) -> dict:
    for name in ("origin_host", "realm"):
        if name in fields:
            fields[name] = str(fields[name] or "").strip().lower()
    return fields


def create_peer(*, actor, origin_host, realm, ip_address, note="") -> DiameterPeer:
    """Allow a network element to connect (it is refused at CER otherwise)."""
    return recorded.create(DiameterPeer, actor=actor, **_peer_fields(
        {"origin_host": origin_host, "realm": realm, "ip_address": ip_address, "note": note}))


def update_peer(peer: DiameterPeer, *, actor, **changes) -> DiameterPeer:
    return recorded.update(peer, actor=actor, **_peer_fields(changes))


def archive_peer(peer: DiameterPeer, *, actor, reason="") -> DiameterPeer:
    return recorded.archive(peer, actor=actor, reason=reason)


def set_peer_state(origin_host: str, state: str) -> None:
    """The Diameter server says a peer connected or went away."""
    DiameterPeer.objects.filter(origin_host=origin_host.lower()).update(state=state, state_changed_at=now())


# --- Rating groups (Diameter MSCC → usage type) -------------------------------------------------------------

def _rating_group_fields(fields: dict, *, exclude=None) -> dict:
    from tarifa.rating.models import UsageType

    from .models import RatingGroup

    if "kind" in fields and fields["kind"] not in RatingGroup.Kind.values:
        raise ValidationFailed("Choose Rating-Group or Service-Identifier.", code="invalid_kind",
                               fields={"kind": [f"One of {', '.join(RatingGroup.Kind.values)}."]})
    if "number" in fields:
        try:
            number = int(fields["number"])
        except (TypeError, ValueError):
            number = -1
        if not 0 <= number < 2**32:
            raise ValidationFailed("The number is an Unsigned32 (0 to 4294967295).", code="invalid_number",
                                   fields={"number": ["0 to 4294967295."]})
        fields["number"] = number
    if "usage_type" in fields:
        value = fields["usage_type"]
        code = value.code if isinstance(value, UsageType) else str(value or "").strip()
        usage_type = UsageType.objects.filter(code=code, archived_at__isnull=True).first()
        if usage_type is None:
            raise ValidationFailed(f"No usage type {code or '(none)'}.", code="unknown_usage_type",
                                   fields={"usage_type": ["Not a usage type in use."]})
        fields["usage_type"] = usage_type
    if "note" in fields:
        fields["note"] = str(fields["note"] or "").strip()
    return fields


def _rating_group_unique(kind, number, *, exclude=None) -> None:
    from tarifa.kernel.errors import DomainError

    from .models import RatingGroup

    clash = RatingGroup.objects.filter(kind=kind, number=number, archived_at__isnull=True)
    if exclude is not None:
        clash = clash.exclude(pk=exclude.pk)
    if clash.exists():
        label = dict(RatingGroup.Kind.choices)[kind]
        raise DomainError(f"{label} {number} is mapped already.", code="rating_group_exists", status=409,
                          fields={"number": ["Mapped already."]})


def _rating_groups_changed() -> None:
    from . import selectors

    transaction.on_commit(selectors.forget_rating_groups)


@transaction.atomic
def create_rating_group(*, actor, number, usage_type, kind="rating_group", note=""):
    """Map a Diameter Rating-Group (or Service-Identifier) to the usage type its units are charged as."""
    from .models import RatingGroup

    fields = _rating_group_fields({"kind": kind, "number": number, "usage_type": usage_type, "note": note})
    _rating_group_unique(fields["kind"], fields["number"])
    group = recorded.create(RatingGroup, actor=actor, **fields)
    _rating_groups_changed()
    return group


@transaction.atomic
def update_rating_group(group, *, actor, **changes):
    fields = _rating_group_fields(dict(changes))
    _rating_group_unique(fields.get("kind", group.kind), fields.get("number", group.number), exclude=group)
    group = recorded.update(group, actor=actor, **fields)
    _rating_groups_changed()
    return group


@transaction.atomic
def archive_rating_group(group, *, actor, reason=""):
    """The mapping no longer applies (kept with its history); its number may be mapped anew."""
    group = recorded.archive(group, actor=actor, reason=reason)
    _rating_groups_changed()
    return group
