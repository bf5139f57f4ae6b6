"""RADIUS prepaid: sessions of prepaid subscribers on a rated tariff are charged online (charging).

Who: a subscriber whose billing account is prepaid and whose tariff has a rating (the server's
snapshot marks them, `selectors.Subscriber.prepaid`, so nobody else costs a database round trip
on the Access-Request) — and whose tariff's rating prices one of TARIFA_AAA_PREPAID_USAGE_TYPES
(`charging.services.rated_usage_type`: the same terms and pricing as any credit-control session).
Flat-rate (daily-fee) subscriptions, postpaid accounts and pay-first (suspended) logins are answered
as before, from memory, with nothing reserved.

- **Access-Request**: a charging session is opened (origin "radius", id "<NAS address>/<Acct-Session-Id>",
  or "<NAS address>/auth:<login>:<token>" when the NAS sends no Acct-Session-Id in its
  Access-Request, renamed at its first accounting record) and a quota is reserved as a ledger hold:
  TARIFA_AAA_PREPAID_TIME seconds or TARIFA_AAA_PREPAID_BYTES bytes, or what the balance covers
  when less. The Access-Accept carries the grant: Session-Timeout for time; for data on MikroTik
  Mikrotik-Total-Limit + Mikrotik-Total-Limit-Gigawords (other NAS types have no volume attribute
  Tarifa sends: their data quota is watched at each Interim-Update). Nothing can be reserved:
  Access-Reject, "balance exhausted" in the authentication log.
- **Interim-Update**: the usage since the last report (cumulative counters − what was charged) is
  debited and the next slice reserved (`charging.update`): what the NAS still allows of its grant
  when it enforces it (Session-Timeout, a MikroTik volume limit), else a fresh quota. When nothing
  more can be reserved (or less than the NAS still allows), the session is disconnected
  (Disconnect-Request from the `aaa.prepaid_disconnect` job, logged with the reason "balance").
- **Stop**: the last usage is debited and the rest released (`charging.terminate`).
  Accounting-On/Off closes the NAS's prepaid sessions at what they reported.
The finished session is then not rated offline again (`usage.charge_finished_sessions` skips the
sessions charged online). A session silent past its grant's validity (the interim interval ×
TARIFA_AAA_STALE_FACTOR, at least TARIFA_CHARGING_VALIDITY) has its hold expire and is closed by
charging's expiry job at what it reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.conf import settings

from tarifa.charging import services as charging
from tarifa.charging.models import ChargingSession
from tarifa.rating.engine import SECOND
from tarifa.rating.selectors import measure_of
from tarifa.subscriptions.models import Subscription

from . import protocol

log = logging.getLogger("tarifa.aaa")

ACTOR = "system:radius"
ORIGIN = ChargingSession.Origin.RADIUS
EXHAUSTED = "balance exhausted"


def usage_types() -> list[str]:
    return list(settings.TARIFA_AAA_PREPAID_USAGE_TYPES)


def quota(measure: str) -> int:
    """Base units an Access-Request asks to reserve (ns for time, bytes)."""
    if measure == "time":
        return int(settings.TARIFA_AAA_PREPAID_TIME) * SECOND
    return int(settings.TARIFA_AAA_PREPAID_BYTES)


def validity(interim: int | None) -> int:
    """Seconds a RADIUS grant stays reserved: until the session would be closed as stale."""
    interval = interim or 300
    return max(charging.validity(), interval * int(settings.TARIFA_AAA_STALE_FACTOR))


def external_id(nas_ip: str, acct_session_id: str) -> str:
    return f"{nas_ip}/{acct_session_id}"


def pending_prefix(nas_ip: str, login: str) -> str:
    return f"{nas_ip}/auth:{login}:"


def enforced(measure: str, nas_type: str) -> bool:
    """Does the NAS stop the session at its grant? Session-Timeout always; volume only on MikroTik."""
    return measure == "time" or nas_type == "mikrotik"


def quota_attributes(nas_type: str, measure: str, units: int) -> list[tuple[str, object]]:
    """The Access-Accept's attributes for a grant of `units` base units."""
    if measure == "time":
        return [("Session-Timeout", max(units // SECOND, 1))]
    if nas_type == "mikrotik":
        return [("Mikrotik-Total-Limit", units & 0xFFFFFFFF), ("Mikrotik-Total-Limit-Gigawords", units >> 32)]
    return []


@dataclass
class Grant:
    """What the Access-Request is answered (accept: attributes to add; reject: the reason)."""

    accept: bool
    reason: str = ""
    attributes: list = field(default_factory=list)


def authorize(*, subscription_id, login: str, nas_ip: str, nas_type: str, acct_session_id: str = "",
              token: str = "", interim: int | None = None) -> Grant | None:
    """Reserve the quota of a prepaid subscriber's new session (in the server's database thread).

    None: the tariff rates none of the usage types (accepted as a flat-rate subscriber)."""
    sub = (Subscription.objects.select_related("billing_account", "service__service_type")
           .filter(pk=subscription_id).first())
    if sub is None:
        return None
    usage_type = charging.rated_usage_type(subscription=sub, usage_types=usage_types())
    if usage_type is None:
        return None
    measure = measure_of(usage_type)
    ext = external_id(nas_ip, acct_session_id) if acct_session_id else pending_prefix(nas_ip, login) + token
    answer = charging.reserve(actor=ACTOR, identifier=login, identifier_kind="login", usage_type=usage_type,
                              session_id=ext, requested=quota(measure), validity_s=validity(interim))
    if answer.result_code == charging.CREDIT_LIMIT_REACHED or (answer.ok and answer.granted <= 0):
        return Grant(False, EXHAUSTED)
    if not answer.ok:
        return Grant(False, f"prepaid: {charging.RESULT_TEXT.get(answer.result_code, answer.result_code)}"
                            f" ({answer.message})")
    shown = f"{answer.granted // SECOND} s" if measure == "time" else f"{answer.granted} bytes"
    return Grant(True, f"prepaid: {shown} of {usage_type} reserved ({answer.reserved} {answer.currency})",
                 quota_attributes(nas_type, measure, answer.granted))


def _session_for(rec, *, nas_ip: str) -> ChargingSession | None:
    """The charging session of an accounting record; one opened at Access-Request without an
    Acct-Session-Id is given this record's id (the oldest open one of the login on the NAS)."""
    ext = external_id(nas_ip, rec.session_id)
    session = charging.find_session(ORIGIN, ext)
    if session is not None:
        return session
    pending = (ChargingSession.objects.filter(origin=ORIGIN, state=ChargingSession.State.OPEN,
                                              external_id__startswith=pending_prefix(nas_ip, rec.login))
               .order_by("started_at").first())
    if pending is None:
        return None
    return charging.bind_session(pending, external_id=ext)


def _used(rec, measure: str) -> int:
    if measure == "time":
        return rec.session_time * SECOND
    return rec.bytes_in + rec.bytes_out


@dataclass
class Exhausted:
    nas_id: object
    acct_session_id: str
    login: str


def account(records: list, *, nas: dict, prepaid: dict) -> list[Exhausted]:
    """Charge the accounting records of prepaid logins (after the batch is stored).

    `nas`: NAS id → (address, type); `prepaid`: login → interim interval of the prepaid logins.
    Returns the sessions whose balance is exhausted (to be disconnected). A record that cannot
    be charged is logged and left to the offline path (the finished session is rated later).
    """
    out: list[Exhausted] = []
    for rec in records:
        ip, nas_type = nas.get(rec.nas_id, ("", ""))
        if not ip:
            continue
        try:
            if rec.status in (protocol.ACCOUNTING_ON, protocol.ACCOUNTING_OFF):
                _close_nas(ip)
                continue
            if rec.login not in prepaid or not rec.session_id or rec.status not in (
                    protocol.START, protocol.INTERIM, protocol.STOP):
                continue
            session = _session_for(rec, nas_ip=ip)
            if session is None or session.state != ChargingSession.State.OPEN:
                continue
            measure = measure_of(session.usage_type)
            used = max(_used(rec, measure) - session.used_units, 0)
            if rec.status == protocol.STOP:
                charging.terminate(session, actor=ACTOR, used=used, cause=rec.terminate_cause or "Stop")
            elif rec.status == protocol.INTERIM:
                limit = enforced(measure, nas_type)
                if limit:
                    first = session.requests.filter(request_number=0).values_list("granted_units", flat=True).first()
                    requested = max((first or 0) - _used(rec, measure), 1)
                else:
                    requested = quota(measure)
                answer = charging.update(session, actor=ACTOR, used=used, requested=requested,
                                         validity_s=validity(rec.interim_interval or prepaid.get(rec.login)))
                if not answer.ok or (limit and answer.granted < requested):
                    out.append(Exhausted(rec.nas_id, rec.session_id, rec.login))
        except Exception:
            log.exception("prepaid accounting of %s/%s could not be charged online", ip, rec.session_id)
    return out


def _close_nas(nas_ip: str) -> int:
    """Accounting-On/Off: the NAS's prepaid sessions end at what they reported."""
    done = 0
    for session in ChargingSession.objects.filter(origin=ORIGIN, state=ChargingSession.State.OPEN,
                                                  external_id__startswith=f"{nas_ip}/"):
        charging.terminate(session, actor=ACTOR, used=0, cause="NAS restart")
        done += 1
    return done


def disconnect(exhausted: list[Exhausted]) -> None:
    """Ask the `aaa` queue to disconnect the sessions (the job sends the Disconnect-Requests)."""
    from .tasks import prepaid_disconnect

    for item in exhausted:
        prepaid_disconnect.defer(nas_id=str(item.nas_id), acct_session_id=item.acct_session_id)


def online_external_ids(sessions) -> set[str]:
    """Which of these (finished) aaa sessions were charged online (not to be rated again)."""
    ids = {external_id(str(s.nas.ip_address), s.acct_session_id): s.pk for s in sessions}
    if not ids:
        return set()
    found = set(ChargingSession.objects.filter(origin=ORIGIN, external_id__in=list(ids))
                .exclude(state=ChargingSession.State.REFUSED).values_list("external_id", flat=True))
    return {ids[e] for e in found}
