"""The only write path of network access: NAS, profiles, access settings, accounting, the auth log.

Accounting is applied in batches (`apply_accounting`), set-based, in one transaction per batch:
the server acknowledges a batch's Accounting-Requests only after it committed. Each record applies
once: a Start inserts the open session unless (nas, Acct-Session-Id) is open or already finished;
Interim-Updates and Stops carry cumulative counters, stored as the greatest seen (a retransmission
or a late Interim changes nothing); a Stop moves the session from the hot table to the finished
sessions, once. Accounting-On/Off closes every open session of the NAS, keeping their usage.
"""

import datetime as dt
import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.db import connection, transaction

from tarifa.audit import services as recorded
from tarifa.kernel.clock import now
from tarifa.kernel.errors import DomainError, ValidationFailed
from tarifa.kernel.ids import uuid7

from . import protocol
from .models import AccessSettings, AuthAttempt, FinishedSession, Nas, Profile

# -- NAS -----------------------------------------------------------------------------------------


def _check_secret(secret: str) -> str:
    secret = (secret or "").strip()
    if len(secret) < 6 or len(secret) > 128 or not secret.isprintable():
        raise ValidationFailed("A shared secret has 6 to 128 printable characters.", code="invalid_secret",
                               fields={"secret": ["6 to 128 printable characters."]})
    return secret


def _check_ip(value) -> str:
    try:
        return str(ipaddress.ip_address(str(value or "").strip()))
    except ValueError:
        raise ValidationFailed("Not an IP address.", code="invalid_ip_address",
                               fields={"ip_address": ["Not an IP address."]}) from None


@transaction.atomic
def create_nas(*, actor, name, ip_address, secret, type=Nas.Type.GENERIC, coa_port=3799, active=True,
               description="") -> Nas:
    """A NAS allowed to send RADIUS requests from `ip_address`, with its shared secret (stored
    encrypted). The address is unique (`nas_exists`, 409)."""
    ip_address = _check_ip(ip_address)
    if Nas.objects.filter(ip_address=ip_address).exists():
        raise DomainError(f"A NAS with address {ip_address} exists.", code="nas_exists", status=409,
                          fields={"ip_address": ["Already registered."]})
    return recorded.create(Nas, actor=actor, name=name, ip_address=ip_address, secret=_check_secret(secret),
                           type=type, coa_port=coa_port, active=active, description=description)


@transaction.atomic
def update_nas(nas, *, actor, secret=None, ip_address=None, **changes) -> Nas:
    """Change a NAS; an empty or missing `secret` keeps the stored one."""
    if secret:
        changes["secret"] = _check_secret(secret)
    if ip_address is not None:
        ip_address = _check_ip(ip_address)
        if Nas.objects.filter(ip_address=ip_address).exclude(pk=nas.pk).exists():
            raise DomainError(f"A NAS with address {ip_address} exists.", code="nas_exists", status=409,
                              fields={"ip_address": ["Already registered."]})
        changes["ip_address"] = ip_address
    return recorded.update(nas, actor=actor, **changes)


@transaction.atomic
def deactivate_nas(nas, *, actor, reason="") -> Nas:
    """The NAS's requests are ignored from now on (it stays, with its sessions' history)."""
    return recorded.update(nas, actor=actor, action="deactivate", message=reason, active=False)


def touch_nas(seen: dict) -> None:
    """Record when each NAS (id → time) last sent a request (the server calls it now and then)."""
    if not seen:
        return
    with connection.cursor() as cur:
        cur.executemany("UPDATE aaa_nas SET last_seen = %s WHERE id = %s AND (last_seen IS NULL OR last_seen < %s)",
                        [(at, pk, at) for pk, at in seen.items()])


# -- profiles and access settings ----------------------------------------------------------------

