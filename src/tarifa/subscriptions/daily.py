"""The daily run: scheduled changes, recurring fees for every day due, then thresholds.

`run(as_of=DAY)` is what `tarifa billing charge --as-of DAY` and the daily job call. It
charges every day from the day after the last finished run up to `as_of` (a missed day
is caught up), in batches of billing accounts, each batch one transaction that charges
(set-based, through the ledger's bulk path, which locks the batch's accounts) and then
suspends/resumes/warns those accounts. Running a day twice charges nothing twice.

Prepaid accounts are held to their limit: a charge that would take one below
−(credit limit + promised payments) is refused (not posted, counted in `refused`) and its
subscription is suspended for cause `balance` in the same transaction (see
`charging`). A refused day is not charged later: the next run starts after this one's
day and the subscription stays suspended (not charged) until a payment resumes it, which
charges the day of resumption.
"""

import datetime as dt
import time
import uuid

from django.db import connection, transaction

from tarifa.kernel.clock import now, today
from tarifa.kernel.money import round_minor

from . import charging, devices, services, thresholds
from .models import ChargeRun

MAX_CATCH_UP_DAYS = 366
BATCH_ACCOUNTS = 100_000
WORK_MEM = "128MB"
BY = "the daily charge"  # who suspended / resumed, in the audit trail's sentences


def first_day_to_charge(as_of: dt.date) -> dt.date:
    last = ChargeRun.objects.filter(finished_at__isnull=False, as_of__lte=as_of).order_by("-as_of").first()
    if last is not None:
        first = last.as_of + dt.timedelta(days=1)
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT min(activated_on) FROM subscriptions_subscription WHERE status <> 'pending'"
                           " AND activated_on IS NOT NULL")
            first = cursor.fetchone()[0] or as_of
    first = min(first, as_of)  # a re-run of a day already run
    return max(first, as_of - dt.timedelta(days=MAX_CATCH_UP_DAYS))


def account_batches(first: dt.date, size: int):
    """(lowest, highest) billing account ids of batches of `size` accounts with chargeable subscriptions."""
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT min(id::text)::uuid, max(id::text)::uuid FROM (
              SELECT id, (row_number() OVER (ORDER BY id) - 1) / %(size)s AS batch FROM (
                SELECT DISTINCT billing_account_id AS id FROM subscriptions_subscription
                WHERE status <> 'pending' AND (terminated_on IS NULL OR terminated_on >= %(first)s)) a) b
            GROUP BY batch ORDER BY batch""", {"size": size, "first": first})
        return cursor.fetchall()


def run(*, as_of: dt.date, actor="system", batch_accounts: int = BATCH_ACCOUNTS, log=None) -> dict:
    """Charge every fee due up to `as_of`; returns what was done (also kept as a ChargeRun)."""
    started = time.monotonic()
    services.apply_due_tariff_changes(as_of=as_of, actor=actor)
    ended = services.end_voluntary_suspensions(as_of=as_of, actor=actor)
    services.expire_promised_payments(actor=actor)
    devices.charge_device_fees(as_of=as_of, actor=actor)  # rents and installments of devices
    first = first_day_to_charge(as_of)
    record = ChargeRun.objects.create(as_of=as_of, first_day=first, actor=str(actor)[:150])
    revenue = charging.revenue_accounts()
    totals = {"staged": 0, "inserted": 0, "refused": 0, "suspended": 0, "resumed": ended, "warned": 0, "charge_s": 0.0,
              "thresholds_s": 0.0}
    for lo, hi in account_batches(first, batch_accounts):
        with transaction.atomic():
            with connection.cursor() as cursor:
                # Hash joins and sorts over a batch's charges fit in memory (the default is 4 MB).
                cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            t0 = time.monotonic()
            result = charging.post_charges(first=first, last=as_of, actor=actor, revenue=revenue,
                                           scope="s.billing_account_id BETWEEN %(lo)s AND %(hi)s",
                                           params={"lo": lo, "hi": hi}, by=BY)
            t1 = time.monotonic()
            totals["charge_s"] += t1 - t0
            changed = thresholds.evaluate(scope="ba.id BETWEEN %(lo)s AND %(hi)s", params={"lo": lo, "hi": hi},
                                          actor=actor, as_of=as_of, by=BY)
            totals["thresholds_s"] += time.monotonic() - t1
        totals["staged"] += result.staged
        totals["inserted"] += result.inserted
        totals["refused"] += result.refused
        totals["suspended"] += result.suspended
        for k in ("suspended", "resumed", "warned"):
            totals[k] += changed[k]
        if log:
            log(f"accounts {lo}…{hi}: {result.inserted} charges, {result.refused} refused, {changed}")
    ChargeRun.objects.filter(pk=record.pk).update(finished_at=now(), staged=totals["staged"],
                                                  inserted=totals["inserted"], refused=totals["refused"],
                                                  suspended=totals["suspended"], resumed=totals["resumed"])
    totals["charge_s"] = round(totals["charge_s"], 2)
    totals["thresholds_s"] = round(totals["thresholds_s"], 2)
    return {"as_of": str(as_of), "first_day": str(first), **totals,
            "seconds": round(time.monotonic() - started, 3)}


class _Rollback(Exception):
    """Raised to roll back a preview's transaction."""


