"""Rate limits for logins, one-time codes and vouchers: per account (the login, the code's
destination, the billing account) AND per client address, counted in PostgreSQL (`Attempt`)
so that every server process sees the same counts.

The client address is `web.middleware.client_ip` (X-Forwarded-For is believed only from the
proxies in TARIFA_TRUSTED_PROXIES), so a client cannot reset its count by inventing a header.
A refusal says only "too many attempts": the same words whether or not the login exists.
"""

import datetime as dt
from dataclasses import dataclass

from tarifa.kernel.clock import now
from tarifa.kernel.errors import DomainError

from .models import Attempt


@dataclass(frozen=True)
class Limit:
    per_key: int
    per_ip: int
    window: dt.timedelta


LIMITS = {
    Attempt.Kind.LOGIN: Limit(per_key=5, per_ip=20, window=dt.timedelta(minutes=15)),
    Attempt.Kind.CODE: Limit(per_key=5, per_ip=20, window=dt.timedelta(minutes=15)),
    # Codes sent: counts every request (an attacker must not flood a customer's phone).
    Attempt.Kind.SEND: Limit(per_key=3, per_ip=10, window=dt.timedelta(minutes=15)),
    Attempt.Kind.VOUCHER: Limit(per_key=5, per_ip=10, window=dt.timedelta(minutes=15)),
}


class TooManyAttempts(DomainError):
    code = "too_many_attempts"
    status = 429


def _normal(key: str) -> str:
    return (key or "").strip().lower()[:254]


def retry_after(kind: str) -> int:
    return int(LIMITS[kind].window.total_seconds())


def check(kind: str, key: str, ip: str | None, *, count_successes: bool = False) -> None:
    """Refuse (429, logged as a failed attempt) when `key` or `ip` failed too often lately."""
    limit = LIMITS[kind]
    recent = Attempt.objects.filter(kind=kind, at__gte=now() - limit.window)
    if not count_successes:
        recent = recent.filter(succeeded=False)
    key = _normal(key)
    over = recent.filter(key=key).count() >= limit.per_key or (bool(ip) and recent.filter(ip=ip).count() >= limit.per_ip)
    if over:
        note(kind, key, ip, succeeded=False)
        raise TooManyAttempts("Too many attempts. Please wait a few minutes and try again.",
                              retry_after=retry_after(kind))


def note(kind: str, key: str, ip: str | None, *, succeeded: bool) -> None:
    """Log an attempt. Callers log outside their transaction, so that the row outlives the
    refusal that follows it."""
    Attempt.objects.create(kind=kind, key=_normal(key), ip=ip or None, succeeded=succeeded)


KEEP = dt.timedelta(days=30)  # far past every window: kept to look into an attack, then deleted


def purge(*, older_than: dt.timedelta = KEEP) -> int:
    """Delete the attempts older than `older_than` (daily job); returns how many."""
    deleted, _ = Attempt.objects.filter(at__lt=now() - older_than).delete()
    return deleted
