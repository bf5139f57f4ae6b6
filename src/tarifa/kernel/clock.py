"""The one clock of Tarifa. Time is injected (rule 8): tests move it, jobs take `as_of`.

`now()` is the wall clock unless a test froze or moved it with `travel_to()`.
"""

import contextlib
import datetime as dt
import threading

from django.utils import timezone

_state = threading.local()
_global_override: list[dt.datetime] = []


def now() -> dt.datetime:
    override = getattr(_state, "now", None) or (_global_override[-1] if _global_override else None)
    return override if override is not None else timezone.now()


def today() -> dt.date:
    """The operator's current date (in the configured time zone)."""
    return timezone.localtime(now()).date()


class TravellingClock:
    """A controllable clock for scenario tests: `clock.add_days(30)`."""

    def __init__(self, start: dt.datetime):
        if timezone.is_naive(start):
            start = timezone.make_aware(start)
        self.current = start

    def add_days(self, days: int) -> dt.datetime:
        self.current = self.current + dt.timedelta(days=days)
        _global_override[-1] = self.current
        return self.current

    def add(self, delta: dt.timedelta) -> dt.datetime:
        self.current = self.current + delta
        _global_override[-1] = self.current
        return self.current

    def today(self) -> dt.date:
        return timezone.localtime(self.current).date()


@contextlib.contextmanager
def travel_to(start: dt.datetime):
    """Freeze the clock at `start` for every thread; the yielded clock moves it."""
    clock = TravellingClock(start)
    _global_override.append(clock.current)
    try:
        yield clock
    finally:
        _global_override.pop()
