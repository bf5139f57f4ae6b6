"""Keeping the network in step with billing: CoA/Disconnect for open sessions, reconciliation.

One rule decides what a session of a subscription may have (`desired`):
- active → online with its profile's speed ("normal"); but active and over its profile's monthly
  traffic cap this calendar month (`selectors.capped_subscriptions`) → online with the capped speed
  ("capped") when the profile throttles, not online when it disconnects;
- suspended, and its profile says "pay first" → online with the pay-first speed;
- anything else (suspended with "reject", terminated, pending, no subscription) → not online.

What a session has now (`granted`) is what the last acknowledged CoA-Request set, else what it
was given when it started (the subscription's status and tariff at that moment). Where the two
differ the session is acted on (`plan`): a Disconnect-Request when it must go, or when it moves
between the normal and the pay-first profile and their address pools differ (the subscriber
reconnects and gets an address of the right pool); otherwise a CoA-Request with the new speed.

Subscription events (`handlers.py`), the periodic reconciliation and the cap enforcement
(`enforce_caps`, every minute) all come here, so the rule is in one place. Packets go out after the reads and before the log is written, never inside
a transaction; every transmission is logged (`CoaAttempt`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from tarifa.audit import services as recorded
from tarifa.audit.services import actor_label
from tarifa.kernel.clock import now
from tarifa.subscriptions.models import StatusChange, Subscription, TariffPeriod

from . import coa, selectors
from .coa_models import CoaAttempt, ReconciliationRun
from .models import Profile, Session
from .protocol import rate_attributes

Reason = CoaAttempt.Reason
NORMAL, PAY_FIRST, CAPPED = "normal", "pay_first", "capped"
NONE = "none"
MODE_WORDS = {NORMAL: "normal", PAY_FIRST: "pay-first", CAPPED: "capped", NONE: "no access"}
# A session acknowledged as disconnected this recently is not disconnected again (its Stop is on
# its way).
DISCONNECT_GRACE = dt.timedelta(seconds=60)


def coa_timeout() -> float:
    return float(settings.TARIFA_AAA_COA_TIMEOUT)


def coa_attempts() -> int:
    return int(settings.TARIFA_AAA_COA_ATTEMPTS)


@dataclass(frozen=True)
class Access:
    """What a session may have: `mode` normal / pay_first / capped / none, and the speed in kbit/s."""

    mode: str
    down: int = 0
    up: int = 0
    pool: str = ""

    @property
    def key(self) -> str:
        return NONE if self.mode == NONE else f"{self.mode}:{self.down}/{self.up}"

    @classmethod
    def from_key(cls, key: str) -> Access:
        if not key or key == NONE:
            return cls(NONE)
        mode, _, speed = key.partition(":")
        down, _, up = speed.partition("/")
        return cls(mode, int(down or 0), int(up or 0))


def _profiles() -> tuple[dict, Profile | None]:
    by_tariff, default = {}, None
    for p in Profile.objects.all():
        if p.tariff_id is None:
            default = default or p
        else:
            by_tariff[p.tariff_id] = p
    return by_tariff, default


class Profiles:
    """The access profiles, read once for many sessions, and the subscriptions over their monthly
    traffic cap, found once (on first use) for a run."""

    def __init__(self):
        self.by_tariff, self.default = _profiles()
        self._capped: set | None = None

    @property
    def capped(self) -> set:
        if self._capped is None:
            self._capped = selectors.capped_subscriptions()
        return self._capped

    def of(self, tariff_id) -> Profile | None:
        return self.by_tariff.get(tariff_id, self.default)

    def access(self, status: str | None, tariff_id, subscription_id=None) -> Access:
        """The one rule (see the module); `subscription_id`: whose cap to look at (None: no cap)."""
        profile = self.of(tariff_id)
        if status == Subscription.Status.ACTIVE:
            if profile is None:
                return Access(NORMAL)
            if profile.monthly_cap_mb and subscription_id is not None and subscription_id in self.capped:
                if profile.when_capped == Profile.WhenCapped.DISCONNECT:
                    return Access(NONE)
                return Access(CAPPED, profile.capped_rate_down_kbps or 0, profile.capped_rate_up_kbps or 0,
                              profile.ip_pool)
            return Access(NORMAL, profile.rate_down_kbps or 0, profile.rate_up_kbps or 0, profile.ip_pool)
        if status == Subscription.Status.SUSPENDED and profile is not None \
                and profile.when_suspended == Profile.WhenSuspended.PAY_FIRST:
            return Access(PAY_FIRST, profile.pay_first_rate_down_kbps or 0, profile.pay_first_rate_up_kbps or 0,
                          profile.pay_first_pool)
        return Access(NONE)


def desired(session: Session, profiles: Profiles) -> Access:
    sub = session.subscription
    return profiles.access(sub.status if sub else None, sub.tariff_id if sub else None, sub.pk if sub else None)


def _granted_at_start(session: Session, profiles: Profiles) -> Access:
    """What the session got when it started: the subscription's status and tariff at that moment."""
    sub = session.subscription
    if sub is None:
        return Access(NORMAL)
    changes = StatusChange.objects.filter(subscription=sub)
    status = (changes.filter(at__lte=session.started_at).order_by("-at").values_list("to_status", flat=True).first()
              or changes.filter(at__gt=session.started_at).exclude(from_status="").order_by("at")
              .values_list("from_status", flat=True)
              .first() or sub.status)
    day = session.started_at.date()
    period = (TariffPeriod.objects.filter(subscription=sub, valid_from__lte=day).order_by("-valid_from")
              .values_list("tariff_id", flat=True).first())
    access = profiles.access(status, period or sub.tariff_id)
    # A session exists, so it was let in: at least with the normal profile.
    return access if access.mode != NONE else profiles.access(Subscription.Status.ACTIVE, period or sub.tariff_id)


