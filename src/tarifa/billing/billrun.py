"""Bill runs: every billable account of a cycle invoiced for a period — parallel, resumable, locked.

`start_run()` checks the input (period closed, cycle live, no run of the same cycle and
period queued or running) and records a `BillRun`; `execute_run()` does the work, in this
process (`jobs` processes of its own) or in a worker (`tasks.bill_run`):

- the (cycle, period) lock is a PostgreSQL advisory lock held by the coordinating
  connection for the whole run: a second run is refused with a clear message; a run
  killed at any moment (even SIGKILL) releases it with its connection;
- accounts are cut into batches of id ranges (one currency each); a batch is one
  transaction of the set-based path (`bulk.invoice_batch`); a batch that fails is redone
  account by account through the one-account path, and an account that still fails is
  recorded (`BillRunFailure`) and skipped — the run goes on, and the next run retries it;
- resumable by construction: committed batches stay; the next run selects only the
  accounts without an invoice for the period; the database's uniqueness (one invoice per
  account and period, one line per source, one transfer per idempotency key) makes a
  duplicate impossible even if two writers raced;
- a dry run is the same path with every batch rolled back.

Billable accounts of a cycle and period: assigned to the cycle, opened by the period's
end (the first day of the ledger's payment-mode history), and active or closed during or
after the period.
"""

import ctypes
import datetime as dt
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass

from django.db import connection, connections, transaction
from django.db.models import F

from tarifa.audit import services as recorded
from tarifa.kernel.clock import now, today
from tarifa.kernel.errors import Conflict, DomainError, NotFound

from . import bulk, services
from .models import BillCycle, BillRun, BillRunFailure

DEFAULT_BATCH = 20_000

BILLABLE_SQL = """
  SELECT ba.id, ba.currency FROM billing_billcycleassignment a
  JOIN ledger_billingaccount ba ON ba.id = a.billing_account_id
  WHERE a.cycle_id = %(cycle)s AND (ba.status = 'active' OR ba.closed_at::date >= %(start)s)
    AND EXISTS (SELECT 1 FROM ledger_paymentmodechange pm WHERE pm.billing_account_id = ba.id
                AND pm.effective_date <= %(end)s)
"""

PENDING_SQL = BILLABLE_SQL + """
    AND NOT EXISTS (SELECT 1 FROM billing_invoice i WHERE i.billing_account_id = ba.id AND i.period = %(period)s
                    AND i.kind = 'invoice')
"""


# Accounts of the cycle that did not live in the period: never invoiced for it, counted as skipped.
NOT_LIVED_SQL = """
  SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM ledger_paymentmodechange pm
                                            WHERE pm.billing_account_id = ba.id AND pm.effective_date <= %(end)s)),
         count(*) FILTER (WHERE ba.status <> 'active' AND ba.closed_at::date < %(start)s)
  FROM billing_billcycleassignment a JOIN ledger_billingaccount ba ON ba.id = a.billing_account_id
  WHERE a.cycle_id = %(cycle)s
"""


def _not_lived(cycle, start, end) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(NOT_LIVED_SQL, {"cycle": cycle.pk, "start": start, "end": end})
        opened_after, closed_before = cursor.fetchone()
    return {"opened_after_period": opened_after, "closed_before_period": closed_before}


def lock_key(cycle: BillCycle, period: str) -> str:
    return f"tarifa.billing.run:{cycle.pk}:{period}"


def _cycle(code_or_cycle) -> BillCycle:
    if isinstance(code_or_cycle, BillCycle):
        return code_or_cycle
    cycle = BillCycle.objects.filter(code=code_or_cycle).first()
    if cycle is None:
        raise NotFound(f"No bill cycle {code_or_cycle!r}.", code="cycle_not_found", fields={"cycle": ["Unknown."]})
    return cycle


def cycles_for(code=None) -> list[BillCycle]:
    if code:
        return [_cycle(code)]
    return list(BillCycle.objects.filter(archived_at__isnull=True).order_by("day_of_month", "code"))


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


