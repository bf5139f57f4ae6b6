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
import os
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


# --- batches from the queue ------------------------------------------------------------------------
#
# The daily job (`subscriptions.daily_charge`) plans the day: the run's own steps (tariff changes,
# planned resumptions, promises, device fees), then a `ChargeRun` with its batches of accounts
# (`ChargeBatch`) and one `subscriptions.charge_batch` job per batch, in one transaction. Any number
# of `tarifa worker` processes take them; a batch is charged in the transaction that holds its row
# lock and marks it done (`tarifa.kernel.batches`); the last worker to find nothing pending
# finishes the run. Charging a batch twice charges nothing twice (the transfers' idempotency keys).

# Billing accounts per batch of the daily job (TARIFA_CHARGE_BATCH).
WORKER_BATCH_ACCOUNTS = int(os.environ.get("TARIFA_CHARGE_BATCH") or 20_000)
BATCHES = "subscriptions_chargebatch"


def plan(*, as_of: dt.date, actor="system", batch_accounts: int = WORKER_BATCH_ACCOUNTS):
    """Plan the day's charge for the workers; the ChargeRun (an unfinished run of the same day that has
    batches is taken up again rather than planned twice)."""
    from .models import ChargeBatch
    from .tasks import charge_batch

    unfinished = (ChargeRun.objects.filter(as_of=as_of, finished_at__isnull=True, batches__isnull=False)
                  .distinct().order_by("-started_at").first())
    if unfinished is not None:
        return unfinished
    services.apply_due_tariff_changes(as_of=as_of, actor=actor)
    ended = services.end_voluntary_suspensions(as_of=as_of, actor=actor)
    services.expire_promised_payments(actor=actor)
    devices.charge_device_fees(as_of=as_of, actor=actor)
    with transaction.atomic():
        first = first_day_to_charge(as_of)
        record = ChargeRun.objects.create(as_of=as_of, first_day=first, actor=str(actor)[:150], resumed=ended)
        ranges = account_batches(first, batch_accounts) or []
        rows = ChargeBatch.objects.bulk_create([ChargeBatch(run=record, seq=i, low=lo, high=hi)
                                                for i, (lo, hi) in enumerate(ranges)])
        for i in range(0, len(rows), 1000):
            charge_batch.batch_defer(*({"run_id": str(record.pk), "batch_id": b.pk} for b in rows[i:i + 1000]))
        if not rows:
            ChargeRun.objects.filter(pk=record.pk).update(finished_at=now())
    return record


def work(run_id, *, prefer=None) -> int:
    """Charge the pending batches of a planned run (`prefer` first), then finish it if none is left."""
    from tarifa.kernel import batches as leases

    from .models import ChargeBatch

    record = ChargeRun.objects.filter(pk=run_id).first()
    if record is None or record.finished_at is not None:
        return 0
    if not connection.in_atomic_block:
        leases.session_setup()
    revenue = charging.revenue_accounts()
    did = 0
    while True:
        with transaction.atomic():
            batch_id = leases.claim(BATCHES, record.pk, prefer=prefer)
            if batch_id is None:
                break
            batch = ChargeBatch.objects.get(pk=batch_id)
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            params = {"lo": batch.low, "hi": batch.high}
            result = charging.post_charges(first=record.first_day, last=record.as_of, actor=record.actor,
                                           revenue=revenue, scope="s.billing_account_id BETWEEN %(lo)s AND %(hi)s",
                                           params=params, by=BY)
            changed = thresholds.evaluate(scope="ba.id BETWEEN %(lo)s AND %(hi)s", params=params, actor=record.actor,
                                          as_of=record.as_of, by=BY)
            leases.finish(BATCHES, batch_id, {"staged": result.staged, "inserted": result.inserted,
                                              "refused": result.refused,
                                              "suspended": result.suspended + changed["suspended"],
                                              "resumed": changed["resumed"], "warned": changed["warned"]})
        did += 1
        prefer = None
    finish(record.pk)
    return did


def finish(run_id) -> bool:
    """Finish a planned run whose batches are all done: its counts from theirs."""
    from .models import ChargeBatch

    with transaction.atomic():
        record = ChargeRun.objects.select_for_update().filter(pk=run_id, finished_at__isnull=True).first()
        if record is None or ChargeBatch.objects.filter(run=record, done=False).exists():
            return False
        totals = {k: 0 for k in ("staged", "inserted", "refused", "suspended", "resumed")}
        for out in ChargeBatch.objects.filter(run=record).values_list("result", flat=True):
            for k in totals:
                totals[k] += out.get(k, 0)
        totals["resumed"] += record.resumed
        ChargeRun.objects.filter(pk=record.pk).update(finished_at=now(), **totals)
        return True


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