def _check_profile(fields: dict) -> dict:
    attributes = fields.get("attributes")
    if attributes is not None:
        problems = protocol.valid_attributes(attributes)
        if problems:
            raise ValidationFailed(problems[0], code="invalid_attributes", fields={"attributes": problems})
    if fields.get("when_suspended") == Profile.WhenSuspended.PAY_FIRST and not (
            fields.get("pay_first_pool") or fields.get("pay_first_rate_down_kbps")):
        raise ValidationFailed("A pay-first profile needs its pool or its speed.", code="pay_first_incomplete",
                               fields={"pay_first_pool": ["Give the redirect pool or the pay-first speed."]})
    cap = fields.get("monthly_cap_mb")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise ValidationFailed("A monthly traffic cap is a whole number of MB, at least 1.", code="invalid_cap",
                               fields={"monthly_cap_mb": ["A whole number of MB, at least 1 (empty: no cap)."]})
    when_capped = fields.get("when_capped") or Profile.WhenCapped.THROTTLE
    if when_capped not in Profile.WhenCapped.values:
        raise ValidationFailed(f"Unknown choice {when_capped!r}.", code="invalid_when_capped",
                               fields={"when_capped": [f"One of {', '.join(Profile.WhenCapped.values)}."]})
    if cap is not None and when_capped == Profile.WhenCapped.THROTTLE:
        missing = {f: ["Give the speed once the cap is reached (throttle)."]
                   for f in ("capped_rate_down_kbps", "capped_rate_up_kbps") if not fields.get(f)}
        if missing:
            raise ValidationFailed("A throttling cap needs the capped download and upload speeds.",
                                   code="cap_incomplete", fields=missing)
    return fields


@transaction.atomic
def create_profile(*, actor, name, tariff=None, **fields) -> Profile:
    """The reply for `tariff`'s subscribers (one profile per tariff; without a tariff: the default)."""
    if tariff is not None and Profile.objects.filter(tariff=tariff).exists():
        raise DomainError(f"Tariff {tariff} has a profile.", code="profile_exists", status=409,
                          fields={"tariff": ["Has a profile already."]})
    if tariff is None and Profile.objects.filter(tariff__isnull=True).exists():
        raise DomainError("There is a default profile already.", code="profile_exists", status=409,
                          fields={"tariff": ["Choose a tariff: the default profile exists."]})
    return recorded.create(Profile, actor=actor, name=name, tariff=tariff, **_check_profile(fields))


@transaction.atomic
def update_profile(profile, *, actor, **changes) -> Profile:
    if "tariff" in changes:
        tariff = changes["tariff"]
        others = Profile.objects.exclude(pk=profile.pk)
        if (tariff is None and others.filter(tariff__isnull=True).exists()) or (
                tariff is not None and others.filter(tariff=tariff).exists()):
            raise DomainError("That tariff has a profile already.", code="profile_exists", status=409,
                              fields={"tariff": ["Has a profile already."]})
    merged = {f: getattr(profile, f) for f in ("when_suspended", "pay_first_pool", "pay_first_rate_down_kbps",
                                               "monthly_cap_mb", "when_capped", "capped_rate_down_kbps",
                                               "capped_rate_up_kbps")}
    merged.update(changes)
    _check_profile(merged)
    return recorded.update(profile, actor=actor, **changes)


@transaction.atomic
def set_access_settings(*, actor, subscription, ip_pool="", simultaneous_use=None) -> AccessSettings:
    """One subscription's own pool or simultaneous-use limit (over its profile's)."""
    if subscription.service.service_type.category != "internet":
        raise ValidationFailed("Only internet subscriptions have network access settings.",
                               code="not_internet", fields={"subscription": ["Not an internet subscription."]})
    current = AccessSettings.objects.filter(subscription=subscription).first()
    if current is None:
        return recorded.create(AccessSettings, actor=actor, subscription=subscription, ip_pool=ip_pool,
                               simultaneous_use=simultaneous_use)
    return recorded.update(current, actor=actor, ip_pool=ip_pool, simultaneous_use=simultaneous_use)


def update_access_settings(settings_obj, *, actor, ip_pool="", simultaneous_use=None) -> AccessSettings:
    return recorded.update(settings_obj, actor=actor, ip_pool=ip_pool, simultaneous_use=simultaneous_use)


