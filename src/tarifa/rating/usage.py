"""Mediation, rating and posting of usage: the only write path for usage records.

One pipeline serves every way usage comes in — a file (`import_file`), a partner's JSON
batch (`import_records`), the rejected queue (`reprocess`) and a tariff correction
(`rerate`):

1. **Stage.** A file in the built-in CSV format is COPYed as it is into a table of lines
   and converted in SQL (`_stage_sql`); lines of any other shape, and files in declared
   formats, are parsed in Python (formats.py) and streamed with COPY into the staging
   table. A line that cannot be read is staged too, as a rejection with its reason.
2. **Deduplicate and resolve, set-based.** Records whose (source, record id) is already
   stored, or repeated in the batch, are duplicates. The rest are matched in one SQL
   statement to the subscription that held the subject at the record's time
   (subscriptions' identifier history), its tariff period that day, the billing account,
   and the tariff's rating (tenant, category, subject, plan).
3. **Rate.** Python prices the resolved records with the tenant's compiled plan through
   a per-(price, usage) cost cache (engine/fast.py); bundles' free units are consumed in
   time order per subscription first. Big batches are rated by two processes (by
   subscription, so each owns its bundle counters).
4. **Persist and post, in one transaction.** Prepaid costs are summed per billing
   account into one ledger transfer each (`post_transfers_bulk`, keys
   `usage:<batch>:<account>:<service type>`), then every record is inserted — rated
   (pointing to its transfer; postpaid ones are kept for the invoice) or rejected
   with its reason — and the bundle counters and the batch's counts are written.

Semi-online billing: an app above rating that charges calls online (`charging`) registers
itself with `register_online_charging`. After resolution it *claims* the records of calls it
charged already (`claim`: a row per record in the batch's claims table); a claimed record is
priced with the free units its session had (its bundle counter is not spent twice), stored
with `online_session`, left out of the batch's ledger transfer (and of invoices), and handed
back after persisting (`reconcile`: the charger books the difference as a correction) — all
in the same transaction. Rating never imports the charger (rule 2).

Guarantees: every record ends in exactly one place (rated, rejected, duplicate) and the
batch's `read = rated + rejected + duplicates` is checked before commit; the unique
constraint on (source, record_id) makes a record count once however often it comes;
imports and re-ratings are serialised by one advisory lock (taken after parsing, so
files are read in parallel); a failure writes nothing but the failed batch's status.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction

from tarifa.audit import services as recorded
from tarifa.kernel.clock import now
from tarifa.kernel.errors import DomainError, NotFound, ValidationFailed

from . import engine, plans
from .engine.fast import CachedRater
from .formats import MALFORMED, MAX_LINE, FormatError, LineParser, builtin, iter_lines
from .models import Bundle, RerateRun, UsageBatch, UsageFormat, UsageRecord, UsageType
from .units import QuantityError, parse_quantity

LOCK_KEY = 7_236_152_711  # pg advisory lock: one usage writer at a time
PARALLEL_MIN_RECORDS = 50_000
PARALLEL_MIN_BYTES = 4 << 20
MAX_HEADER = 1 << 20
WORKERS = 2
CHUNK_BYTES = 4 << 20
FETCH = 10_000
REASONS = {
    "malformed": "The record could not be read.",
    "negative_usage": "The usage is negative.",
    "unknown_usage_type": "The usage type is not known.",
    "filtered": "A filter of the format left the record out.",
    "unknown_subscriber": "No subscription held the subject at the record's time.",
    "ambiguous_subscriber": "Several subscriptions held the subject at the record's time.",
    "outside_subscription": "The subscription was not in service on the record's day.",
    "tariff_not_rated": "The subscription's tariff has no rating.",
    "no_rate": "The tariff plan has no rate for the record.",
    "rating_error": "The record could not be priced.",
}
_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _esc(value) -> str:
    if value is None:
        return "\\N"
    return str(value).translate(_ESCAPE)


# --- tables ----------------------------------------------------------------------------------------

@dataclass
class Tables:
    stage: str
    resolved: str
    results: str
    deltas: str
    charges: str
    temp: bool
    notes: dict = field(default_factory=dict)  # figures of the stages, merged into the batch's timings

    @classmethod
    def make(cls, parallel: bool) -> Tables:
        if not parallel:
            return cls("rating_stage", "rating_resolved", "rating_results", "rating_deltas", "rating_charges", True)
        suffix = uuid.uuid4().hex[:12]
        return cls(*(f"rating_tmp_{n}_{suffix}" for n in ("stage", "resolved", "results", "deltas", "charges")),
                   False)

    def create(self, cursor, name: str, columns: str):
        if self.temp:
            cursor.execute(f"DROP TABLE IF EXISTS {name}; CREATE TEMP TABLE {name} ({columns}) ON COMMIT DROP")
        else:
            cursor.execute(f"CREATE UNLOGGED TABLE {name} ({columns})")

    def create_as(self, cursor, name: str, query: str, params=None):
        if self.temp:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
            cursor.execute(f"CREATE TEMP TABLE {name} ON COMMIT DROP AS {query}", params)
        else:
            cursor.execute(f"CREATE UNLOGGED TABLE {name} AS {query}", params)

    @property
    def claims(self) -> str:
        """Resolved records an online charger claimed: (n, session_id, free_units, bundle_id)."""
        return self.stage + "_claims"

    @property
    def again(self) -> str:
        """Staged records that replace a stored rejection (a corrected line imported again)."""
        return self.stage + "_again"

    def drop(self, cursor):
        if not self.temp:
            cursor.execute(f"DROP TABLE IF EXISTS {self.stage}, {self.resolved}, {self.results}, {self.deltas}, "
                           f"{self.charges}, {self.again}, {self.claims}, {self.raw}")

    @property
    def raw(self) -> str:
        """The lines of a file in the built-in CSV format as read (line number, text), parsed in SQL."""
        return self.stage + "_raw"


STAGE_COLUMNS = ("n bigint, line_no bigint, source text, record_id text, subject text, destination text, "
                 "usage_type text, start_time timestamptz, usage bigint, reason text, message text, raw text, "
                 "old_id uuid")
STAGE_COPY = "n, line_no, source, record_id, subject, destination, usage_type, start_time, usage, reason, message, raw"
RESULT_COLUMNS = ("n bigint, reason text, message text, cost numeric, rating_plan text, matched_destination text, "
                  "free_units bigint, bundle_id uuid")
DELTA_COLUMNS = "subscription_id uuid, bundle_id uuid, period_start date, used bigint"
CLAIM_COLUMNS = ("n bigint PRIMARY KEY, session_id uuid NOT NULL UNIQUE, free_units bigint NOT NULL DEFAULT 0, "
                 "bundle_id uuid")


# --- semi-online billing: calls charged online -----------------------------------------------------------

_online_chargers: list = []


def register_online_charging(charger) -> None:
    """Declare an online charger (an app above rating: `charging`) to the usage pipeline.

    `charger.claim(cursor, *, resolved, claims)` inserts into the table named `claims`
    (n, session_id, free_units, bundle_id) the rows of the table `resolved` (reason = '') it
    charged online already; `charger.reconcile(matches, *, actor, batch)` gets, in the
    persisting transaction, one dict per claimed record that rated (usage_record, session,
    cost, usage, currency, source, record_id) and books the differences.
    """
    if charger not in _online_chargers:
        _online_chargers.append(charger)


def _claim_online(cursor, tables: Tables, *, mode: str) -> int:
    tables.create(cursor, tables.claims, CLAIM_COLUMNS)
    if mode not in ("import", "reprocess") or not _online_chargers:
        return 0
    for charger in _online_chargers:
        charger.claim(cursor, resolved=tables.resolved, claims=tables.claims)
    cursor.execute(f"ANALYZE {tables.claims}")
    cursor.execute(f"SELECT count(*) FROM {tables.claims}")
    return cursor.fetchone()[0]


def _reconcile_online(cursor, tables: Tables, batch, *, mode: str, actor) -> int:
    """Hand the claimed records that rated back to their charger (it books the differences)."""
    if mode not in ("import", "reprocess") or not _online_chargers:
        return 0
    match = "u.id = r.old_id" if mode == "reprocess" else (
        "u.source = r.source AND u.record_id = r.record_id AND u.status = 'rated' AND u.batch_id = %(batch)s")
    cursor.execute(f"""
        SELECT u.id, cl.session_id, u.cost, u.usage, u.currency, u.source, u.record_id
        FROM {tables.claims} cl JOIN {tables.resolved} r ON r.n = cl.n
        JOIN rating_usagerecord u ON {match} AND u.online_session = cl.session_id
        ORDER BY cl.session_id""", {"batch": batch.pk})
    matches = [dict(zip(("usage_record", "session", "cost", "usage", "currency", "source", "record_id"), row))
               for row in cursor.fetchall()]
    if matches:
        for charger in _online_chargers:
            charger.reconcile(matches, actor=actor, batch=batch)
    return len(matches)


def _stage_line(n, row) -> str:
    (line_no, source, record_id, subject, destination, usage_type, start, usage, reason, message, raw) = row
    return (f"{n}\t{line_no}\t{_esc(source)}\t{_esc(record_id)}\t{_esc(subject)}\t{_esc(destination)}\t"
            f"{_esc(usage_type)}\t{_esc(start)}\t{_esc(usage)}\t{_esc(reason)}\t{_esc(message)}\t{_esc(raw)}\n")


# --- formats and measures ------------------------------------------------------------------------------

def measures() -> dict[str, str]:
    return dict(UsageType.objects.filter(archived_at__isnull=True).values_list("code", "measure"))


def format_spec(code: str) -> dict:
    """The spec of a built-in or declared format (`unknown_format` otherwise)."""
    found = builtin().get(code)
    if found is not None:
        return found
    row = UsageFormat.objects.filter(code=code, archived_at__isnull=True).first()
    if row is None:
        known = sorted(set(builtin()) | set(UsageFormat.objects.filter(archived_at__isnull=True)
                                            .values_list("code", flat=True)))
        raise NotFound(f"No usage format {code!r} (known: {', '.join(known)}).", code="unknown_format",
                       fields={"format": ["Unknown format."]})
    return row.spec


def load_format_file(path) -> dict:
    """A format declared in a JSON file (`--format-file`)."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            spec = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ValidationFailed(f"Cannot read the format file: {exc}", code="invalid_format") from None
    return spec


