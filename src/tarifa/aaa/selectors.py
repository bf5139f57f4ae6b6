"""Reads of network access other apps and the RADIUS server use.

`load_snapshot()` is what the server answers Access-Requests from: every active NAS with its
secret, every live subscription with a login (its password, status, MAC binding, static IP, pool,
simultaneous-use limit, reply profile and whether it is over its monthly traffic cap), and the open
sessions per login, in a few queries.
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
    prepaid: bool = False  # a prepaid account and a rated tariff: the Access-Request reserves (aaa.prepaid)
    capped: bool = False  # over its profile's monthly traffic cap (`capped_subscriptions`) when loaded


@dataclass
class Snapshot:
    nas: dict = field(default_factory=dict)  # source IP → NasEntry
    subscribers: dict = field(default_factory=dict)  # login → Subscriber
    open_sessions: dict = field(default_factory=dict)  # login → open sessions
    clear: dict = field(default_factory=dict)  # ciphertext → clear text (the decryption cache)
    login_ids: dict = field(default_factory=dict)  # login → subscription id (sessions are tied to it)


PROFILE_FIELDS = ("id", "rate_down_kbps", "rate_up_kbps", "ip_pool", "simultaneous_use", "session_timeout",
                  "idle_timeout", "interim_interval", "attributes", "when_suspended", "pay_first_pool",
                  "pay_first_rate_down_kbps", "pay_first_rate_up_kbps", "monthly_cap_mb", "when_capped",
                  "capped_rate_down_kbps", "capped_rate_up_kbps")
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


SUBSCRIBERS_SQL = """
    SELECT s.id, s.login, s.access_password, s.status, s.mac_address, s.ip_address, s.tariff_id,
           a.ip_pool, a.simultaneous_use,
           (b.payment_mode = 'prepaid' AND EXISTS (SELECT 1 FROM rating_tariffrating r
                                                   WHERE r.tariff_id = s.tariff_id AND r.archived_at IS NULL))
    FROM subscriptions_subscription s
    JOIN ledger_billingaccount b ON b.id = s.billing_account_id
    LEFT JOIN aaa_accesssettings a ON a.subscription_id = s.id
    WHERE s.login <> '' AND s.status <> 'terminated'"""


def _profiles():
    """(profile per tariff id, the default profile)."""
    from .models import Profile

    profiles, default = {}, NO_PROFILE
    for row in Profile.objects.values("tariff_id", *PROFILE_FIELDS):
        tariff_id = row.pop("tariff_id")
        profile = ReplyProfile(**row)
        if tariff_id is None:
            default = profile
        else:
            profiles[tariff_id] = profile
    return profiles, default


def _subscribers(cur, old, clear, where="", params=(), capped=None):
    """`capped`: the subscription ids over their cap (None: found here, for the subscribers read)."""
    profiles, default = _profiles()
    cur.execute(SUBSCRIBERS_SQL + where, list(params))
    rows = cur.fetchall()
    if capped is None:
        capped = capped_subscriptions(subscription_ids=[r[0] for r in rows]) if rows else set()
    for pk, login, password, status, mac, ip, tariff_id, pool, simultaneous, prepaid in rows:
        profile = profiles.get(tariff_id, default)
        yield Subscriber(pk, login, _clear(password, old, clear), status, mac or "", ip or "", pool or "",
                         simultaneous if simultaneous is not None else profile.simultaneous_use, profile,
                         bool(prepaid), pk in capped)


# -- monthly traffic caps --------------------------------------------------------------------------

MB = 1_000_000  # a cap's megabyte: decimal, as traffic is sold

# This month's traffic of each subscription whose profile has a cap: finished sessions that stopped
# this month and the open sessions. A session that began before the month counts with the share of
# its bytes that falls in the month, its bytes taken as spread evenly over its time (finished: started
# → stopped; open: started → last update), so the month starts from zero for everyone.
CAPPED_SQL = """
    WITH capped_profile AS (
        SELECT s.id AS subscription_id, p.monthly_cap_mb
        FROM subscriptions_subscription s
        JOIN aaa_profile p ON p.id = COALESCE(
            (SELECT t.id FROM aaa_profile t WHERE t.tariff_id = s.tariff_id),
            (SELECT d.id FROM aaa_profile d WHERE d.tariff_id IS NULL ORDER BY d.name, d.id LIMIT 1))
        WHERE p.monthly_cap_mb IS NOT NULL AND s.status <> 'terminated' {only}),
    traffic AS (
        SELECT f.subscription_id, f.started_at, f.stopped_at AS until, f.bytes_in + f.bytes_out AS bytes
        FROM aaa_finishedsession f
        WHERE f.stopped_at >= %(start)s AND f.stopped_at < %(end)s
          AND f.subscription_id IN (SELECT subscription_id FROM capped_profile)
        UNION ALL
        SELECT o.subscription_id, o.started_at, o.updated_at, o.bytes_in + o.bytes_out
        FROM aaa_session o
        WHERE o.subscription_id IN (SELECT subscription_id FROM capped_profile))
    SELECT c.subscription_id
    FROM capped_profile c JOIN traffic t ON t.subscription_id = c.subscription_id
    GROUP BY c.subscription_id, c.monthly_cap_mb
    HAVING sum(CASE WHEN t.started_at >= %(start)s THEN t.bytes
                    WHEN t.until <= %(start)s THEN 0
                    ELSE t.bytes * extract(epoch FROM t.until - %(start)s)
                                 / extract(epoch FROM t.until - t.started_at) END)
           >= c.monthly_cap_mb::numeric * %(mb)s"""


NOTIFY_CHANNEL = "tarifa_aaa"  # what the RADIUS server listens to (server.py; triggers of migration 0002)


def notify_change(what: str) -> None:
    """Ask the RADIUS server to reload its snapshot (as the triggers do; delivered at commit)."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, what])