@transaction.atomic
def start_run(*, actor, cycle, period: str, dry_run=False, jobs: int | None = None,
              as_of: dt.date | None = None) -> BillRun:
    """Record a bill run to execute. Errors: invalid_period, cycle_not_found, cycle_archived,
    period_not_closed, run_in_progress (another run of this cycle and period is queued or running)."""
    services._require(actor, "billing.run_bill_run")
    period = services.parse_period(period)
    cycle = _cycle(cycle)
    if cycle.archived_at is not None:
        raise DomainError(f"Cycle {cycle.code} is archived.", code="cycle_archived", status=409)
    services.check_period_closed(cycle, period, as_of=as_of)
    busy = (BillRun.objects.select_for_update().filter(cycle=cycle, period=period,
                                                         status__in=[BillRun.Status.QUEUED, BillRun.Status.RUNNING])
            .order_by("started_at").first())
    if busy is not None and _lock_is_held(cycle, period):
        raise _busy(busy)
    if busy is not None and busy.status == BillRun.Status.QUEUED and not dry_run:
        raise _busy(busy)
    if busy is not None and busy.batches.filter(done=False).exists():  # the workers' batches are under way
        raise _busy(busy)
    run = BillRun.objects.create(cycle=cycle, period=period, dry_run=dry_run, jobs=jobs or default_jobs(),
                                 actor=services._label(actor))
    recorded.record(run, actor=actor, action="create", message=f"{cycle.code} {period}{' dry run' if dry_run else ''}")
    return run


def _busy(run: BillRun) -> Conflict:
    return Conflict(f"A bill run of cycle {run.cycle.code} for {run.period} is already {run.status} (started"
                    f" {run.started_at:%Y-%m-%d %H:%M:%S} by {run.actor or 'system'}, run {run.pk}); wait for it to"
                    f" finish.", code="run_in_progress")


def _lock_is_held(cycle, period) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [lock_key(cycle, period)])
        got = cursor.fetchone()[0]
        if got:
            cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [lock_key(cycle, period)])
    return not got


def _acquire(cycle, period) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [lock_key(cycle, period)])
        return cursor.fetchone()[0]


def _release(cycle, period) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [lock_key(cycle, period)])


def batches(cycle, period: str, start, end, size: int) -> tuple[int, list[tuple]]:
    """(accounts to invoice, [(currency, lowest id, highest id)]) in batches of `size` accounts."""
    with connection.cursor() as cursor:
        cursor.execute(f"""
            SELECT currency, min(id::text)::uuid, max(id::text)::uuid, count(*) FROM (
              SELECT id, currency, (row_number() OVER (PARTITION BY currency ORDER BY id) - 1) / %(size)s AS batch
              FROM ({PENDING_SQL}) p) b
            GROUP BY currency, batch ORDER BY currency, batch""",
                       {"cycle": cycle.pk, "start": start, "end": end, "period": period, "size": size})
        rows = cursor.fetchall()
    return sum(r[3] for r in rows), [(cur, lo, hi) for cur, lo, hi, _n in rows]


def _batch_account_ids(cycle, period, start, end, currency, lo, hi) -> list:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM ({PENDING_SQL}) p WHERE currency = %(cur)s AND id BETWEEN %(lo)s AND %(hi)s"
                       " ORDER BY id", {"cycle": cycle.pk, "start": start, "end": end, "period": period,
                                        "cur": currency, "lo": lo, "hi": hi})
        return [r[0] for r in cursor.fetchall()]


def process_batch(run_id, currency, lo, hi) -> dict:
    """Invoice one batch (set-based); on failure, account by account. Never raises."""
    run = BillRun.objects.select_related("cycle").get(pk=run_id)
    cycle = run.cycle
    start, end = services.period_of(cycle, run.period)
    ids = _batch_account_ids(cycle, run.period, start, end, currency, lo, hi)
    result = {"accounts": len(ids), "invoiced": 0, "skipped": 0, "failures": [], "totals": {}, "by_service": {},
              "by_tax": {}, "ledger_transfers": 0}
    if not ids:
        return result
    actor = f"billrun:{run.pk}"
    try:
        out = bulk.invoice_batch(cycle=cycle, period=run.period, account_ids=ids, actor=actor, run=run,
                                 dry_run=run.dry_run)
        _merge(result, out)
        return result
    except Exception:  # noqa: BLE001 — find the offending accounts one by one
        pass
    for account_id in ids:
        try:
            out = bulk.invoice_batch(cycle=cycle, period=run.period, account_ids=[account_id], actor=actor, run=run,
                                     dry_run=run.dry_run)
            _merge(result, out)
        except Exception as exc:  # noqa: BLE001 — reported and skipped, retried by the next run
            code = getattr(exc, "code", None) or type(exc).__name__
            message = getattr(exc, "message", None) or str(exc)
            result["skipped"] += 1
            result["failures"].append({"account": str(account_id), "code": code, "message": message[:500]})
            if not run.dry_run:
                BillRunFailure.objects.create(run=run, billing_account_id=account_id, code=str(code)[:64],
                                              message=message[:2000])
    return result