# --- entry points ---------------------------------------------------------------------------------------

def import_file(stream, *, format="csv", spec=None, actor, file_name="", file_size=0, source="",
                parallel: bool | None = None) -> UsageBatch:
    """Import a usage file (a binary stream, read in chunks): the batch with its counts.

    `spec` (a format declaration) replaces the named `format`. `source` is used for
    records whose format gives no source. Idempotent per record: importing the same file
    again finds every record a duplicate. `parallel` (default: when not inside a
    transaction) rates with worker processes when the file is large.
    """
    custom = spec is not None
    spec = spec if custom else format_spec(format)
    try:
        parser = LineParser(spec, measures=measures())
    except FormatError as exc:
        raise ValidationFailed(f"Format: {exc}", code="invalid_format") from None
    default_source = source or spec.get("defaults", {}).get("source", "") or format
    batch = _new_batch(kind=UsageBatch.Kind.FILE, format_code="(file)" if custom else format,
                       file_name=file_name, file_size=file_size, actor=actor)

    def stage(cursor, tables):
        if not custom and format == "csv":
            return _stage_sql(cursor, tables, stream, parser, default_source)
        return _stage_stream(cursor, tables, stream, parser, default_source)

    return _run(batch, stage, mode="import", actor=actor, parallel=parallel)


def import_records(records: list[dict], *, actor, source="api") -> UsageBatch:
    """Import a JSON batch of usage events (the partner API): same rules as a file.

    Each record: record_id, subject, start_time (ISO 8601), usage (number or text such as
    "45s", "10MB"), optional source, destination, type (default voice).
    """
    if not isinstance(records, list):
        raise ValidationFailed("records is a list.", code="invalid_batch", fields={"records": ["A list."]})
    batch = _new_batch(kind=UsageBatch.Kind.API, format_code="json", actor=actor)
    known = measures()
    parser = LineParser(builtin()["csv"], measures=known)

    def stage(cursor, tables):
        with cursor.copy(f"COPY {tables.stage} ({STAGE_COPY}) FROM STDIN") as copy:
            for i, rec in enumerate(records, start=1):
                copy.write(_stage_line(i, _json_row(i, rec, parser, source)))
        return len(records)

    return _run(batch, stage, mode="import", actor=actor, parallel=False)


def _json_row(i: int, rec, parser: LineParser, default_source: str) -> tuple:
    import json

    raw = json.dumps(rec, ensure_ascii=False, sort_keys=True, default=str) if not isinstance(rec, str) else rec
    if not isinstance(rec, dict):
        return (i, "", "line-sha1:" + __import__("hashlib").sha1(raw.encode()).hexdigest(), "", "", "", None, None,
                MALFORMED, "a record is a JSON object", raw)

    def text(name, limit):
        value = rec.get(name)
        return "" if value is None else str(value).strip()[:limit]

    unknown = sorted(set(rec) - {"record_id", "source", "subject", "destination", "type", "start_time", "usage"})
    record_id, source = text("record_id", 128), text("source", 64) or default_source
    subject, destination = text("subject", 100), text("destination", 64)
    usage_type = text("type", 32) or "voice"
    base = (i, source, record_id, subject, destination, usage_type)
    if not record_id:
        return (i, "", "line-sha1:" + __import__("hashlib").sha1(raw.encode()).hexdigest(), subject, destination,
                usage_type, None, None, MALFORMED, "the record id is empty", raw)
    if unknown:
        return base + (None, None, MALFORMED, f"unknown fields: {', '.join(unknown)}", raw)
    if not subject:
        return base + (None, None, MALFORMED, "the subject is empty", raw)
    try:
        start = parser.parse_time(text("start_time", 64))
    except ValueError:
        return base + (None, None, MALFORMED, f"cannot read the start time {rec.get('start_time')!r}", raw)
    measure = parser.measures.get(usage_type)
    if measure is None:
        return base + (start.isoformat(), None, "unknown_usage_type", f"unknown usage type {usage_type!r}", raw)
    usage_value = rec.get("usage")
    if isinstance(usage_value, float):
        return base + (start.isoformat(), None, MALFORMED, "give the usage as an integer or a text, not a float", raw)
    try:
        usage = parser.parse_usage(str(usage_value if usage_value is not None else ""), measure)
    except ValueError as exc:
        return base + (start.isoformat(), None, MALFORMED, str(exc), raw)
    if usage < 0:
        return base + (start.isoformat(), usage, "negative_usage", f"negative usage {usage_value!r}", raw)
    return base + (start.isoformat(), usage, "", "", raw)


def reprocess(*, actor, ids=None, reasons=None, batch=None, include_filtered=False) -> UsageBatch:
    """Run rejected records through resolution and rating again (after a fix of a tariff,
    a subscription, or the record itself). Those that now rate are rated and posted; the
    others stay rejected with their new reason and one more attempt. Filtered records are
    left alone unless `include_filtered`."""
    conditions, params = ["u.status = 'rejected'"], {}
    if ids is not None:
        conditions.append("u.id = ANY(%(ids)s::uuid[])")
        params["ids"] = [str(i) for i in ids]
    if reasons:
        conditions.append("u.reason = ANY(%(reasons)s)")
        params["reasons"] = list(reasons)
    if batch is not None:
        conditions.append("u.batch_id = %(batch)s")
        params["batch"] = batch.pk
    if not include_filtered:
        conditions.append("u.reason <> 'filtered'")
    where = " AND ".join(conditions)
    run = _new_batch(kind=UsageBatch.Kind.REPROCESS, format_code="", actor=actor)

    def stage(cursor, tables):
        cursor.execute(f"""
            INSERT INTO {tables.stage} (n, line_no, source, record_id, subject, destination, usage_type, start_time,
                                       usage, reason, message, raw, old_id)
            SELECT row_number() OVER (ORDER BY u.id), u.line_no, u.source, u.record_id, u.subject, u.destination,
                   u.usage_type, u.start_time, u.usage,
                   CASE WHEN u.reason = 'filtered' AND NOT %(include_filtered)s THEN 'filtered'
                        WHEN u.start_time IS NULL OR u.usage IS NULL OR u.subject = '' THEN 'malformed'
                        WHEN u.usage < 0 THEN 'negative_usage'
                        WHEN ut.code IS NULL THEN 'unknown_usage_type' ELSE '' END,
                   CASE WHEN u.start_time IS NULL OR u.usage IS NULL OR u.subject = '' THEN u.message ELSE '' END,
                   u.raw, u.id
            FROM rating_usagerecord u
            LEFT JOIN rating_usagetype ut ON ut.code = u.usage_type AND ut.archived_at IS NULL
            WHERE {where}""", {**params, "include_filtered": include_filtered})
        return cursor.rowcount

    return _run(run, stage, mode="reprocess", actor=actor, parallel=False)


