"""Reads of network access other apps and the RADIUS server use.

`load_snapshot()` is what the server answers Access-Requests from: every active NAS with its
secret, every live subscription with a login (its password, status, MAC binding, static IP, pool,
simultaneous-use limit and reply profile), and the open sessions per login, in three queries.
Passwords are decrypted once per stored value (`previous` carries the clear texts over), so a
reload after one change costs queries, not 10,000 decryptions.
"""

from dataclasses import dataclass, field

from django.db import connection

from tarifa.kernel.secrets import decrypt

from .protocol import ReplyProfile


@dataclass(frozen=True, slots=True)
class NasEntry:
    id: object
    name: str
    secret: bytes
    type: str


@dataclass(frozen=True, slots=True)
class Subscriber:
    subscription_id: object
    login: str
    password: str
    status: str
    mac: str
    static_ip: str
    pool: str
    simultaneous_use: int
    profile: ReplyProfile


@dataclass
class Snapshot:
    nas: dict = field(default_factory=dict)  # source IP → NasEntry
    subscribers: dict = field(default_factory=dict)  # login → Subscriber
    open_sessions: dict = field(default_factory=dict)  # login → open sessions
    clear: dict = field(default_factory=dict)  # ciphertext → clear text (the decryption cache)
    login_ids: dict = field(default_factory=dict)  # login → subscription id (sessions are tied to it)


PROFILE_FIELDS = ("id", "rate_down_kbps", "rate_up_kbps", "ip_pool", "simultaneous_use", "session_timeout",
                  "idle_timeout", "interim_interval", "attributes", "when_suspended", "pay_first_pool",
                  "pay_first_rate_down_kbps", "pay_first_rate_up_kbps")
NO_PROFILE = ReplyProfile(id=None)


def _clear(stored: str, previous: dict, cache: dict) -> str:
    if not stored:
        return ""
    text = previous.get(stored)
    if text is None:
        try:
            text = decrypt(stored)
        except ValueError:
            text = ""  # unreadable with the configured keys: no password, so no login
    cache[stored] = text
    return text


def load_snapshot(previous: Snapshot | None = None) -> Snapshot:
    from .models import Profile

    old = previous.clear if previous else {}
    snap = Snapshot()
    with connection.cursor() as cur:
        cur.execute("SELECT ip_address, id, name, secret, type FROM aaa_nas WHERE active")
        for ip, pk, name, secret, nas_type in cur.fetchall():
            snap.nas[str(ip)] = NasEntry(pk, name, _clear(secret, old, snap.clear).encode(), nas_type)
        profiles, default = {}, NO_PROFILE
        for row in Profile.objects.values("tariff_id", *PROFILE_FIELDS):
            tariff_id = row.pop("tariff_id")
            profile = ReplyProfile(**row)
            if tariff_id is None:
                default = profile
            else:
                profiles[tariff_id] = profile
        cur.execute("""
            SELECT s.id, s.login, s.access_password, s.status, s.mac_address, s.ip_address, s.tariff_id,
                   a.ip_pool, a.simultaneous_use
            FROM subscriptions_subscription s
            LEFT JOIN aaa_accesssettings a ON a.subscription_id = s.id
            WHERE s.login <> '' AND s.status <> 'terminated'""")
        for pk, login, password, status, mac, ip, tariff_id, pool, simultaneous in cur.fetchall():
            profile = profiles.get(tariff_id, default)
            snap.subscribers[login] = Subscriber(
                pk, login, _clear(password, old, snap.clear), status, mac or "", ip or "", pool or "",
                simultaneous if simultaneous is not None else profile.simultaneous_use, profile)
            snap.login_ids[login] = pk
        cur.execute("SELECT login, count(*) FROM aaa_session GROUP BY login")
        snap.open_sessions = dict(cur.fetchall())
    return snap


def recent_attempts(subscription, limit: int = 20):
    from .models import AuthAttempt

    return AuthAttempt.objects.filter(subscription_id=subscription.pk).order_by("-at")[:limit]


def open_sessions(subscription):
    from .models import Session

    return Session.objects.filter(subscription=subscription).order_by("-started_at")