def _last_granted(session: Session) -> str:
    return (CoaAttempt.objects.filter(session_id=session.pk, kind=CoaAttempt.Kind.COA,
                                      outcome=CoaAttempt.Outcome.ACK).exclude(granted="")
            .order_by("-at").values_list("granted", flat=True).first()) or ""


def granted(session: Session, profiles: Profiles) -> Access:
    """What the session has now: the last acknowledged CoA's access, else what it got at start."""
    last = _last_granted(session)
    return Access.from_key(last) if last else _granted_at_start(session, profiles)


def _recently_disconnected(session: Session) -> bool:
    return CoaAttempt.objects.filter(session_id=session.pk, kind=CoaAttempt.Kind.DISCONNECT,
                                     outcome=CoaAttempt.Outcome.ACK, at__gte=now() - DISCONNECT_GRACE).exists()


@dataclass
class Action:
    session: Session
    kind: str           # coa.DISCONNECT / coa.COA
    problem: str        # in words, for the operator
    attributes: list
    grants: str = ""    # the access a CoA sets (Access.key)


def _identity(session: Session) -> list[tuple[str, object]]:
    return list(coa.session_identity(nas_ip=session.nas.ip_address, user_name=session.login,
                                     acct_session_id=session.acct_session_id,
                                     framed_ip=session.framed_ip or "").items())


def disconnect_action(session: Session, problem: str) -> Action:
    return Action(session, coa.DISCONNECT, problem, _identity(session))