# -- the authentication log ----------------------------------------------------------------------

AUTH_COLUMNS = ("at", "outcome", "reason", "login", "nas_id", "nas_ip", "subscription_id", "calling_station_id",
                "method")
# A UUIDv7 made by PostgreSQL from the attempt's time (a v4 with the time in front and the version set).
UUID7_SQL = ("encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
             "substring(int8send(floor(extract(epoch FROM a.at) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 52, 1), "
             "53, 1), 'hex')::uuid")


def log_attempts(rows: Iterable[tuple]) -> int:
    """Append authentication attempts: tuples in AUTH_COLUMNS order, `at` in seconds since the epoch.
    The server's batched write of the auth log: one statement of arrays, ids made by PostgreSQL."""
    rows = list(rows)
    if not rows:
        return 0
    at, outcome, reason, login, nas, nas_ip, sub, station, method = (list(c) for c in zip(*rows))
    nas = [str(v) if v else None for v in nas]
    sub = [str(v) if v else None for v in sub]
    with connection.cursor() as cur:
        cur.execute(f"""
            INSERT INTO aaa_authattempt (id, {", ".join(AUTH_COLUMNS)})
            SELECT {UUID7_SQL}, a.at, a.outcome, a.reason, a.login, a.nas, a.nas_ip, a.sub, a.station, a.method
            FROM (SELECT to_timestamp(t) AS at, o AS outcome, r AS reason, l AS login, n AS nas, i AS nas_ip,
                         s AS sub, c AS station, m AS method
                  FROM unnest(%s::float8[], %s::text[], %s::text[], %s::text[], %s::uuid[], %s::inet[], %s::uuid[],
                              %s::text[], %s::text[]) AS u(t, o, r, l, n, i, s, c, m)) a""",
                    [at, outcome, reason, login, nas, nas_ip, sub, station, method])
    return len(rows)


def prune_auth_log(*, as_of: dt.datetime | None = None, days: int | None = None) -> int:
    """Delete attempts older than `days` (TARIFA_AAA_AUTH_LOG_DAYS): the log's bounded retention."""
    days = settings.TARIFA_AAA_AUTH_LOG_DAYS if days is None else days
    limit = (as_of or now()) - dt.timedelta(days=days)
    deleted, _ = AuthAttempt.objects.filter(at__lt=limit).delete()
    return deleted


# -- accounting ----------------------------------------------------------------------------------

SESSION_COLUMNS = ("nas_id", "acct_session_id", "subscription_id", "login", "framed_ip", "calling_station_id",
                   "nas_port_id", "started_at", "updated_at", "interim_interval", "session_time", "bytes_in",
                   "bytes_out", "packets_in", "packets_out")
COUNTERS = ("session_time", "bytes_in", "bytes_out", "packets_in", "packets_out")