@transaction.atomic
def correct(record: UsageRecord, *, actor, reprocess_now=True, **changes):
    """Correct a rejected record's fields (subject, destination, type, start time, usage —
    usage as the operator writes it, e.g. 45s or 10MB) and reprocess it. Audited."""
    if record.status != UsageRecord.Status.REJECTED:
        raise DomainError("Only rejected records are corrected; re-rate rated ones.", code="not_rejected", status=409)
    allowed = {"subject", "destination", "usage_type", "start_time", "usage"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed(f"Unknown fields: {', '.join(sorted(unknown))}.", code="unknown_field")
    changes = {k: v for k, v in changes.items() if v is not None and v != ""}
    if "usage" in changes and not isinstance(changes["usage"], int):
        usage_type = changes.get("usage_type", record.usage_type)
        from .selectors import measure_of

        try:
            changes["usage"] = parse_quantity(changes["usage"], measure_of(usage_type))
        except QuantityError as exc:
            raise ValidationFailed(str(exc), code="invalid_quantity", fields={"usage": [str(exc)]}) from None
    if isinstance(changes.get("start_time"), dt.datetime) and changes["start_time"].tzinfo is None:
        raise ValidationFailed("Give the start time with a time zone.", code="naive_time",
                               fields={"start_time": ["With a time zone."]})
    record = recorded.update(record, actor=actor, action="correct", **changes)
    if reprocess_now:
        reprocess(actor=actor, ids=[record.pk], include_filtered=True)
        record.refresh_from_db()
    return record


def rerate(*, actor, date_from: dt.datetime, date_to: dt.datetime, billing_account=None) -> RerateRun:
    """Price the rated usage of [date_from, date_to) again with today's plans and bundles,
    and book only the differences: one ledger transfer per prepaid account whose total
    changed (`rerate:<run>:<account>:<service type>`), a trace line per changed record
    with its old and new cost. Records that no longer rate keep their price (counted
    as `unratable`)."""
    if date_to <= date_from:
        raise ValidationFailed("The period ends after it starts.", code="invalid_period",
                               fields={"date_to": ["After the start."]})
    run = RerateRun(date_from=date_from, date_to=date_to, billing_account=billing_account,
                    actor=recorded.actor_label(actor)[:150])
    params = {"from": date_from, "to": date_to, "account": billing_account.pk if billing_account else None}

    def stage(cursor, tables):
        cursor.execute(f"""
            INSERT INTO {tables.stage} (n, line_no, source, record_id, subject, destination, usage_type, start_time,
                                       usage, reason, message, raw, old_id)
            SELECT row_number() OVER (ORDER BY u.id), u.line_no, u.source, u.record_id, u.subject, u.destination,
                   u.usage_type, u.start_time, u.usage, '', '', '', u.id
            FROM rating_usagerecord u
            WHERE u.status = 'rated' AND u.start_time >= %(from)s AND u.start_time < %(to)s
              AND (%(account)s::uuid IS NULL OR u.billing_account_id = %(account)s::uuid)""", params)
        return cursor.rowcount

    with transaction.atomic():
        run.save(force_insert=True)
        _run(run, stage, mode="rerate", actor=actor, parallel=False)
    run.refresh_from_db()
    return run


# --- the pipeline ---------------------------------------------------------------------------------------

def _new_batch(*, kind, format_code, actor, file_name="", file_size=0) -> UsageBatch:
    batch = UsageBatch(kind=kind, format_code=format_code[:32], file_name=str(file_name)[:255],
                       file_size=file_size or 0, actor=recorded.actor_label(actor)[:150], started_at=now())
    batch.save(force_insert=True)
    return batch


def _run(batch, stage, *, mode: str, actor, parallel: bool | None):
    """Stage, resolve, rate, persist. In a caller's transaction everything runs inside it."""
    in_transaction = connection.in_atomic_block
    if parallel is None:
        parallel = not in_transaction
    if in_transaction:
        parallel = False
    timings: dict[str, float] = {}
    tables = Tables.make(parallel=parallel)
    try:
        if not parallel:
            with transaction.atomic():
                _pipeline(batch, stage, tables, mode=mode, actor=actor, timings=timings, parallel=False)
        else:
            _pipeline(batch, stage, tables, mode=mode, actor=actor, timings=timings, parallel=True)
    except Exception as exc:
        if isinstance(batch, UsageBatch) and not in_transaction:
            UsageBatch.objects.filter(pk=batch.pk).update(status=UsageBatch.Status.FAILED, finished_at=now(),
                                                          error=str(exc)[:2000])
        raise
    finally:
        if parallel:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock_all()")
                tables.drop(cursor)
    if isinstance(batch, UsageBatch):
        batch.refresh_from_db()
    return batch


def _pipeline(batch, stage, tables: Tables, *, mode, actor, timings, parallel):
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        tables.create(cursor, tables.stage, STAGE_COLUMNS)
        read = stage(cursor, tables)
        cursor.execute(f"SELECT count(*) FROM {tables.stage}")
        staged = cursor.fetchone()[0]
        if read is not None and read != staged:  # pragma: no cover - a staging bug must not lose records
            raise RuntimeError(f"{read} records read but {staged} staged")
        # Statistics for the planner: without them it guesses a handful of rows and joins
        # the working tables with nested loops.
        cursor.execute(f"ANALYZE {tables.stage}")
        timings["stage"] = round(time.perf_counter() - t0, 3)
        timings.update(tables.notes)
        t0 = time.perf_counter()
        if parallel:
            cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        else:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        cursor.execute("SET LOCAL work_mem = '128MB'") if not parallel else cursor.execute("SET work_mem = '128MB'")
        duplicates = _resolve(cursor, tables, mode=mode)
        _claim_online(cursor, tables, mode=mode)
        timings["resolve"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        context = _RatingContext.load(cursor, tables, mode=mode)
        tables.create(cursor, tables.results, RESULT_COLUMNS)
        tables.create(cursor, tables.deltas, DELTA_COLUMNS)
    rated_stats = _rate_all(tables, context, parallel=parallel)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {tables.results}")
    timings["rate"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    with transaction.atomic():
        with connection.cursor() as cursor:
            if mode == "rerate":
                _finish_rerate(cursor, tables, batch, actor=actor)
            else:
                _finish_import(cursor, tables, batch, mode=mode, staged=staged, duplicates=duplicates, actor=actor,
                               timings=timings)
    timings["persist"] = round(time.perf_counter() - t0, 3)
    timings.update(rated_stats)
    if isinstance(batch, UsageBatch):
        UsageBatch.objects.filter(pk=batch.pk).update(timings=timings)


def _read_header(stream, parser: LineParser) -> tuple[int, int]:
    """Consume the lines before the data (skipped lines, comments, the header); return the
    byte offset and the line number of the first data line."""
    skip = parser.skip_lines
    comment = parser.comment.encode() if parser.comment else None
    header_seen = not parser.needs_header
    line_no = 0
    try:
        offset = stream.tell()
    except (AttributeError, OSError):
        offset = 0
    while not header_seen or skip:
        raw = stream.readline(MAX_HEADER)
        if not raw:
            break
        line_no += 1
        offset += len(raw)
        raw = raw.rstrip(b"\r\n")
        if skip:
            skip -= 1
            continue
        if not raw.strip() or (comment and raw.startswith(comment)):
            continue
        header_seen = True
        parser.feed_header(raw)
        if parser.header_problem:
            raise ValidationFailed(f"Line {line_no}: {parser.header_problem}; nothing was imported.",
                                   code="invalid_header", fields={"file": [parser.header_problem]})
    return offset, line_no + 1


def _copy_lines(copy, lines, parser: LineParser, default_source: str) -> int:
    """Parse (line number, bytes) pairs into an open COPY; blank and comment lines are not records."""
    comment = parser.comment.encode() if parser.comment else None
    parse = parser.parse
    count = 0
    buffer: list[str] = []
    for line_no, raw in lines:
        if not raw.strip() or (comment and raw.startswith(comment)):
            continue
        count += 1
        buffer.append(_stage_line(line_no, parse(line_no, raw, default_source)))
        if len(buffer) >= 5000:
            copy.write("".join(buffer))
            buffer.clear()
    if buffer:
        copy.write("".join(buffer))
    return count


def _stage_stream(cursor, tables: Tables, stream, parser: LineParser, default_source: str) -> int:
    """Parse the stream line by line into the staging table (COPY, in chunks). A large file
    on disk is cut in two at a line end and parsed by two processes when the tables allow."""
    offset, first_line = _read_header(stream, parser)
    path = getattr(stream, "name", None)
    if (not tables.temp and WORKERS > 1 and isinstance(path, str) and os.path.isfile(path)
            and os.path.getsize(path) - offset >= PARALLEL_MIN_BYTES):
        return _stage_parallel(tables, path, offset, first_line, parser, default_source)
    with cursor.copy(f"COPY {tables.stage} ({STAGE_COPY}) FROM STDIN") as copy:
        return _copy_lines(copy, iter_lines(stream, first_line=first_line), parser, default_source)


# --- the built-in CSV format, parsed by PostgreSQL -------------------------------------------------------
#
# The file's bytes go unchanged into a one-column table (COPY in CSV mode with delimiter and
# quote characters that a clean chunk does not contain, so a line is one value), numbered by an
# identity column set to the chunk's first line. One INSERT … SELECT then stages every line
# that has the plain shape (printable ASCII, no quotes, the header's column count, a record
# id and subject, digits for the usage, an ISO 8601 time that is surely valid) exactly as the
# Python parser would; every other line is handed to the Python parser, so rejections keep
# their reasons and messages. A chunk the COPY could not take as it is (NUL, the control
# characters used as delimiter and quote, CR, the end-of-data marker, invalid UTF-8, a
# runaway line) is parsed in Python line by line.

RAW_COPY = "COPY {raw} (raw) FROM STDIN WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')"
# What str.strip() removes from ASCII text (a plain line is ASCII; CR and LF are not in it).
STRIP = "E' \\t\\x0b\\x0c\\x1c\\x1d\\x1e\\x1f'"
BLANK = "E' \\t\\n\\r\\x0b\\x0c'"  # what bytes.strip() removes
# ISO 8601 times the SQL takes (as digit masks; the fields' ranges are checked apart): seconds,
# up to six decimals, Z or an offset up to ±14:59. Anything else goes to the Python parser.
ISO_HEADS = ["9999-99-99T99:99:99", "9999-99-99 99:99:99"]
ISO_TAILS = [f + z for f in ["", *("." + "9" * k for k in range(1, 7))] for z in ("", "Z", "+99:99", "-99:99")]
PYTHON_PARSE = "(python)"  # a staged line the SQL left to the Python parser
# Days 29–31 only where every year has them (29 February goes to the Python parser).
DAY_OK = ("(substr({t}, 9, 2)::int <= 28 OR (substr({t}, 9, 2)::int <= 30 AND substr({t}, 6, 2) <> '02') "
          "OR substr({t}, 6, 2) IN ('01', '03', '05', '07', '08', '10', '12'))")
TIME_OK = ("left({t}, 1) <> '0' AND substr({t}, 6, 2)::int BETWEEN 1 AND 12 AND substr({t}, 9, 2)::int >= 1 "
           "AND substr({t}, 12, 2)::int <= 23 AND substr({t}, 15, 2)::int <= 59 AND substr({t}, 18, 2)::int <= 59 "
           "AND (right({m}, 6) NOT LIKE '_99:99' OR (substr({t}, length({t}) - 4, 2)::int <= 14 "
           "AND right({t}, 2)::int <= 59))")


def _sql_parsable(parser: LineParser) -> bool:
    """Whether the bound parser's fast path applies (one column per field, ISO times, …): the
    SQL conversion mirrors exactly that path."""
    return (parser._fast is not None and not parser.type_map and not parser.comment
            and parser.time_format == "iso8601" and parser.delimiter not in "\x01\x02'\\"
            and parser.quote in ('"', ""))


def _stage_sql(cursor, tables: Tables, stream, parser: LineParser, default_source: str) -> int:
    offset, first_line = _read_header(stream, parser)
    if not _sql_parsable(parser):
        return _stage_stream_from(cursor, tables, stream, parser, default_source, first_line)
    clock = time.perf_counter()
    raw = tables.raw
    tables.create(cursor, raw, "line_no bigint GENERATED BY DEFAULT AS IDENTITY, raw text")
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'line_no')", [raw])
    sequence = cursor.fetchone()[0]
    comment = parser.comment.encode() if parser.comment else None
    count = 0
    pending: list[str] = []
    line_no = first_line  # the number of the first line of the next chunk
    rest = b""

    def python_lines(body: bytes, first: int) -> int:
        staged = 0
        for i, line in enumerate(body.split(b"\n")):
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line.strip() or (comment and line.startswith(comment)):
                continue
            staged += 1
            tables.notes["stage_python_lines"] = tables.notes.get("stage_python_lines", 0) + 1
            pending.append(_stage_line(first + i, parser.parse(first + i, line, default_source)))
        return staged

    def send(body: bytes, first: int, lines: int) -> int:
        """`body`: whole lines, each ending with a line feed."""
        clean = not any(c in body for c in (b"\x00", b"\x01", b"\x02", b"\r", b"\\."))
        if clean:
            try:
                body.decode()
            except UnicodeDecodeError:
                clean = False
        if not clean:
            return python_lines(body[:-1], first)
        cursor.execute("SELECT setval(%s, %s, false)", [sequence, first])
        with cursor.copy(RAW_COPY.format(raw=raw)) as copy:
            copy.write(body)
        return 0

    while True:
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            break
        data = rest + chunk if rest else chunk
        cut = data.rfind(b"\n") + 1
        body, rest = data[:cut], data[cut:]
        if len(rest) > MAX_LINE * 4:  # a runaway line: cut it, it is reported as too long (as iter_lines does)
            lines = body.count(b"\n") + 1
            count += python_lines(data, line_no)
            line_no += lines
            rest = b""
            continue
        if body:
            lines = body.count(b"\n")
            count += send(body, line_no, lines)
            line_no += lines
    if rest:
        count += send(rest + b"\n", line_no, 1)
    if pending:
        with cursor.copy(f"COPY {tables.stage} ({STAGE_COPY}) FROM STDIN") as copy:
            copy.write("".join(pending))
        pending.clear()
    tables.notes["stage_copy"] = round(time.perf_counter() - clock, 3)
    clock = time.perf_counter()
    count += _convert_raw(cursor, tables, parser, default_source)
    cursor.execute(f"DROP TABLE {raw}")
    tables.notes["stage_convert"] = round(time.perf_counter() - clock, 3)
    return count


def _convert_raw(cursor, tables: Tables, parser: LineParser, default_source: str) -> int:
    """Stage the raw lines: the plain ones in SQL, the others through the Python parser."""
    raw = tables.raw
    pos = {f: p[0] + 1 for f, p in parser.getters.items()}  # SQL arrays count from 1
    defaults = parser.defaults
    params = {"expected": parser.expected, "max_line": MAX_LINE, "default_source": default_source,
              "iso_heads": ISO_HEADS, "iso_tails": ISO_TAILS}

    def field(name):
        p = pos.get(name)
        params[f"d_{name}"] = defaults.get(name, "")
        if p is None:
            return f"%(d_{name})s::text"
        return f"coalesce(nullif(btrim(v[{p}], {STRIP}), ''), %(d_{name})s)"

    measures = [(code, measure) for code, measure in parser.measures.items()]
    params["types"] = [c for c, _ in measures]
    params["measures"] = [m for _, m in measures]
    params["time_unit"], params["data_unit"] = parser.time_unit, parser.data_unit
    # A quoted empty field ("", as PostgreSQL's own CSV export writes one) is an empty value; a
    # line with any other quoting goes to the Python parser.
    quote = "(strpos(raw, %(quote)s) = 0 OR strpos(array_to_string(v, %(delimiter)s), %(quote)s) = 0) AND " \
        if parser.quote else ""
    unquote = "CASE WHEN strpos(raw, %(quote)s) = 0 THEN v0 ELSE array_replace(v0, %(quoted_empty)s, '') END" \
        if parser.quote else "v0"
    params["quote"], params["quoted_empty"] = parser.quote, parser.quote * 2
    start = "btrim(v[{}], {})".format(pos["start_time"], STRIP) if "start_time" in pos else "%(d_start_time)s::text"
    params["d_start_time"] = defaults.get("start_time", "")
    params["zone"] = str(parser.zone)
    usage = f"btrim(v[{pos['usage']}], {STRIP})"
    query = f"""
        INSERT INTO {tables.stage} ({STAGE_COPY})
        SELECT line_no, line_no, left(coalesce(nullif(src, ''), %(default_source)s), 64), left(rid, 128),
               left(subj, 100), left(dest, 64), left(typ, 32),
               CASE WHEN NOT plain THEN NULL WHEN right(t, 1) = 'Z' OR substr(t, length(t) - 5, 1) IN ('+', '-') THEN t::timestamptz
                    ELSE t::timestamp AT TIME ZONE %(zone)s END,
               CASE WHEN plain THEN u::bigint * CASE measure WHEN 'time' THEN %(time_unit)s::bigint
                                                 WHEN 'bytes' THEN %(data_unit)s::bigint ELSE 1 END END,
               CASE WHEN plain THEN '' ELSE %(python)s END, '', raw
        FROM (
          SELECT line_no, raw, v, rid, subj, src, dest, typ, t, u, m.measure, tm,
                 {quote}octet_length(raw) = char_length(raw) AND octet_length(raw) <= %(max_line)s
                 AND cardinality(v) = %(expected)s AND rid <> '' AND subj <> '' AND m.measure IS NOT NULL
                 AND u <> '' AND translate(u, '0123456789', '') = ''
                 AND length(u) <= CASE m.measure WHEN 'time' THEN 9 ELSE 12 END
                 AND left(tm, 19) = ANY(%(iso_heads)s) AND substr(tm, 20) = ANY(%(iso_tails)s)
                 AND {TIME_OK.format(t="t", m="tm")} AND {DAY_OK.format(t="t")} AS plain
          FROM (SELECT line_no, raw, v, {field("record_id")} AS rid, {field("subject")} AS subj,
                       {field("source")} AS src, {field("destination")} AS dest, {field("type")} AS typ,
                       {start} AS t, {usage} AS u, translate({start}, '0123456789', '9999999999') AS tm
                FROM (SELECT line_no, raw, {unquote} AS v
                      FROM (SELECT line_no, raw, string_to_array(raw, %(delimiter)s) AS v0 FROM {raw}
                            WHERE raw IS NOT NULL AND btrim(raw, {BLANK}) <> '' OFFSET 0) r00 OFFSET 0) r0 OFFSET 0) r1
          LEFT JOIN unnest(%(types)s::text[], %(measures)s::text[]) AS m(code, measure) ON m.code = r1.typ
          OFFSET 0) l"""
    params["delimiter"] = parser.delimiter
    params["python"] = PYTHON_PARSE
    cursor.execute(query, params)
    staged = cursor.rowcount
    cursor.execute(f"DELETE FROM {tables.stage} WHERE reason = %s RETURNING line_no, raw", [PYTHON_PARSE])
    others = cursor.fetchall()
    tables.notes["stage_python_lines"] = tables.notes.get("stage_python_lines", 0) + len(others)
    if others:
        with cursor.copy(f"COPY {tables.stage} ({STAGE_COPY}) FROM STDIN") as copy:
            for line_no, text in sorted(others):
                copy.write(_stage_line(line_no, parser.parse(line_no, text.encode(), default_source)))
    return staged


def _stage_stream_from(cursor, tables: Tables, stream, parser: LineParser, default_source: str,
                       first_line: int) -> int:
    with cursor.copy(f"COPY {tables.stage} ({STAGE_COPY}) FROM STDIN") as copy:
        return _copy_lines(copy, iter_lines(stream, first_line=first_line), parser, default_source)


def _stage_parallel(tables: Tables, path: str, offset: int, first_line: int, parser, default_source) -> int:
    size = os.path.getsize(path)
    cuts = [offset]
    lines_before = [first_line]
    with open(path, "rb") as fh:
        for k in range(1, WORKERS):
            fh.seek(max(offset + (size - offset) * k // WORKERS - 1, cuts[-1]))
            fh.readline()  # to the end of the line the cut falls in
            cuts.append(fh.tell())
        cuts.append(size)
        # Line numbers of each part: count the line ends before its start.
        fh.seek(offset)
        position, counted = offset, first_line
        for k in range(1, WORKERS):
            while position < cuts[k]:
                chunk = fh.read(min(1 << 22, cuts[k] - position))
                counted += chunk.count(b"\n")
                position += len(chunk)
            lines_before.append(counted)
    parts = [(path, cuts[k], cuts[k + 1], lines_before[k]) for k in range(WORKERS)]
    params = _worker_params()
    _FORK_CONTEXT.update(params=params, tables=tables, parser=parser, default_source=default_source)
    try:
        with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
            counts = pool.map(_stage_worker, parts)
    finally:
        _FORK_CONTEXT.clear()
    return sum(counts)


def _stage_worker(part) -> int:
    import psycopg

    path, start, end, first_line = part
    ctx = _FORK_CONTEXT
    with psycopg.connect(**ctx["params"]) as pg, open(path, "rb") as fh:
        fh.seek(start)
        with pg.cursor() as cursor, cursor.copy(f"COPY {ctx['tables'].stage} ({STAGE_COPY}) FROM STDIN") as copy:
            count = _copy_lines(copy, iter_lines(fh, first_line=first_line, limit=end - start), ctx["parser"],
                                ctx["default_source"])
        pg.commit()
    return count


def _worker_params() -> dict:
    connection.ensure_connection()
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params["autocommit"] = False
    return params


RESOLVE_SQL = """
SELECT s.n, s.line_no, s.source, s.record_id, s.subject, s.destination, s.usage_type, s.start_time, s.usage,
       s.raw, s.old_id,
       a.subscription_id, sub.billing_account_id, tp.tariff_id, ba.currency, ba.payment_mode, ba.ledger_account_id,
       st.code AS service_type, rt.code AS tenant,
       coalesce(tr.categories ->> s.usage_type, s.usage_type) AS category,
       coalesce(nullif(tr.subject, ''), s.subject) AS rating_subject,
       rp.code AS rating_plan, tr.rounding_decimals AS rounding, ut.split_by_time AS split,
       CASE WHEN s.reason <> '' THEN s.reason
            WHEN a.subscription_id IS NULL THEN 'unknown_subscriber'
            WHEN sub.activated_on IS NULL OR s.day < sub.activated_on
                 OR (sub.terminated_on IS NOT NULL AND s.day > sub.terminated_on)
                 OR tp.tariff_id IS NULL THEN 'outside_subscription'
            WHEN tr.id IS NULL THEN 'tariff_not_rated'
            ELSE '' END AS reason,
       CASE WHEN s.reason <> '' THEN s.message
            WHEN a.subscription_id IS NULL THEN 'no subscription held ' || s.subject || ' at ' || s.start_time::text
            WHEN sub.activated_on IS NULL OR s.day < sub.activated_on
                 OR (sub.terminated_on IS NOT NULL AND s.day > sub.terminated_on) OR tp.tariff_id IS NULL
              THEN 'subscription ' || sub.number || ' was not in service on ' || s.day::text
            WHEN tr.id IS NULL THEN 'tariff ' || t.code || ' has no rating'
            ELSE '' END AS message
FROM (SELECT s.*, (s.start_time AT TIME ZONE %(tz)s)::date AS day FROM {stage} s {dedupe}) s
LEFT JOIN subscriptions_identifierassignment a
       ON s.reason = '' AND a.value = s.subject AND a.valid_from <= s.start_time
      AND (a.valid_until IS NULL OR a.valid_until > s.start_time)
LEFT JOIN subscriptions_subscription sub ON sub.id = a.subscription_id
LEFT JOIN subscriptions_tariffperiod tp ON tp.subscription_id = sub.id AND tp.valid_from <= s.day
      AND (tp.valid_until IS NULL OR tp.valid_until > s.day)
LEFT JOIN catalog_tariff t ON t.id = tp.tariff_id
LEFT JOIN catalog_service svc ON svc.id = t.service_id
LEFT JOIN catalog_servicetype st ON st.id = svc.service_type_id
LEFT JOIN rating_tariffrating tr ON tr.tariff_id = tp.tariff_id AND tr.archived_at IS NULL
LEFT JOIN rating_ratingtenant rt ON rt.id = tr.tenant_id
LEFT JOIN rating_ratingplan rp ON rp.id = tr.rating_plan_id
LEFT JOIN ledger_billingaccount ba ON ba.id = sub.billing_account_id
LEFT JOIN rating_usagetype ut ON ut.code = s.usage_type
"""

DEDUPE_SQL = "WHERE s.n NOT IN (SELECT n FROM {dups})"

# Staged records that are duplicates: of a record already stored (probed through the
# unique index, whose predicate leaves superseded rejections out), or of an earlier line
# of the same batch.
DUPLICATES_SQL = """
SELECT s.n FROM {stage} s
WHERE EXISTS (SELECT 1 FROM rating_usagerecord u WHERE u.source = s.source AND u.record_id = s.record_id
              AND u.status <> 'superseded')
UNION
SELECT s.n FROM {stage} s JOIN (
  SELECT source, record_id, min(n) AS keep FROM {stage} GROUP BY source, record_id HAVING count(*) > 1) d
  ON d.source = s.source AND d.record_id = s.record_id AND s.n <> d.keep
"""


# Of those duplicates, the ones that are not: the first line of the batch for a stored
# *rejected* record, with a raw line different from the stored one — a corrected line
# imported again. It is rated (or rejected) anew; the stored rejection is superseded. The
# same line sent again is a retry, and stays a duplicate.
AGAIN_SQL = """
SELECT s.n, u.id AS old_id FROM {dups} d
JOIN {stage} s ON s.n = d.n
JOIN rating_usagerecord u ON u.source = s.source AND u.record_id = s.record_id AND u.status = 'rejected'
WHERE u.raw IS DISTINCT FROM s.raw
  AND NOT EXISTS (SELECT 1 FROM {stage} e WHERE e.source = s.source AND e.record_id = s.record_id AND e.n < s.n)
"""


def _resolve(cursor, tables: Tables, *, mode: str) -> int:
    """Build the resolved table; return how many staged records were duplicates."""
    tz = settings.TIME_ZONE
    dedupe = ""
    if mode == "import":
        dups = tables.stage + "_dups"
        tables.create_as(cursor, dups, DUPLICATES_SQL.format(stage=tables.stage))
        tables.create_as(cursor, tables.again, AGAIN_SQL.format(dups=dups, stage=tables.stage))
        if cursor.rowcount:
            cursor.execute(f"DELETE FROM {dups} WHERE n IN (SELECT n FROM {tables.again})")
        cursor.execute(f"ANALYZE {dups}")
        dedupe = DEDUPE_SQL.format(dups=dups)
    # Every staged record joins the few subscription, tariff and account rows it needs:
    # hash joins, whatever the planner guesses about how many records survive deduplication.
    cursor.execute("SET enable_nestloop = off")
    try:
        tables.create_as(cursor, tables.resolved, RESOLVE_SQL.format(stage=tables.stage, dedupe=dedupe), {"tz": tz})
    finally:
        cursor.execute("RESET enable_nestloop")
    if mode == "import":
        cursor.execute(f"DROP TABLE IF EXISTS {dups}")
    cursor.execute(f"SELECT count(*), count(DISTINCT n) FROM {tables.resolved}")
    rows, distinct = cursor.fetchone()
    if rows != distinct:
        # The same value held under two identifier kinds at once: say so, match neither.
        cursor.execute(f"""
            DELETE FROM {tables.resolved} r USING (
              SELECT n, min(ctid) AS keep FROM {tables.resolved} GROUP BY n HAVING count(*) > 1) a
            WHERE r.n = a.n AND r.ctid <> a.keep""")
        cursor.execute(f"""
            UPDATE {tables.resolved} SET reason = 'ambiguous_subscriber', subscription_id = NULL,
                   billing_account_id = NULL, tariff_id = NULL, tenant = NULL,
                   message = 'several subscriptions held ' || subject || ' at ' || start_time::text
            WHERE n IN (SELECT n FROM {tables.resolved} r2 WHERE r2.reason = '' AND EXISTS (
                SELECT 1 FROM subscriptions_identifierassignment a WHERE a.value = r2.subject
                AND a.valid_from <= r2.start_time AND (a.valid_until IS NULL OR a.valid_until > r2.start_time)
                AND a.subscription_id <> r2.subscription_id))""")
    cursor.execute(f"SELECT count(*) FROM {tables.stage}")
    staged = cursor.fetchone()[0]
    cursor.execute(f"SELECT count(*) FROM {tables.resolved}")
    resolved = cursor.fetchone()[0]
    cursor.execute(f"ANALYZE {tables.resolved}")
    return staged - resolved


# --- rating -----------------------------------------------------------------------------------------------

@dataclass
class _BundleSpec:
    id: str
    usage_type: str
    allowance: int
    period: str
    destinations: frozenset


@dataclass
class _RatingContext:
    plans: dict = field(default_factory=dict)  # tenant code -> TariffPlan
    bundles: dict = field(default_factory=dict)  # tariff id -> [_BundleSpec]
    tz: object = None
    mode: str = "import"
    old_free: dict = field(default_factory=dict)  # (sub, bundle, period) -> units (rerate)

    @classmethod
    def load(cls, cursor, tables: Tables, *, mode: str) -> _RatingContext:
        ctx = cls(tz=ZoneInfo(settings.TIME_ZONE), mode=mode)
        cursor.execute(f"SELECT DISTINCT tenant FROM {tables.resolved} WHERE reason = '' AND tenant IS NOT NULL")
        for (tenant,) in cursor.fetchall():
            ctx.plans[tenant] = plans.plan_for(tenant)
        cursor.execute(f"SELECT DISTINCT tariff_id FROM {tables.resolved} WHERE reason = ''")
        tariffs = [r[0] for r in cursor.fetchall() if r[0] is not None]
        for b in Bundle.objects.filter(tariff_id__in=tariffs, archived_at__isnull=True).order_by("code"):
            ctx.bundles.setdefault(str(b.tariff_id), []).append(
                _BundleSpec(str(b.pk), b.usage_type, b.allowance, b.period, frozenset(b.destinations)))
        if mode == "rerate" and ctx.bundles:
            # The re-rated records give back the free units they used; they are spent again.
            cursor.execute(f"""
                SELECT u.subscription_id::text, u.bundle_id::text, u.start_time, u.free_units, b.period
                FROM rating_usagerecord u JOIN {tables.stage} s ON s.old_id = u.id
                JOIN rating_bundle b ON b.id = u.bundle_id
                WHERE u.free_units > 0""")
            for sub, bundle, start, free, period in cursor.fetchall():
                key = (sub, bundle, period_start(start.astimezone(ctx.tz).date(), period))
                ctx.old_free[key] = ctx.old_free.get(key, 0) + free
        return ctx


def period_start(day: dt.date, period: str) -> dt.date:
    if period == "month":
        return day.replace(day=1)
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    return day


RATE_SELECT = """
SELECT r.n, r.tenant, r.category, r.rating_subject, r.destination,
       (extract(epoch FROM r.start_time) * 1000000)::bigint, r.usage, r.split, r.rating_plan, r.rounding,
       r.subscription_id::text, r.tariff_id::text, r.usage_type, cl.n IS NOT NULL, cl.free_units,
       cl.bundle_id::text
FROM {resolved} r LEFT JOIN {claims} cl ON cl.n = r.n
WHERE r.reason = '' AND {where}
{order}
"""


class _Pricer:
    """Prices resolved rows; keeps the bundle counters of the subscriptions it sees."""

    def __init__(self, context: _RatingContext, cursor):
        self.context = context
        self.cursor = cursor
        self.raters: dict = {}
        self.counters: dict = {}
        self.deltas: dict = defaultdict(int)
        self.loaded_subs: set = set()

    def rater(self, tenant, rounding):
        key = (tenant, rounding)
        found = self.raters.get(key)
        if found is None:
            found = self.raters[key] = CachedRater(self.context.plans[tenant], rounding_decimals=rounding)
        return found

    def _counter(self, sub, bundle, start):
        key = (sub, bundle.id, start)
        used = self.counters.get(key)
        if used is None:
            self.cursor.execute("SELECT used FROM rating_bundlecounter WHERE subscription_id = %s AND bundle_id = %s "
                                "AND period_start = %s", [sub, bundle.id, start])
            row = self.cursor.fetchone()
            used = (row[0] if row else 0) - self.context.old_free.get(key, 0)
            self.counters[key] = used
        return used

    def price(self, row) -> str:
        (n, tenant, category, subject, destination, start_us, usage, split, plan_code, rounding, sub, tariff,
         usage_type, claimed, claimed_free, claimed_bundle) = row
        tz = self.context.tz
        engine_type = "voice" if split else "data"
        try:
            rater = self.rater(tenant, rounding)
            start_ns = start_us * 1000
            result = rater.rate(tenant=tenant, category=category, subject=subject, destination=destination,
                                start_ns=start_ns, tz=tz, usage=usage, usage_type=engine_type,
                                rating_plan_id=plan_code or None)
            free = 0
            bundle_id = None
            bundles = self.context.bundles.get(tariff) if tariff else None
            cost = result.cost
            if claimed:
                # Charged online: the free units are the session's (already on the bundle counter).
                bundles = None
                free = min(claimed_free or 0, usage)
                remaining_usage = usage - free
                bundle_id = claimed_bundle if free else None
            if bundles:
                day = None
                remaining_usage = usage
                for bundle in bundles:
                    if bundle.usage_type != usage_type or (bundle.destinations and
                                                          result.destination_id not in bundle.destinations):
                        continue
                    if day is None:
                        day = engine.rater._to_datetime(start_ns, tz).date()
                    start = period_start(day, bundle.period)
                    used = self._counter(sub, bundle, start)
                    take = min(max(bundle.allowance - used, 0), remaining_usage)
                    if take <= 0:
                        continue
                    self.counters[(sub, bundle.id, start)] = used + take
                    self.deltas[(sub, bundle.id, start)] += take
                    free += take
                    remaining_usage -= take
                    bundle_id = bundle_id or bundle.id
                    if remaining_usage == 0:
                        break
            if free:
                if remaining_usage == 0:
                    cost = Decimal(0)
                else:
                    # The part the bundle does not cover is priced as the rest of the call.
                    rest = rater.rate(tenant=tenant, category=category, subject=subject, destination=destination,
                                      start_ns=start_ns + (free if split else 0), tz=tz, usage=remaining_usage,
                                      usage_type=engine_type, rating_plan_id=plan_code or None)
                    cost = rest.cost
            return (f"{n}\t\t\t{format(cost, 'f')}\t{_esc(result.rating_plan_id)}\t{_esc(result.destination_id)}\t"
                    f"{free}\t{bundle_id or chr(92) + 'N'}\n")
        except engine.RatingError as exc:
            return f"{n}\tno_rate\t{_esc(exc.code + ': ' + exc.message)}\t\\N\t\t\t0\t\\N\n"
        except (ValueError, KeyError, engine.TariffPlanError) as exc:
            return f"{n}\trating_error\t{_esc(str(exc))}\t\\N\t\t\t0\t\\N\n"


def _rate_rows(pg, tables: Tables, context: _RatingContext, *, part=0, parts=1) -> dict:
    """Price this part of the resolved rows; write results and counter deltas. `pg` is psycopg."""
    where = "TRUE" if parts == 1 else f"abs(hashtext(r.subscription_id::text)) %% {parts} = {part}"
    order = "ORDER BY r.subscription_id, r.start_time, r.n" if context.bundles else ""
    stats = {"priced": 0}
    with pg.cursor() as lookup:
        pricer = _Pricer(context, lookup)
        with pg.cursor(name=f"rating_read_{part}_{uuid.uuid4().hex[:8]}") as reader:
            reader.itersize = FETCH
            reader.execute(RATE_SELECT.format(resolved=tables.resolved, claims=tables.claims, where=where,
                                              order=order).replace("%%", "%"))
            with pg.cursor() as writer:
                while True:
                    rows = reader.fetchmany(FETCH)
                    if not rows:
                        break
                    out = [pricer.price(row) for row in rows]
                    with writer.copy(f"COPY {tables.results} (n, reason, message, cost, rating_plan, "
                                     f"matched_destination, free_units, bundle_id) FROM STDIN") as copy:
                        copy.write("".join(out))
                    stats["priced"] += len(rows)
                if pricer.deltas:
                    with writer.copy(f"COPY {tables.deltas} (subscription_id, bundle_id, period_start, used) "
                                     f"FROM STDIN") as copy:
                        for (sub, bundle, start), used in pricer.deltas.items():
                            copy.write_row((sub, bundle, start, used))
    for rater in pricer.raters.values():
        stats["cache_hits"] = stats.get("cache_hits", 0) + rater.hits
        stats["cache_misses"] = stats.get("cache_misses", 0) + rater.misses
        stats["slow_path"] = stats.get("slow_path", 0) + rater.slow
    return stats


_FORK_CONTEXT: dict = {}


def _worker(part: int) -> dict:
    import psycopg

    ctx = _FORK_CONTEXT
    with psycopg.connect(**ctx["params"]) as pg:
        stats = _rate_rows(pg, ctx["tables"], ctx["context"], part=part, parts=ctx["parts"])
        pg.commit()
    usage = __import__("resource").getrusage(__import__("resource").RUSAGE_SELF)
    stats["maxrss_kb"] = usage.ru_maxrss
    return stats


def _rate_all(tables: Tables, context: _RatingContext, *, parallel: bool) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {tables.resolved} WHERE reason = ''")
        todo = cursor.fetchone()[0]
    if not parallel or todo < PARALLEL_MIN_RECORDS or WORKERS < 2:
        with transaction.atomic():  # a server-side cursor lives in a transaction
            connection.ensure_connection()
            return _rate_rows(connection.connection, tables, context)
    _FORK_CONTEXT.update(params=_worker_params(), tables=tables, context=context, parts=WORKERS)
    import gc

    gc.collect()
    gc.freeze()
    try:
        with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
            results = pool.map(_worker, range(WORKERS))
    finally:
        gc.unfreeze()
        _FORK_CONTEXT.clear()
    merged: dict = {"workers": len(results)}
    for stats in results:
        for key, value in stats.items():
            if key == "maxrss_kb":
                merged["worker_maxrss_kb"] = merged.get("worker_maxrss_kb", 0) + value
            else:
                merged[key] = merged.get(key, 0) + value
    return merged


# --- persisting and posting -------------------------------------------------------------------------------

CHARGES_SQL = """
SELECT r.billing_account_id, r.ledger_account_id, r.currency, coalesce(r.service_type, 'usage') AS service_type,
       round(sum(x.cost), 6) AS amount, count(*) AS records
FROM {resolved} r JOIN {results} x ON x.n = r.n
WHERE r.reason = '' AND x.reason = '' AND r.payment_mode = 'prepaid'
  AND NOT EXISTS (SELECT 1 FROM {claims} cl WHERE cl.n = r.n)
GROUP BY 1, 2, 3, 4
"""


def _post_charges(cursor, tables: Tables, *, key_prefix: str, memo: str, actor, reference) -> tuple[int, Decimal]:
    """One transfer per (account, service type) of the charges table with a non-zero amount."""
    from tarifa.ledger import services as ledger

    cursor.execute(f"ALTER TABLE {tables.charges} ADD COLUMN key text, ADD COLUMN revenue_id uuid, "
                   f"ADD COLUMN transfer_id uuid")
    cursor.execute(f"ANALYZE {tables.charges}")
    cursor.execute(f"SELECT DISTINCT service_type, currency FROM {tables.charges} WHERE amount <> 0")
    revenue = {}
    for service_type, currency in cursor.fetchall():
        revenue[(service_type, currency)] = ledger.system_account(f"revenue:{service_type}", currency).pk
    if not revenue:
        return 0, Decimal(0)
    values = ", ".join(["(%s, %s, %s::uuid)"] * len(revenue))
    flat = [v for (st, cur), acc in revenue.items() for v in (st, cur, str(acc))]
    cursor.execute(f"""
        UPDATE {tables.charges} c SET revenue_id = v.account,
               key = %s || c.billing_account_id::text || ':' || c.service_type
        FROM (VALUES {values}) AS v(service_type, currency, account)
        WHERE v.service_type = c.service_type AND v.currency = c.currency AND c.amount <> 0""",
                   [key_prefix, *flat])
    query = f"""
        SELECT CASE WHEN c.amount > 0 THEN c.ledger_account_id ELSE c.revenue_id END,
               CASE WHEN c.amount > 0 THEN c.revenue_id ELSE c.ledger_account_id END,
               abs(c.amount), c.currency, CASE WHEN c.amount > 0 THEN 'charge' ELSE 'adjustment' END, c.key,
               jsonb_build_object('usage', %(reference)s, 'records', c.records, 'service', c.service_type),
               %(reference_type)s, %(reference)s, %(memo)s
        FROM {tables.charges} c WHERE c.amount <> 0"""
    result = ledger.post_transfers_bulk(query=query, params={"reference": str(reference.pk), "memo": memo,
                                                             "reference_type": reference._meta.label_lower},
                                        actor=actor)
    cursor.execute(f"""UPDATE {tables.charges} c SET transfer_id = k.transfer_id FROM ledger_transfer_key k
                       WHERE k.idempotency_key = c.key""")
    cursor.execute(f"SELECT coalesce(sum(amount), 0) FROM {tables.charges} WHERE transfer_id IS NOT NULL")
    return result.staged, cursor.fetchone()[0]


def _evaluate_thresholds(cursor, tables: Tables, actor):
    from tarifa.subscriptions import thresholds

    cursor.execute(f"SELECT DISTINCT billing_account_id FROM {tables.charges} WHERE transfer_id IS NOT NULL")
    accounts = [r[0] for r in cursor.fetchall()]
    if accounts:
        thresholds.evaluate(scope="ba.id = ANY(%(rating_accounts)s::uuid[])",
                            params={"rating_accounts": accounts}, actor=actor)


def _write_deltas(cursor, tables: Tables):
    cursor.execute(f"""
        INSERT INTO rating_bundlecounter (id, subscription_id, bundle_id, period_start, used, updated_at)
        SELECT ledger_uuid7(), subscription_id, bundle_id, period_start, sum(used), %(at)s FROM {tables.deltas}
        GROUP BY subscription_id, bundle_id, period_start
        ON CONFLICT (subscription_id, bundle_id, period_start)
        DO UPDATE SET used = rating_bundlecounter.used + excluded.used, updated_at = excluded.updated_at""",
                   {"at": now()})


# Time-ordered ids for a batch's records without a function call per row: the batch's own
# UUIDv7 (its millisecond and counter) with its 62 random bits plus the record's number —
# unique within the batch, and across batches unless two share a millisecond, a counter
# and overlapping random ranges.
RECORD_ID_SQL = """(%(id_prefix)s || to_hex(8 + ((%(id_rand)s::bigint + r.n) %% 4611686018427387904) / 1152921504606846976)
    || lpad(to_hex(((%(id_rand)s::bigint + r.n) %% 4611686018427387904) %% 1152921504606846976), 15, '0'))::uuid"""


def _record_ids(batch_id) -> dict:
    raw = batch_id.bytes
    return {"id_prefix": raw[:8].hex(), "id_rand": int.from_bytes(raw[8:], "big") & ((1 << 62) - 1)}


def _finish_import(cursor, tables: Tables, batch: UsageBatch, *, mode, staged, duplicates, actor, timings):
    at = now()
    clock = time.perf_counter()

    def lap(name):
        nonlocal clock
        timings[f"persist_{name}"] = round(time.perf_counter() - clock, 3)
        clock = time.perf_counter()

    # A claimed record that did not rate is not the online call's record: charged as usual (not at all).
    cursor.execute(f"""DELETE FROM {tables.claims} cl USING {tables.resolved} r LEFT JOIN {tables.results} x
                       ON x.n = r.n WHERE cl.n = r.n AND coalesce(x.reason, r.reason) <> ''""")
    tables.create_as(cursor, tables.charges, CHARGES_SQL.format(resolved=tables.resolved, results=tables.results,
                                                                claims=tables.claims))
    lap("charges")
    transfers, charged = _post_charges(cursor, tables, key_prefix=f"usage:{batch.pk}:",
                                       memo=f"usage {batch}", actor=actor, reference=batch)
    lap("ledger")
    charge_join = f"""LEFT JOIN {tables.claims} cl ON cl.n = r.n
                      LEFT JOIN {tables.charges} c ON r.payment_mode = 'prepaid' AND coalesce(x.reason, r.reason) = ''
                      AND cl.n IS NULL AND c.billing_account_id = r.billing_account_id
                      AND c.service_type = coalesce(r.service_type, 'usage')"""
    status = "CASE WHEN coalesce(x.reason, r.reason) = '' THEN 'rated' ELSE 'rejected' END"
    params = {"batch": batch.pk, "at": at, **_record_ids(batch.pk)}
    reprocessed = 0
    if mode == "reprocess":
        cursor.execute(f"""
            WITH upd AS (
              UPDATE rating_usagerecord u SET status = {status}, subscription_id = r.subscription_id,
                     billing_account_id = r.billing_account_id, tariff_id = r.tariff_id,
                     rating_plan = coalesce(x.rating_plan, ''), matched_destination = coalesce(x.matched_destination, ''),
                     free_units = coalesce(x.free_units, 0), bundle_id = x.bundle_id, cost = x.cost,
                     currency = coalesce(r.currency, ''), payment_mode = coalesce(r.payment_mode, ''),
                     transfer_id = c.transfer_id, online_session = cl.session_id,
                     rated_at = CASE WHEN coalesce(x.reason, r.reason) = '' THEN %(at)s END,
                     reason = coalesce(x.reason, r.reason), message = coalesce(x.message, r.message),
                     raw = CASE WHEN coalesce(x.reason, r.reason) = '' THEN '' ELSE u.raw END,
                     attempts = u.attempts + 1
              FROM {tables.resolved} r LEFT JOIN {tables.results} x ON x.n = r.n {charge_join}
              WHERE u.id = r.old_id
              RETURNING u.status, u.reason)
            SELECT status, reason, count(*) FROM upd GROUP BY 1, 2""", params)
    else:
        # Corrected lines of stored rejections: the rejection is superseded (kept as it was),
        # so the new record takes its (source, record id).
        cursor.execute(f"""UPDATE rating_usagerecord u SET status = 'superseded' FROM {tables.again} a
                           WHERE u.id = a.old_id AND u.status = 'rejected'""")
        reprocessed = cursor.rowcount
        # A plain insert (no ON CONFLICT: its speculative insertion costs a fifth of the insert).
        # The duplicates were left out above under the advisory lock that every writer of usage
        # records holds; should one slip through all the same, the unique index fails the batch.
        cursor.execute(f"""
            WITH ins AS (
              INSERT INTO rating_usagerecord (id, batch_id, line_no, status, source, record_id, subject, destination,
                  usage_type, start_time, usage, subscription_id, billing_account_id, tariff_id, rating_plan,
                  matched_destination, free_units, bundle_id, cost, currency, payment_mode, transfer_id, rated_at,
                  reason, message, raw, attempts, online_session)
              SELECT {RECORD_ID_SQL}, %(batch)s, r.line_no, {status}, r.source, r.record_id, r.subject, r.destination,
                     r.usage_type, r.start_time, r.usage, r.subscription_id, r.billing_account_id, r.tariff_id,
                     coalesce(x.rating_plan, ''), coalesce(x.matched_destination, ''), coalesce(x.free_units, 0),
                     x.bundle_id, x.cost, coalesce(r.currency, ''), coalesce(r.payment_mode, ''), c.transfer_id,
                     CASE WHEN coalesce(x.reason, r.reason) = '' THEN %(at)s END,
                     coalesce(x.reason, r.reason), coalesce(x.message, r.message),
                     CASE WHEN coalesce(x.reason, r.reason) = '' THEN '' ELSE r.raw END, 1, cl.session_id
              FROM {tables.resolved} r LEFT JOIN {tables.results} x ON x.n = r.n {charge_join}
              RETURNING status, reason)
            SELECT status, reason, count(*) FROM ins GROUP BY 1, 2""", params)
    counts = cursor.fetchall()
    if reprocessed:
        cursor.execute(f"""
            UPDATE rating_usagerecord o SET superseded_by_id = n.id
            FROM {tables.again} a JOIN rating_usagerecord n ON n.batch_id = %(batch)s
            WHERE o.id = a.old_id AND n.source = o.source AND n.record_id = o.record_id
              AND n.status <> 'superseded'""", params)
        if cursor.rowcount != reprocessed:  # pragma: no cover - the advisory lock keeps other writers out
            raise RuntimeError(f"{reprocessed} rejections superseded but {cursor.rowcount} replaced")
    lap("records")
    rated = sum(c for s, _, c in counts if s == "rated")
    rejected = sum(c for s, _, c in counts if s == "rejected")
    reasons = {reason: c for s, reason, c in counts if s == "rejected"}
    cursor.execute(f"SELECT count(*) FROM {tables.resolved}")
    conflicts = cursor.fetchone()[0] - rated - rejected
    duplicates += conflicts
    if rated + rejected + duplicates != staged:  # pragma: no cover - would mean a lost record
        raise RuntimeError(f"counts do not add up: read {staged}, rated {rated}, rejected {rejected}, "
                           f"duplicates {duplicates}")
    _write_deltas(cursor, tables)
    matched = _reconcile_online(cursor, tables, batch, mode=mode, actor=actor)
    lap("online")
    UsageBatch.objects.filter(pk=batch.pk).update(
        status=UsageBatch.Status.DONE, read=staged, rated=rated, rejected=rejected, duplicates=duplicates,
        reprocessed=reprocessed, charged=charged, transfers=transfers, reasons=reasons, finished_at=now(),
        charged_online=matched)
    lap("counters")
    _evaluate_thresholds(cursor, tables, actor)
    lap("thresholds")


def _finish_rerate(cursor, tables: Tables, run: RerateRun, *, actor):
    at = now()
    # What changed: records that rate now with another cost, free units, account or plan.
    tables.create_as(cursor, tables.stage + "_changed", f"""
        SELECT u.id, u.billing_account_id AS old_account, u.payment_mode AS old_mode, u.cost AS old_cost,
               u.online_session,
               u.free_units AS old_free, u.rating_plan AS old_plan,
               r.billing_account_id AS new_account, r.payment_mode AS new_mode, r.ledger_account_id AS new_ledger,
               r.currency, coalesce(r.service_type, 'usage') AS service_type, r.subscription_id, r.tariff_id,
               x.cost AS new_cost, x.free_units AS new_free, x.bundle_id, x.rating_plan AS new_plan,
               x.matched_destination
        FROM {tables.resolved} r JOIN {tables.results} x ON x.n = r.n
        JOIN rating_usagerecord u ON u.id = r.old_id
        WHERE r.reason = '' AND x.reason = ''
          AND (u.cost IS DISTINCT FROM x.cost OR u.free_units <> x.free_units
               OR u.billing_account_id IS DISTINCT FROM r.billing_account_id OR u.rating_plan <> x.rating_plan
               OR u.payment_mode IS DISTINCT FROM r.payment_mode)""")
    changed_table = tables.stage + "_changed"
    cursor.execute(f"SELECT count(*) FROM {tables.resolved}")
    priced = cursor.fetchone()[0]
    cursor.execute(f"""SELECT count(*) FROM {tables.resolved} r LEFT JOIN {tables.results} x ON x.n = r.n
                       WHERE r.reason <> '' OR x.reason <> ''""")
    unratable = cursor.fetchone()[0]
    # Differences per prepaid account: the old cost comes back, the new one is charged.
    tables.create_as(cursor, tables.charges, f"""
        SELECT d.billing_account_id, ba.ledger_account_id, d.currency, d.service_type,
               round(sum(d.amount), 6) AS amount, count(*) AS records
        FROM (SELECT old_account AS billing_account_id, currency, service_type, -old_cost AS amount
              FROM {changed_table} WHERE (old_mode = 'prepaid' OR online_session IS NOT NULL) AND old_cost IS NOT NULL
              UNION ALL
              SELECT new_account, currency, service_type, new_cost FROM {changed_table}
              WHERE new_mode = 'prepaid' OR online_session IS NOT NULL) d
        JOIN ledger_billingaccount ba ON ba.id = d.billing_account_id
        GROUP BY 1, 2, 3, 4""")
    transfers, _charged = _post_charges(cursor, tables, key_prefix=f"rerate:{run.pk}:", memo=f"re-rating {run}",
                                        actor=actor, reference=run)
    cursor.execute(f"""
        INSERT INTO rating_rerateline (id, run_id, record_id, old_cost, new_cost, old_free_units, new_free_units,
                                       old_rating_plan, new_rating_plan, transfer_id)
        SELECT ledger_uuid7(), %(run)s, ch.id, ch.old_cost, ch.new_cost, ch.old_free, ch.new_free, ch.old_plan,
               ch.new_plan, c.transfer_id
        FROM {changed_table} ch
        LEFT JOIN {tables.charges} c ON c.billing_account_id = ch.new_account AND c.service_type = ch.service_type
              AND (ch.new_mode = 'prepaid' OR ch.online_session IS NOT NULL)""", {"run": run.pk})
    # Bundle counters: the re-rated records give back their old free units (the new ones
    # are in the deltas already).
    cursor.execute(f"""
        INSERT INTO {tables.deltas} (subscription_id, bundle_id, period_start, used)
        SELECT u.subscription_id, u.bundle_id,
               CASE b.period WHEN 'month' THEN date_trunc('month', u.start_time AT TIME ZONE %(tz)s)::date
                             WHEN 'week' THEN date_trunc('week', u.start_time AT TIME ZONE %(tz)s)::date
                             ELSE (u.start_time AT TIME ZONE %(tz)s)::date END,
               -u.free_units
        FROM rating_usagerecord u JOIN {tables.stage} s ON s.old_id = u.id JOIN rating_bundle b ON b.id = u.bundle_id
        WHERE u.free_units > 0""", {"tz": settings.TIME_ZONE})
    _write_deltas(cursor, tables)
    cursor.execute(f"""
        UPDATE rating_usagerecord u SET cost = ch.new_cost, free_units = ch.new_free, bundle_id = ch.bundle_id,
               rating_plan = ch.new_plan, matched_destination = ch.matched_destination,
               billing_account_id = ch.new_account, subscription_id = ch.subscription_id, tariff_id = ch.tariff_id,
               payment_mode = ch.new_mode, rated_at = %(at)s
        FROM {changed_table} ch WHERE u.id = ch.id""", {"at": at})
    cursor.execute(f"""SELECT coalesce(sum(old_cost), 0), coalesce(sum(new_cost), 0), count(*)
                       FROM {changed_table}""")
    old_total, new_total, changed = cursor.fetchone()
    cursor.execute(f"DROP TABLE IF EXISTS {changed_table}")
    RerateRun.objects.filter(pk=run.pk).update(
        records=priced, changed=changed, unratable=unratable, old_total=old_total, new_total=new_total,
        difference=new_total - old_total, transfers=transfers, finished_at=now())
    recorded.record(RerateRun.objects.get(pk=run.pk), actor=actor, action="rerate",
                    changes={"changed": [None, changed], "difference": [None, str(new_total - old_total)]})
    _evaluate_thresholds(cursor, tables, actor)


def worker_count() -> int:
    return WORKERS if (os.cpu_count() or 1) > 1 else 1