def plan(session: Session, profiles: Profiles, *, event: bool = False) -> Action | None:
    """What to do about `session` (None: it is as it should be).

    `event`: a subscription event says something changed just now. Tariffs are known by the day,
    so a change on the day the session started cannot be told from the session's start: after an
    event the new speed is sent unless an acknowledged CoA already set exactly it."""
    want = desired(session, profiles)
    sub = session.subscription
    if want.mode == NONE:
        if _recently_disconnected(session):
            return None
        if sub and sub.status == Subscription.Status.ACTIVE:
            why = f"subscription {sub.number} reached its monthly traffic cap"
        else:
            why = (f"subscription {sub.number} is {sub.get_status_display().lower()}" if sub
                   else f"no subscription has the login {session.login!r}")
        return disconnect_action(session, why)
    have = granted(session, profiles)
    if have.mode != want.mode:
        profile = profiles.of(sub.tariff_id)
        if profile and _pool(profile, have.mode) != _pool(profile, want.mode):
            return disconnect_action(session, f"moves from the {MODE_WORDS[have.mode]} to the "
                                              f"{MODE_WORDS[want.mode]} profile (another address pool)")
    if have.key == want.key and (not event or _last_granted(session) == want.key
                                 or (have.mode == NORMAL and want.down == want.up == 0)):
        return None
    attributes = _identity(session) + rate_attributes(session.nas.type, want.down, want.up)
    return Action(session, coa.COA, f"speed {_speed(have)} should be {_speed(want)}", attributes, want.key)


def _pool(profile: Profile, mode: str) -> str:
    return profile.pay_first_pool if mode == PAY_FIRST else profile.ip_pool


def _speed(access: Access) -> str:
    return f"{MODE_WORDS[access.mode]} {access.down}/{access.up} kbit/s (down/up)"


def _send(actions: list[Action]) -> list[coa.Result]:
    requests = [dict(kind=a.kind, host=a.session.nas.ip_address, port=a.session.nas.coa_port,
                     secret=a.session.nas.secret, attributes=a.attributes, timeout=coa_timeout(),
                     attempts=coa_attempts()) for a in actions]
    return coa.send_many_sync(requests)


def _log(actions: list[Action], results: list[coa.Result], *, reason: str, actor) -> list[list[CoaAttempt]]:
    label = actor_label(actor)[:150]
    out = []
    with transaction.atomic():
        for action, result in zip(actions, results, strict=True):
            request_id = uuid.uuid4()
            s = action.session
            rows = [CoaAttempt(request_id=request_id, at=a.at, kind=action.kind, reason=reason, nas=s.nas,
                               session_id=s.pk, acct_session_id=s.acct_session_id, login=s.login,
                               subscription_id=s.subscription_id, attributes=result.attributes,
                               granted=action.grants, attempt=a.number, outcome=a.outcome,
                               error_cause=a.error_cause, detail=a.detail[:300],
                               elapsed_ms=int(a.elapsed_ms), actor=label)
                    for a in result.attempts]
            out.append(CoaAttempt.objects.bulk_create(rows))
    return out


def execute(actions: list[Action], *, reason: str, actor) -> list[coa.Result]:
    """Send every action's request (concurrently) and log each transmission."""
    if not actions:
        return []
    results = _send(actions)
    _log(actions, results, reason=reason, actor=actor)
    return results


def _open_sessions():
    return Session.objects.select_related("nas", "subscription")


def bring_in_step(subscription_id, *, reason: str, actor="system") -> list[coa.Result]:
    """Act on every open session of the subscription whose access differs from what it may have
    (after a suspension, resumption, termination or tariff change). Idempotent: a session already
    in step is left alone."""
    profiles = Profiles()
    actions = [a for s in _open_sessions().filter(subscription_id=subscription_id)
               if (a := plan(s, profiles, event=True)) is not None]
    return execute(actions, reason=reason, actor=actor)


def disconnect_session(session: Session, *, actor, reason: str = Reason.OPERATOR) -> coa.Result:
    """Send a Disconnect-Request for one open session (the operator's button); the session stays
    open until the NAS's Accounting Stop closes it."""
    session = _open_sessions().get(pk=session.pk)
    (result,) = execute([disconnect_action(session, "disconnected by the operator")], reason=reason, actor=actor)
    last = result.attempts[-1] if result.attempts else None
    outcome = dict(CoaAttempt.Outcome.choices)[result.outcome]
    recorded.record(session, actor=actor, action="disconnect",
                    message=f"Disconnect-Request to {session.nas.name}: {outcome}"
                            + (f" ({last.error_cause_text})" if last and last.error_cause else ""))
    return result