def _merge(into: dict, out: dict) -> None:
    into["invoiced"] += out.get("invoiced", 0)
    empty = out.get("nothing_to_invoice", 0)
    if empty:  # zero invoices are not issued: skipped, with the reason
        into["skipped"] += empty
        reasons = into.setdefault("skipped_reasons", {})
        reasons["nothing_to_invoice"] = reasons.get("nothing_to_invoice", 0) + empty
    into["ledger_transfers"] = into.get("ledger_transfers", 0) + out.get("ledger_transfers", 0)
    for key in ("by_service", "by_tax"):
        for k, v in out.get(key, {}).items():
            into[key][k] = str(_d(into[key].get(k, "0")) + _d(v))
    for cur, t in out.get("totals", {}).items():
        acc = into["totals"].setdefault(cur, {"net": "0", "tax": "0", "total": "0"})
        for k in ("net", "tax", "total"):
            acc[k] = str(_d(acc[k]) + _d(t[k]))


def _d(value):
    from decimal import Decimal

    return Decimal(str(value))


# --- processes -------------------------------------------------------------------------------------

_inherited = []


def _child_init():
    """A bill run's worker process: dies with its parent; never touches the parent's connection."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for conn in connections.all(initialized_only=True):
        # Keep the inherited socket object alive (its finalizer would close the parent's session)
        # and let Django open a connection of this process's own.
        _inherited.append(conn.connection)
        conn.connection = None


def _child_batch(args):
    run_id, currency, lo, hi = args
    try:
        return process_batch(run_id, currency, lo, hi)
    finally:
        connection.close()


def execute_run(run: BillRun, *, progress=None, batch_size: int | None = None) -> dict:
    """Do the run: take the (cycle, period) lock, invoice batch by batch, summarize. See the module doc."""
    run = BillRun.objects.select_related("cycle").get(pk=run.pk)
    cycle, period = run.cycle, run.period
    if not _acquire(cycle, period):
        BillRun.objects.filter(pk=run.pk).update(status=BillRun.Status.FAILED, finished_at=now(),
                                                 error="another run of this cycle and period holds the lock")
        busy = (BillRun.objects.filter(cycle=cycle, period=period, status=BillRun.Status.RUNNING)
                .exclude(pk=run.pk).order_by("started_at").first())
        raise _busy(busy or run)
    started = time.monotonic()
    try:
        # We hold the lock: runs still marked running died (killed); the accounts they left are ours.
        BillRun.objects.filter(cycle=cycle, period=period, status=BillRun.Status.RUNNING).exclude(pk=run.pk).update(
            status=BillRun.Status.INTERRUPTED, finished_at=now())
        start, end = services.period_of(cycle, period)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM ({BILLABLE_SQL}) b", {"cycle": cycle.pk, "start": start, "end": end})
            billable = cursor.fetchone()[0]
        size = batch_size or DEFAULT_BATCH
        if run.jobs > 1 and not connection.in_atomic_block:
            # Smaller batches keep every process busy to the end.
            pending, _ = batches(cycle, period, start, end, size)
            size = max(200, min(size, -(-pending // (run.jobs * 4)) if pending else size))
        pending, todo = batches(cycle, period, start, end, size)
        BillRun.objects.filter(pk=run.pk).update(status=BillRun.Status.RUNNING, accounts=pending, started_at=now())
        result = {"accounts": 0, "invoiced": 0, "skipped": 0, "failures": [], "totals": {}, "by_service": {},
                  "by_tax": {}, "ledger_transfers": 0}
        done = 0
        if progress:
            progress(0, pending)
        for out in _results(run, todo):
            done += out["accounts"]
            result["accounts"] += out["accounts"]
            result["skipped"] += out["skipped"]
            result["failures"] += out["failures"]
            for code, n in out.get("skipped_reasons", {}).items():
                result.setdefault("skipped_reasons", {})[code] = result.get("skipped_reasons", {}).get(code, 0) + n
            _merge(result, out)
            BillRun.objects.filter(pk=run.pk).update(done=done, invoiced=result["invoiced"], skipped=result["skipped"])
            if progress:
                progress(done, pending)
        if not run.dry_run and result["invoiced"]:
            with connection.cursor() as cursor:  # what was written is most of these tables now
                cursor.execute("ANALYZE billing_invoice, billing_invoiceline, billing_invoicedsource,"
                               " billing_allocation")
        seconds = time.monotonic() - started
        summary = _summary(run, result, billable=billable, pending=pending, seconds=seconds,
                           not_lived=_not_lived(cycle, start, end))
        BillRun.objects.filter(pk=run.pk).update(status=BillRun.Status.FINISHED, finished_at=now(), summary=summary,
                                                 done=done, invoiced=result["invoiced"], skipped=summary["skipped"])
        return summary
    except BaseException as exc:
        BillRun.objects.filter(pk=run.pk).update(status=BillRun.Status.FAILED, finished_at=now(), error=str(exc)[:2000])
        raise
    finally:
        _release(cycle, period)


def _results(run, todo):
    args = [(run.pk, cur, lo, hi) for cur, lo, hi in todo]
    if run.jobs <= 1 or len(args) <= 1 or connection.in_atomic_block:
        # Inside a caller's transaction (demo data, tests) other processes would not see its rows.
        for a in args:
            yield process_batch(*a)
        return
    # The coordinator keeps its connection (it holds the lock); the children drop their copy.
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(min(run.jobs, len(args)), initializer=_child_init) as pool:
        yield from pool.imap_unordered(_child_batch, args)


def _summary(run, result, *, billable, pending, seconds, not_lived) -> dict:
    from collections import Counter

    reasons = Counter(f["code"] for f in result["failures"])
    reasons.update(result.get("skipped_reasons", {}))
    reasons.update({k: v for k, v in not_lived.items() if v})
    summary = {
        "cycle": run.cycle.code, "period": run.period, "dry_run": run.dry_run, "run": str(run.pk),
        "accounts": pending, "billable": billable, "already_invoiced": billable - pending,
        "invoiced": result["invoiced"], "skipped": result["skipped"] + sum(not_lived.values()),
        "skipped_reasons": dict(reasons),
        "failures": result["failures"][:100], "totals": result["totals"], "by_service": result["by_service"],
        "by_tax": result["by_tax"], "ledger_transfers": result.get("ledger_transfers", 0),
        "seconds": round(seconds, 3), "accounts_per_s": round(pending / seconds, 1) if seconds > 0 else None,
        "processes": run.jobs,
    }
    return summary


def combine(summaries: list[dict], period: str, dry_run: bool) -> dict:
    """One JSON summary for the runs of several cycles."""
    out = {"period": period, "dry_run": dry_run, "cycles": [s["cycle"] for s in summaries], "accounts": 0,
           "billable": 0, "already_invoiced": 0, "invoiced": 0, "skipped": 0, "skipped_reasons": {}, "failures": [],
           "totals": {}, "by_service": {}, "by_tax": {}, "ledger_transfers": 0, "seconds": 0.0, "runs": []}
    for s in summaries:
        for k in ("accounts", "billable", "already_invoiced", "invoiced", "skipped", "ledger_transfers"):
            out[k] += s[k]
        out["seconds"] = round(out["seconds"] + s["seconds"], 3)
        for code, n in s["skipped_reasons"].items():
            out["skipped_reasons"][code] = out["skipped_reasons"].get(code, 0) + n
        out["failures"] += s["failures"]
        _merge(out, {"totals": s["totals"], "by_service": s["by_service"], "by_tax": s["by_tax"], "invoiced": 0})
        out["runs"].append(s["run"])
    out["accounts_per_s"] = round(out["accounts"] / out["seconds"], 1) if out["seconds"] else None
    return out


def run_period(*, actor, period: str, cycle=None, dry_run=False, jobs: int | None = None, progress=None,
               batch_size: int | None = None, as_of=None) -> dict:
    """Start and execute the runs of `period` for one cycle or all; the combined summary.

    Over all cycles (`cycle` left out), a cycle whose period has not closed yet is skipped and
    reported in the summary's `not_closed` (cycle, code, message), not an error; named alone, it
    is refused (`period_not_closed`)."""
    summaries, not_closed = [], []
    period = services.parse_period(period)
    for c in cycles_for(cycle):
        if cycle is None:
            try:
                services.check_period_closed(c, period, as_of=as_of)
            except DomainError as exc:
                if exc.code != "period_not_closed":
                    raise
                not_closed.append({"cycle": c.code, "code": exc.code, "message": exc.message})
                continue
        run = start_run(actor=actor, cycle=c, period=period, dry_run=dry_run, jobs=jobs, as_of=as_of)
        summaries.append(execute_run(run, progress=(lambda d, t, c=c: progress(c, d, t)) if progress else None,
                                     batch_size=batch_size))
    out = combine(summaries, period, dry_run)
    out["not_closed"] = not_closed
    return out


# --- batches from the queue ------------------------------------------------------------------------
#
# A queued run (`enqueue`, the UI) is planned by the job `billing.bill_run`: its batches are recorded
# (`BillRunBatch`) and one job `billing.bill_run_batch` is deferred per batch, in one transaction.
# Any number of `tarifa worker` processes, on any machine, take them; a worker invoices a batch in
# the transaction that holds the batch's row lock and marks it done (see `tarifa.kernel.batches`),
# then goes on with any batch still pending; the last one to find nothing pending finishes the run.

# Accounts per batch of a queued run (TARIFA_BILLRUN_BATCH): small enough to spread over the workers.
WORKER_BATCH = int(os.environ.get("TARIFA_BILLRUN_BATCH") or 5_000)
BATCHES = "billing_billrunbatch"


def plan_run(run_id, *, batch_size: int | None = None) -> bool:
    """Record the batches of a queued run and defer their jobs. False if the run is not to be worked
    on (gone, finished, or refused: another run of its cycle and period holds the lock)."""
    from .models import BillRunBatch
    from .tasks import bill_run_batch

    with transaction.atomic():
        run = BillRun.objects.select_for_update().select_related("cycle").filter(pk=run_id).first()
        if run is None or run.status not in (BillRun.Status.QUEUED, BillRun.Status.RUNNING):
            return False
        if run.status == BillRun.Status.RUNNING:
            return True  # planned already (this job was retried after its worker died)
        cycle, period = run.cycle, run.period
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", [lock_key(cycle, period)])
            if not cursor.fetchone()[0]:
                BillRun.objects.filter(pk=run.pk).update(status=BillRun.Status.FAILED, finished_at=now(),
                                                         error="another run of this cycle and period holds the lock")
                return False
        # Runs of this cycle and period still marked running with nothing left in hand died (killed).
        (BillRun.objects.filter(cycle=cycle, period=period, status=BillRun.Status.RUNNING).exclude(pk=run.pk)
         .exclude(batches__done=False).update(status=BillRun.Status.INTERRUPTED, finished_at=now()))
        start, end = services.period_of(cycle, period)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM ({BILLABLE_SQL}) b", {"cycle": cycle.pk, "start": start, "end": end})
            billable = cursor.fetchone()[0]
        pending, todo = batches(cycle, period, start, end, batch_size or WORKER_BATCH)
        rows = BillRunBatch.objects.bulk_create(
            [BillRunBatch(run=run, seq=i, currency=cur, low=lo, high=hi) for i, (cur, lo, hi) in enumerate(todo)])
        BillRun.objects.filter(pk=run.pk).update(status=BillRun.Status.RUNNING, accounts=pending, started_at=now(),
                                                 summary={"billable": billable, "pending": pending,
                                                          "batches": len(rows)})
        for i in range(0, len(rows), 1000):
            bill_run_batch.batch_defer(*({"run_id": str(run.pk), "batch_id": b.pk} for b in rows[i:i + 1000]))
    return True


def work(run_id, *, prefer=None) -> int:
    """Invoice the pending batches of a run (its batch `prefer` first), then finish the run if none is
    left. Returns the number of batches this call did."""
    from . import models
    from tarifa.kernel import batches as leases

    run = BillRun.objects.select_related("cycle").filter(pk=run_id).first()
    if run is None or run.status != BillRun.Status.RUNNING:
        return 0
    if not connection.in_atomic_block:
        leases.session_setup()
    did = 0
    while True:
        with transaction.atomic():
            with connection.cursor() as cursor:  # a synchronous run of the same cycle and period excludes us
                cursor.execute("SELECT pg_advisory_xact_lock_shared(hashtextextended(%s, 0))",
                               [lock_key(run.cycle, run.period)])
            batch_id = leases.claim(BATCHES, run.pk, prefer=prefer)
            if batch_id is None:
                break
            batch = models.BillRunBatch.objects.get(pk=batch_id)
            out = process_batch(run.pk, batch.currency, batch.low, batch.high)
            leases.finish(BATCHES, batch_id, out)
            models.BillRunBatch.objects.filter(pk=batch_id).update(accounts=out["accounts"])
            BillRun.objects.filter(pk=run.pk).update(done=F("done") + out["accounts"],
                                                     invoiced=F("invoiced") + out["invoiced"],
                                                     skipped=F("skipped") + out["skipped"])
        did += 1
        prefer = None
    finish_run(run.pk)
    return did


def finish_run(run_id) -> dict | None:
    """Finish a running run whose batches are all done: its summary from theirs. None if not (yet)."""
    from .models import BillRunBatch

    with transaction.atomic():
        run = BillRun.objects.select_for_update().select_related("cycle").filter(pk=run_id).first()
        if run is None or run.status != BillRun.Status.RUNNING or "batches" not in (run.summary or {}):
            return None  # not a queued run's (a synchronous run finishes itself)
        if run.batches.filter(done=False).exists():
            return None
        result = {"accounts": 0, "invoiced": 0, "skipped": 0, "failures": [], "totals": {}, "by_service": {},
                  "by_tax": {}, "ledger_transfers": 0}
        for out in BillRunBatch.objects.filter(run=run).values_list("result", flat=True):
            result["accounts"] += out.get("accounts", 0)
            result["skipped"] += out.get("skipped", 0)
            result["failures"] += out.get("failures", [])
            for code, n in out.get("skipped_reasons", {}).items():
                result.setdefault("skipped_reasons", {})[code] = result.get("skipped_reasons", {}).get(code, 0) + n
            _merge(result, out)
        cycle, period = run.cycle, run.period
        start, end = services.period_of(cycle, period)
        if not run.dry_run and result["invoiced"]:
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE billing_invoice, billing_invoiceline, billing_invoicedsource,"
                               " billing_allocation")
        seconds = max(0.0, (now() - run.started_at).total_seconds())
        planned = run.summary or {}
        summary = _summary(run, result, billable=planned.get("billable", run.accounts),
                           pending=planned.get("pending", run.accounts), seconds=seconds,
                           not_lived=_not_lived(cycle, start, end))
        summary["batches"] = planned.get("batches")
        BillRun.objects.filter(pk=run.pk).update(status=BillRun.Status.FINISHED, finished_at=now(), summary=summary,
                                                 done=result["accounts"], invoiced=result["invoiced"],
                                                 skipped=summary["skipped"])
        return summary


def enqueue(*, actor, period: str, cycle=None, dry_run=False, jobs: int | None = None, as_of=None) -> list[BillRun]:
    """Hand the runs to the workers (the UI always does); returns the queued runs."""
    from .tasks import bill_run

    runs = []
    for c in cycles_for(cycle):
        with transaction.atomic():
            run = start_run(actor=actor, cycle=c, period=period, dry_run=dry_run, jobs=jobs or 1, as_of=as_of)
            bill_run.defer(run_id=str(run.pk))
        runs.append(run)
    return runs


@dataclass
class Queued:
    """The runs `enqueue_all` handed to the workers, and the cycles it refused with their reason."""

    period: str
    dry_run: bool
    runs: list[BillRun]
    refused: list[dict]  # {"cycle": code, "code": error code, "message": text}


def enqueue_all(*, actor, period: str, dry_run=False, jobs: int | None = None, as_of=None) -> Queued:
    """One run per live (non-archived) cycle of `period` for the workers, each through `start_run`
    in its own transaction — the same checks, lock and audit as one run. A cycle refused (a run of it
    for the period already queued or running, its period not closed yet) is reported in `refused`; the
    others are queued. Errors: permission_denied, invalid_period, cycle_not_found (no live cycle);
    when every cycle is refused, that cycle's error (one cycle) or nothing_queued (409, one message
    per cycle)."""
    services._require(actor, "billing.run_bill_run")
    period = services.parse_period(period)
    cycles = cycles_for(None)
    if not cycles:
        raise NotFound("There is no live bill cycle.", code="cycle_not_found",
                       fields={"cycle": ["No live bill cycle."]})
    runs, refused, errors = [], [], []
    for c in cycles:
        try:
            runs += enqueue(actor=actor, period=period, cycle=c, dry_run=dry_run, jobs=jobs, as_of=as_of)
        except DomainError as exc:
            if exc.code == "permission_denied":
                raise
            errors.append(exc)
            refused.append({"cycle": c.code, "code": exc.code, "message": exc.message})
    if not runs:
        if len(errors) == 1:
            raise errors[0]
        raise Conflict(f"No bill run queued for {period}: " + " ".join(f"{r['cycle']}: {r['message']}"
                                                                     for r in refused),
                       code="nothing_queued", fields={"cycle": [f"{r['cycle']}: {r['message']}" for r in refused]})
    return Queued(period=period, dry_run=dry_run, runs=runs, refused=refused)


def today_period(cycle) -> str:
    return services.last_closed_period(cycle, today())