def _ts(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def _merge(records: list) -> dict:
    """Per (nas, session id): the first record's details, the greatest counters, the latest time,
    whether a Stop came (and its cause)."""
    merged: dict = {}
    for rec in records:
        key = (rec.nas_id, rec.session_id)
        cur = merged.get(key)
        if cur is None:
            merged[key] = cur = {"rec": rec, "first": rec.event_time, "last": rec.event_time, "stop": None,
                                 **{c: getattr(rec, c) for c in COUNTERS}, "start": rec.status == protocol.START}
        else:
            for c in COUNTERS:
                cur[c] = max(cur[c], getattr(rec, c))
            cur["first"] = min(cur["first"], rec.event_time)
            cur["last"] = max(cur["last"], rec.event_time)
            cur["start"] = cur["start"] or rec.status == protocol.START
            if rec.framed_ip and not cur["rec"].framed_ip:
                cur["rec"] = rec
        if rec.status == protocol.STOP:
            cur["stop"] = rec
    return merged


def _finished_keys(cur, keys) -> set:
    if not keys:
        return set()
    cur.execute("SELECT nas_id, acct_session_id FROM aaa_finishedsession f "
                "JOIN unnest(%s::uuid[], %s::text[]) AS k(nas, sid) ON f.nas_id = k.nas AND f.acct_session_id = k.sid",
                [[k[0] for k in keys], [k[1] for k in keys]])
    return {(row[0], row[1]) for row in cur.fetchall()}


def _move_to_finished(cur, where: str, params: list, *, stopped_at_sql: str, reason: str, extra_params=()) -> list:
    """Delete open sessions matching `where` and insert them into the finished sessions."""
    cols = ", ".join(("id",) + SESSION_COLUMNS)
    cur.execute(f"""
        WITH gone AS (DELETE FROM aaa_session s WHERE {where} RETURNING s.*)
        INSERT INTO aaa_finishedsession ({cols}, stopped_at, terminate_cause, stop_reason)
        SELECT {cols}, {stopped_at_sql}, %s, %s FROM gone
        RETURNING nas_id, acct_session_id, login""", [*params, *extra_params, "", reason])
    return cur.fetchall()


@transaction.atomic
def apply_accounting(records: list, *, logins: dict | None = None, received: float | None = None) -> dict:
    """Apply a batch of accounting records (protocol.AcctRecord) in one transaction.

    `logins` maps a login to its subscription id (the server's snapshot), so sessions are tied to
    their subscription without a query per record. Records of a NAS that restarted
    (Accounting-On/Off) close its open sessions where they stand in the batch. Returns counts:
    started, updated, stopped, closed (by On/Off), duplicates, and the logins whose open sessions
    changed (opened: +1, closed: -1) for the server's simultaneous-use counts.
    """
    logins = logins or {}
    out = {"started": 0, "updated": 0, "stopped": 0, "closed": 0, "duplicates": 0, "delta": {}}
    segment: list = []
    with connection.cursor() as cur:
        for rec in records:
            if rec.status in (protocol.ACCOUNTING_ON, protocol.ACCOUNTING_OFF):
                _apply_segment(cur, segment, logins, out)
                segment = []
                for _nas, _sid, login in _move_to_finished(
                        cur, "s.nas_id = %s", [rec.nas_id], stopped_at_sql="%s",
                        reason=FinishedSession.StopReason.NAS_RESTART, extra_params=[_ts(rec.event_time)]):
                    out["closed"] += 1
                    out["delta"][login] = out["delta"].get(login, 0) - 1
            elif rec.session_id and rec.status in (protocol.START, protocol.INTERIM, protocol.STOP):
                segment.append(rec)
            else:
                out["duplicates"] += 1  # nothing to apply (no session id, or a status we do not keep)
        _apply_segment(cur, segment, logins, out)
    return out


def _apply_segment(cur, records, logins, out):
    if not records:
        return
    merged = _merge(records)
    finished = _finished_keys(cur, list(merged))
    for key in finished:
        out["duplicates"] += len([r for r in records if (r.nas_id, r.session_id) == key])
        merged.pop(key)
    if not merged:
        return
    rows = []
    for (nas_id, sid), m in merged.items():
        rec = m["rec"]
        started = m["first"] - (m["session_time"] if not m["start"] else 0)
        rows.append((nas_id, sid, logins.get(rec.login), rec.login, rec.framed_ip, rec.calling_station_id,
                     rec.nas_port_id, _ts(started), _ts(m["last"]), rec.interim_interval or 0,
                     m["session_time"], m["bytes_in"], m["bytes_out"], m["packets_in"], m["packets_out"]))
    cols = ", ".join(SESSION_COLUMNS)
    columns = list(zip(*rows))
    cur.execute(f"""
        INSERT INTO aaa_session (id, {cols})
        SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::uuid[], %s::text[], %s::inet[], %s::text[],
                             %s::text[], %s::timestamptz[], %s::timestamptz[], %s::int[], %s::bigint[],
                             %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])
        ON CONFLICT (nas_id, acct_session_id) DO UPDATE SET
            session_time = GREATEST(aaa_session.session_time, EXCLUDED.session_time),
            bytes_in = GREATEST(aaa_session.bytes_in, EXCLUDED.bytes_in),
            bytes_out = GREATEST(aaa_session.bytes_out, EXCLUDED.bytes_out),
            packets_in = GREATEST(aaa_session.packets_in, EXCLUDED.packets_in),
            packets_out = GREATEST(aaa_session.packets_out, EXCLUDED.packets_out),
            updated_at = GREATEST(aaa_session.updated_at, EXCLUDED.updated_at),
            framed_ip = COALESCE(aaa_session.framed_ip, EXCLUDED.framed_ip),
            started_at = LEAST(aaa_session.started_at, EXCLUDED.started_at)
        RETURNING login, (xmax = 0) AS inserted""", [[uuid7() for _ in rows], *[list(c) for c in columns]])
    for login, inserted in cur.fetchall():
        if inserted:
            out["started"] += 1
            out["delta"][login] = out["delta"].get(login, 0) + 1
        else:
            out["updated"] += 1
    stops = [(k, m) for k, m in merged.items() if m["stop"] is not None]
    if stops:
        causes = [m["stop"].terminate_cause for _k, m in stops]
        stopped = [_ts(m["last"]) for _k, m in stops]
        cols_all = ", ".join(("id",) + SESSION_COLUMNS)
        cur.execute(f"""
            WITH k AS (SELECT * FROM unnest(%s::uuid[], %s::text[], %s::timestamptz[], %s::text[])
                       AS k(nas, sid, stopped_at, cause)),
            gone AS (DELETE FROM aaa_session s USING k WHERE s.nas_id = k.nas AND s.acct_session_id = k.sid
                     RETURNING s.*, k.stopped_at AS k_stopped, k.cause AS k_cause)
            INSERT INTO aaa_finishedsession ({cols_all}, stopped_at, terminate_cause, stop_reason)
            SELECT {cols_all}, GREATEST(k_stopped, updated_at), k_cause, %s FROM gone
            RETURNING login""",
                    [[k[0] for k, _m in stops], [k[1] for k, _m in stops], stopped, causes,
                     FinishedSession.StopReason.STOP])
        for (login,) in cur.fetchall():
            out["stopped"] += 1
            out["delta"][login] = out["delta"].get(login, 0) - 1


@transaction.atomic
def close_stale_sessions(*, as_of: dt.datetime | None = None, factor: int | None = None,
                         default_interval: int = 300) -> int:
    """Close the open sessions silent for longer than their interim interval × `factor`
    (TARIFA_AAA_STALE_FACTOR), keeping their last known usage; stopped at their last update."""
    as_of = as_of or now()
    factor = settings.TARIFA_AAA_STALE_FACTOR if factor is None else factor
    with connection.cursor() as cur:
        closed = _move_to_finished(
            cur, "s.updated_at < %s - make_interval(secs => COALESCE(NULLIF(s.interim_interval, 0), %s) * %s)",
            [as_of, default_interval, factor], stopped_at_sql="updated_at",
            reason=FinishedSession.StopReason.STALE)
    if closed:
        connection.cursor().execute("SELECT pg_notify('tarifa_aaa_sessions', 'stale')")
    return len(closed)


@transaction.atomic
def close_nas_sessions(nas, *, actor, reason="") -> int:
    """Close every open session of `nas` now (what Accounting-On/Off does), usage kept."""
    with connection.cursor() as cur:
        closed = _move_to_finished(cur, "s.nas_id = %s", [nas.pk], stopped_at_sql="%s",
                                   reason=FinishedSession.StopReason.NAS_RESTART, extra_params=[now()])
    recorded.record(nas, actor=actor, action="close_sessions", message=reason or f"{len(closed)} sessions closed")
    return len(closed)


def open_session_counts() -> dict:
    """Open sessions per login (the server's simultaneous-use counts, refreshed with its snapshot)."""
    with connection.cursor() as cur:
        cur.execute("SELECT login, count(*) FROM aaa_session GROUP BY login")
        return dict(cur.fetchall())