def disconnect_exhausted(nas_id, acct_session_id: str, *, actor="system") -> int:
    """Disconnect a prepaid session whose balance is exhausted (aaa.prepaid); nothing when it has
    ended meanwhile or was disconnected a moment ago."""
    session = _open_sessions().filter(nas_id=nas_id, acct_session_id=acct_session_id).first()
    if session is None or _recently_disconnected(session):
        return 0
    execute([disconnect_action(session, "prepaid balance exhausted")], reason=Reason.BALANCE, actor=actor)
    return 1


def reconcile(*, actor="system", trigger: str = "") -> ReconciliationRun:
    """Compare every open session with its subscription's state and act on each difference: the
    run records what was checked, found and done (and how each request ended)."""
    run = ReconciliationRun.objects.create(trigger=trigger or actor_label(actor)[:150])
    profiles = Profiles()
    sessions = list(_open_sessions())
    actions = [a for s in sessions if (a := plan(s, profiles)) is not None]
    results = execute(actions, reason=Reason.RECONCILIATION, actor=actor)
    findings = []
    for action, result in zip(actions, results, strict=True):
        s = action.session
        last = result.attempts[-1] if result.attempts else None
        findings.append({
            "login": s.login, "nas": s.nas.name, "acct_session_id": s.acct_session_id,
            "subscription": s.subscription.number if s.subscription else "",
            "problem": action.problem, "action": str(dict(CoaAttempt.Kind.choices)[action.kind]),
            "outcome": str(dict(CoaAttempt.Outcome.choices)[result.outcome]),
            "error_cause": last.error_cause_text if last else "", "attempts": len(result.attempts),
        })
    run.checked = len(sessions)
    run.differences = len(actions)
    run.disconnected = sum(1 for a, r in zip(actions, results, strict=True) if a.kind == coa.DISCONNECT and r.ok)
    run.changed = sum(1 for a, r in zip(actions, results, strict=True) if a.kind == coa.COA and r.ok)
    run.failed = sum(1 for r in results if not r.ok)
    run.findings = findings
    run.finished_at = now()
    run.save()
    return run


def enforce_caps(*, actor="system") -> dict:
    """Bring in step the open sessions of active subscriptions over their monthly traffic cap that
    do not have the capped access yet (the capped speed, or a disconnect), logged with the reason
    "cap". When some had not, the RADIUS server is asked to reload its snapshot (NOTIFY), so their
    next Access-Requests get the capped answer too. Reconciliation gives the normal speed back when
    the month turns (the capped set is empty again)."""
    profiles = Profiles()
    capped = profiles.capped
    actions = []
    if capped:
        sessions = _open_sessions().filter(subscription_id__in=capped,
                                           subscription__status=Subscription.Status.ACTIVE)
        actions = [a for s in sessions if (a := plan(s, profiles)) is not None]
    results = execute(actions, reason=Reason.CAP, actor=actor)
    if actions:
        selectors.notify_change("cap")
    return {"capped": len(capped), "sessions": len(actions),
            "disconnected": sum(1 for a, r in zip(actions, results, strict=True) if a.kind == coa.DISCONNECT and r.ok),
            "changed": sum(1 for a, r in zip(actions, results, strict=True) if a.kind == coa.COA and r.ok),
            "failed": sum(1 for r in results if not r.ok)}


def run_summary(run: ReconciliationRun) -> dict:
    return {"run": str(run.pk), "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "checked": run.checked, "differences": run.differences, "disconnected": run.disconnected,
            "changed": run.changed, "failed": run.failed, "findings": run.findings}