PREVIEW_CHARGES_SQL = """
SELECT currency, count(*), sum(amount) FROM ledger_transfer
WHERE id >= %(since)s AND actor = %(actor)s AND kind = 'charge'
GROUP BY currency ORDER BY currency
"""

# Status transitions the preview's run made (the run's own counts leave out the services'
# resumptions, e.g. customer-request suspensions reaching their planned end).
PREVIEW_TRANSITIONS_SQL = """
SELECT to_status, count(*) FROM subscriptions_statuschange
WHERE id >= %(since)s AND actor = %(actor)s GROUP BY to_status
"""


def preview(*, as_of: dt.date, actor="system") -> dict:
    """What `run(as_of=…)` would do, without doing it: the run itself, in a transaction that
    is rolled back — so the preview applies exactly the charge rule, the prepaid limit and
    the thresholds of the real run, and writes nothing (no transfer, charge run, suspension,
    audit or domain event, job). While it computes it holds the accounts' locks as a run does.

    Returns the run's counts plus `charges` (transfers of kind charge it would post, the
    resumptions' too), `suspended` / `resumed` (subscriptions whose status would change),
    `totals` per currency in the currency's units and `totals_exact` (ledger precision),
    `days` charged, and `future` (the day is after today: fees would be charged ahead).
    """
    from tarifa.audit.services import actor_label

    label = f"preview:{actor_label(actor)}"[:150]
    # Every transfer the run posts has a time-ordered id from now on: the lowest id of a
    # second ago bounds them (the primary key's index), the actor label tells them apart.
    since = uuid.UUID(int=((time.time_ns() // 1_000_000 - 1000) << 80) | (0x7 << 76) | (0b10 << 62))
    outcome = {}
    try:
        with transaction.atomic():
            outcome.update(run(as_of=as_of, actor=label))
            with connection.cursor() as cursor:
                cursor.execute(PREVIEW_CHARGES_SQL, {"since": since, "actor": label})
                rows = cursor.fetchall()
                cursor.execute(PREVIEW_TRANSITIONS_SQL, {"since": since, "actor": label})
                transitions = dict(cursor.fetchall())
            raise _Rollback
    except _Rollback:
        pass
    first = dt.date.fromisoformat(outcome["first_day"])
    return {
        "preview": True, "as_of": str(as_of), "first_day": str(first), "days": (as_of - first).days + 1,
        "future": as_of > today(),
        "charges": sum(r[1] for r in rows),
        "totals": {cur: str(round_minor(total, cur)) for cur, _n, total in rows},
        "totals_exact": {cur: str(total) for cur, _n, total in rows},
        **{k: outcome[k] for k in ("staged", "inserted", "refused", "warned")},
        "suspended": transitions.get("suspended", 0), "resumed": transitions.get("active", 0),
        "seconds": outcome["seconds"],
    }
