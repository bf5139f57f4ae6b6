"""When a scheduled script is due (pure: no ORM). Cron expressions are read in the operator's
time zone (TARIFA_TIME_ZONE): "0 3 * * *" is 03:00 there."""

import datetime as dt
from zoneinfo import ZoneInfo

from croniter import croniter


def check(expression: str) -> str | None:
    """None when `expression` is a valid five-field cron expression, else what is wrong."""
    text = (expression or "").strip()
    if len(text.split()) != 5:
        return "A schedule has five fields: minute hour day-of-month month day-of-week (e.g. 0 3 * * *)."
    if not croniter.is_valid(text):
        return f"Not a valid cron expression: {text}"
    return None


def latest_slot(expression: str, at: dt.datetime, zone: str) -> dt.datetime:
    """The last time at or before `at` that the schedule names (aware, in `zone`)."""
    local = at.astimezone(ZoneInfo(zone))
    it = croniter(expression.strip(), local + dt.timedelta(seconds=1))
    return it.get_prev(dt.datetime)


def next_slot(expression: str, at: dt.datetime, zone: str) -> dt.datetime:
    return croniter(expression.strip(), at.astimezone(ZoneInfo(zone))).get_next(dt.datetime)


def due_slot(expression: str, at: dt.datetime, zone: str, *, last: dt.datetime | None,
             since: dt.datetime) -> dt.datetime | None:
    """The slot to run now, or None: the latest slot not after `at` that is later than the last one
    run (or, never run, not before `since`, when the script was scheduled). Missed slots are run
    once, not once each."""
    slot = latest_slot(expression, at, zone)
    if last is not None:
        return slot if slot > last else None
    return slot if slot >= since.replace(second=0, microsecond=0) else None