def month_bounds(at=None):
    """The calendar month (in the operator's time zone) around `at` (default: the clock's now)."""
    import datetime as dt

    from django.utils import timezone

    from tarifa.kernel.clock import now

    local = timezone.localtime(at or now())
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


def capped_subscriptions(*, at=None, subscription_ids=None) -> set:
    """The subscriptions whose traffic this calendar month reached their profile's monthly cap
    (one query; `subscription_ids` narrows it). Nothing is read when no profile has a cap."""
    from .models import Profile

    if not Profile.objects.filter(monthly_cap_mb__isnull=False).exists():
        return set()
    start, end = month_bounds(at)
    params = {"start": start, "end": end, "mb": MB}
    only = ""
    if subscription_ids is not None:
        only, params["ids"] = "AND s.id = ANY(%(ids)s::uuid[])", [str(i) for i in subscription_ids]
    with connection.cursor() as cur:
        cur.execute(CAPPED_SQL.format(only=only), params)
        return {row[0] for row in cur.fetchall()}


def load_snapshot(previous: Snapshot | None = None) -> Snapshot:
    old = previous.clear if previous else {}
    snap = Snapshot()
    with connection.cursor() as cur:
        cur.execute("SELECT ip_address, id, name, secret, type FROM aaa_nas WHERE active")
        for ip, pk, name, secret, nas_type in cur.fetchall():
            snap.nas[str(ip)] = NasEntry(pk, name, _clear(secret, old, snap.clear).encode(), nas_type)
        for sub in _subscribers(cur, old, snap.clear, capped=capped_subscriptions()):
            snap.subscribers[sub.login] = sub
            snap.login_ids[sub.login] = sub.subscription_id
        cur.execute("SELECT login, count(*) FROM aaa_session GROUP BY login")
        snap.open_sessions = dict(cur.fetchall())
    return snap


# -- one request at a time, from the database (the FreeRADIUS rlm_rest endpoints) -------------------

def active_nas(ip: str) -> NasEntry | None:
    """The active NAS with this address (its secret left out: FreeRADIUS holds its own clients)."""
    with connection.cursor() as cur:
        cur.execute("SELECT id, name, type FROM aaa_nas WHERE active AND ip_address = %s", [ip])
        row = cur.fetchone()
    return NasEntry(row[0], row[1], b"", row[2]) if row else None


def subscriber(login: str) -> Subscriber | None:
    """The live subscriber with this login, as the snapshot would hold it."""
    if not login:
        return None
    with connection.cursor() as cur:
        return next(_subscribers(cur, {}, {}, " AND s.login = %s", [login]), None)


def open_session_count(login: str) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM aaa_session WHERE login = %s", [login])
        return cur.fetchone()[0]


def recent_attempts(subscription, limit: int = 20):
    from .models import AuthAttempt

    return AuthAttempt.objects.filter(subscription_id=subscription.pk).order_by("-at")[:limit]


def open_sessions(subscription):
    from .models import Session

    return Session.objects.filter(subscription=subscription).order_by("-started_at")
