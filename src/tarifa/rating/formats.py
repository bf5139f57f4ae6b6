"""Usage file formats declared as data, and the streaming parser that applies them.

Pure Python (no ORM): a format is a JSON object (see docs/rating.md) — delimiter, quote,
header or column names, where each field is (a column name, a position, or several
joined with ":"), defaults, a type map, the time format and zone, the units of bare
numbers, and filters. `LineParser.parse()` turns one line (bytes) into one staged row:
either a normalised record or a rejection with a reason code and a message naming what
is wrong. Nothing is ever dropped: comment lines and blank lines are not records; every
other line is.

A record is one line: a quoted field cannot span lines (a line with an unbalanced quote
is `malformed`). Files are read in chunks (`iter_lines`), so memory stays bounded for
any file size; a line longer than `MAX_LINE` bytes is `malformed`.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .engine import parse_duration

FIELDS = ("record_id", "source", "subject", "destination", "type", "start_time", "end_time", "usage")
REQUIRED = ("record_id", "subject", "start_time")
TIME_UNITS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "min": 60 * 10**9, "h": 3600 * 10**9}
DATA_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
FILTER_OPS = {"eq", "ne", "in", "not_in", "regex", "not_regex", "empty", "not_empty"}
MAX_LINE = 64 * 1024
CHUNK = 1 << 20

# Reason codes of rejected records (the parser's; the pipeline adds its own).
MALFORMED = "malformed"
NEGATIVE_USAGE = "negative_usage"
UNKNOWN_USAGE_TYPE = "unknown_usage_type"
FILTERED = "filtered"

_BUILTIN = {
    "csv": {
        "name": "Tarifa CSV",
        "description": "Header row; columns record_id, source, subject, destination, type, start_time, usage "
                       "(ISO 8601 times, UTC when no offset; voice usage in seconds or 1m30s, data in bytes).",
        "delimiter": ",",
        "header": True,
        "columns": {f: f for f in ("record_id", "source", "subject", "destination", "type", "start_time", "usage")},
        "optional": ["source", "destination", "type", "end_time"],
        "defaults": {"source": "file", "type": "voice"},
        "time_format": "iso8601",
        "time_zone": "UTC",
        "time_unit": "s",
        "data_unit": "B",
    },
    "cgrates-cdr": {
        "name": "CGRateS CDR export",
        "description": "The columns of CGRateS's default CDR export (cdre *default), no header: CGRID, RunID, "
                       "ToR, OriginID, RequestType, Tenant, Category, Account, Subject, Destination, SetupTime, "
                       "AnswerTime, Usage, Cost. Only the *default run is taken; the record id is CGRID:RunID; "
                       "the subscriber is the Account; usage is a Go duration (bare numbers are nanoseconds for "
                       "time, units otherwise).",
        "delimiter": ",",
        "header": False,
        "column_names": ["CGRID", "RunID", "ToR", "OriginID", "RequestType", "Tenant", "Category", "Account",
                         "Subject", "Destination", "SetupTime", "AnswerTime", "Usage", "Cost"],
        "columns": {"record_id": ["CGRID", "RunID"], "subject": "Account", "destination": "Destination",
                    "type": "ToR", "start_time": "AnswerTime", "usage": "Usage"},
        "defaults": {"source": "cgrates"},
        "type_map": {"*voice": "voice", "*data": "data", "*sms": "sms"},
        "time_format": "iso8601",
        "time_zone": "UTC",
        "time_unit": "ns",
        "data_unit": "B",
        "filters": [{"field": "RunID", "op": "eq", "value": "*default"}],
    },
}


class FormatError(ValueError):
    """A format declaration is invalid."""


def builtin() -> dict[str, dict]:
    return {code: dict(spec) for code, spec in _BUILTIN.items()}


def _ref_ok(ref) -> bool:
    if isinstance(ref, bool):
        return False
    if isinstance(ref, int):
        return ref >= 0
    if isinstance(ref, str):
        return bool(ref)
    if isinstance(ref, list):
        return bool(ref) and all(_ref_ok(r) and not isinstance(r, list) for r in ref)
    return False


def validate_spec(spec) -> dict:
    """Check a format declaration; raise FormatError naming the first problem."""
    if not isinstance(spec, dict):
        raise FormatError("a format is a JSON object")
    known = {"name", "description", "delimiter", "quotechar", "header", "column_names", "columns", "optional",
             "defaults", "type_map", "time_format", "time_zone", "time_unit", "data_unit", "filters", "skip_lines",
             "comment", "encoding", "required"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise FormatError(f"unknown keys: {', '.join(unknown)}")
    delimiter = spec.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n":
        raise FormatError("delimiter is one character")
    quote = spec.get("quotechar", '"')
    if not isinstance(quote, str) or len(quote) > 1:
        raise FormatError("quotechar is one character (or empty for none)")
    columns = spec.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise FormatError("columns maps fields to column names or positions")
    for field, ref in columns.items():
        if field not in FIELDS:
            raise FormatError(f"unknown field {field!r} in columns (fields: {', '.join(FIELDS)})")
        if not _ref_ok(ref):
            raise FormatError(f"column of {field!r} must be a name, a position ≥ 0, or a list of them")
    names = spec.get("column_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise FormatError("column_names is a list of names")
    uses_names = any(isinstance(r, str) or (isinstance(r, list) and any(isinstance(x, str) for x in r))
                     for r in list(columns.values()) + [f.get("field") for f in spec.get("filters", [])
                                                       if isinstance(f, dict)])
    if uses_names and not spec.get("header") and not names:
        raise FormatError("columns named by name need header: true or column_names")
    defaults = spec.get("defaults", {})
    if not isinstance(defaults, dict) or not all(k in FIELDS and isinstance(v, str) for k, v in defaults.items()):
        raise FormatError("defaults maps fields to strings")
    for field in REQUIRED:
        if field not in columns and field not in defaults:
            raise FormatError(f"field {field!r} needs a column (or a default)")
    if "usage" not in columns and "end_time" not in columns:
        raise FormatError("give a usage column or an end_time column")
    type_map = spec.get("type_map", {})
    if not isinstance(type_map, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in type_map.items()):
        raise FormatError("type_map maps strings to usage type codes")
    fmt = spec.get("time_format", "iso8601")
    if not isinstance(fmt, str) or not (fmt in ("iso8601", "unix", "unix_ms") or "%" in fmt):
        raise FormatError("time_format is iso8601, unix, unix_ms or a strptime pattern such as %Y-%m-%d %H:%M:%S")
    try:
        ZoneInfo(spec.get("time_zone", "UTC"))
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise FormatError(f"unknown time_zone {spec.get('time_zone')!r}") from None
    if spec.get("time_unit", "s") not in TIME_UNITS:
        raise FormatError(f"time_unit is one of {', '.join(TIME_UNITS)}")
    if spec.get("data_unit", "B") not in DATA_UNITS:
        raise FormatError(f"data_unit is one of {', '.join(DATA_UNITS)}")
    filters = spec.get("filters", [])
    if not isinstance(filters, list):
        raise FormatError("filters is a list")
    for f in filters:
        if not isinstance(f, dict) or f.get("op") not in FILTER_OPS or not _ref_ok(f.get("field")) \
                or isinstance(f.get("field"), list):
            raise FormatError(f"a filter is {{field, op, value}} with op one of {', '.join(sorted(FILTER_OPS))}")
        if f["op"] in ("regex", "not_regex"):
            try:
                re.compile(str(f.get("value", "")))
            except re.error as exc:
                raise FormatError(f"bad filter regex: {exc}") from None
    skip = spec.get("skip_lines", 0)
    if not isinstance(skip, int) or isinstance(skip, bool) or skip < 0:
        raise FormatError("skip_lines is a whole number ≥ 0")
    try:
        "".encode(spec.get("encoding", "utf-8"))
    except (LookupError, TypeError):
        raise FormatError(f"unknown encoding {spec.get('encoding')!r}") from None
    return spec


def iter_lines(stream, *, first_line: int = 1, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes without the line end) for a binary stream, read in chunks;
    `limit` stops after that many bytes (a range of a file, cut at a line end)."""
    line_no = first_line - 1
    rest = b""
    left = limit
    while True:
        if left is not None and left <= 0:
            break
        chunk = stream.read(CHUNK if left is None else min(CHUNK, left))
        if not chunk:
            break
        if left is not None:
            left -= len(chunk)
        if rest:
            chunk = rest + chunk
        lines = chunk.split(b"\n")
        rest = lines.pop()
        if len(rest) > MAX_LINE * 4:  # a runaway line: cut it, it is reported as too long
            lines.append(rest)
            rest = b""
        for line in lines:
            line_no += 1
            yield line_no, line[:-1] if line.endswith(b"\r") else line
    if rest:
        line_no += 1
        yield line_no, rest[:-1] if rest.endswith(b"\r") else rest


class LineParser:
    """Applies one format to lines. `measures` maps usage type codes to time/bytes/count."""

    def __init__(self, spec: dict, *, measures: dict[str, str]):
        validate_spec(spec)
        self.spec = spec
        self.measures = measures
        self.delimiter = spec.get("delimiter", ",")
        self.quote = spec.get("quotechar", '"')
        self.encoding = spec.get("encoding", "utf-8")
        self.comment = spec.get("comment", "")
        self.skip_lines = spec.get("skip_lines", 0)
        self.needs_header = bool(spec.get("header"))
        self.defaults = dict(spec.get("defaults", {}))
        self.type_map = dict(spec.get("type_map", {}))
        self.optional = set(spec.get("optional", []))
        self.zone = ZoneInfo(spec.get("time_zone", "UTC"))
        self.time_format = spec.get("time_format", "iso8601")
        self.time_unit = TIME_UNITS[spec.get("time_unit", "s")]
        self.data_unit = DATA_UNITS[spec.get("data_unit", "B")]
        self.expected = None
        self.getters: dict = {}
        self.filters: list = []
        self.missing: list = []
        self._fast = None
        if not self.needs_header:
            self._bind(spec.get("column_names") or None)

    # --- set-up

    def feed_header(self, raw: bytes) -> None:
        """Read the header line: column names for fields given by name."""
        text = raw.decode(self.encoding, errors="replace").lstrip("\ufeff")
        names = [n.strip() for n in self._split(text)]
        self._bind(names)

    def _bind(self, names):
        self.expected = len(names) if names else None
        index = {n: i for i, n in enumerate(names or [])}

        def position(ref, field):
            if isinstance(ref, int):
                return ref
            if ref in index:
                return index[ref]
            return None

        self.getters = {}
        self.missing = []
        for field, ref in self.spec["columns"].items():
            refs = ref if isinstance(ref, list) else [ref]
            positions = [position(r, field) for r in refs]
            if any(p is None for p in positions):
                if field in self.optional or field in self.defaults:
                    continue
                self.missing.append(field)
                continue
            self.getters[field] = positions
        self.filters = []
        for f in self.spec.get("filters", []):
            pos = position(f["field"], "filter")
            if pos is None:
                self.missing.append(f"filter column {f['field']}")
                continue
            value = f.get("value", "")
            if f["op"] in ("regex", "not_regex"):
                value = re.compile(str(value))
            elif f["op"] in ("in", "not_in"):
                value = {str(v) for v in (value if isinstance(value, list) else [value])}
            else:
                value = str(value)
            self.filters.append((pos, f["op"], value))
        self.max_position = max([p for ps in self.getters.values() for p in ps] + [p for p, _, _ in self.filters]
                                + [-1])
        self._fast = self._compile_fast()

    def _compile_fast(self):
        """A specialised parse for the common case (one column per field, no filters, ISO
        times, known column count): the same answers as `parse`, a few times faster."""
        if (self.filters or self.missing or self.expected is None or self.time_format != "iso8601"
                or self.encoding.lower().replace("-", "") not in ("utf8", "utf_8")
                or any(len(p) != 1 for p in self.getters.values()) or "end_time" in self.getters
                or "usage" not in self.getters):
            return None
        pos = {f: p[0] for f, p in self.getters.items()}
        defaults = self.defaults
        expected, delimiter, quote = self.expected, self.delimiter, self.quote
        type_map, measures, zone = self.type_map, self.measures, self.zone
        time_unit, data_unit = self.time_unit, self.data_unit
        fromisoformat = dt.datetime.fromisoformat
        slow = self._parse_slow

        def getter(field):
            p = pos.get(field)
            default = defaults.get(field, "")
            if p is None:
                return lambda values: default
            return lambda values: values[p].strip() or default

        g_id, g_source, g_subject = getter("record_id"), getter("source"), getter("subject")
        g_dest, g_type, g_start, g_usage = getter("destination"), getter("type"), getter("start_time"), getter("usage")

        def parse(line_no, raw, default_source=""):
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                return slow(line_no, raw, default_source)
            if (quote and quote in text) or len(raw) > MAX_LINE:
                return slow(line_no, raw, default_source)
            values = text.split(delimiter)
            if len(values) != expected:
                return slow(line_no, raw, default_source)
            record_id = g_id(values)
            subject = g_subject(values)
            usage_text = g_usage(values)
            raw_type = g_type(values)
            usage_type = type_map.get(raw_type, raw_type)
            measure = measures.get(usage_type)
            if not record_id or not subject or measure is None or not usage_text.isdigit():
                return slow(line_no, raw, default_source)
            start_text = g_start(values)
            try:
                start = fromisoformat(start_text)
            except ValueError:
                return slow(line_no, raw, default_source)
            if start.tzinfo is None:
                start = start.replace(tzinfo=zone)
            number = int(usage_text)
            usage = number * time_unit if measure == "time" else number * data_unit if measure == "bytes" else number
            source = g_source(values) or default_source
            # The raw line is staged with every record: one rejected after reading (no subscriber,
            # no rate) keeps it, and a corrected line is told from a retry of the same line.
            return (line_no, source[:64], record_id[:128], subject[:100], g_dest(values)[:64], usage_type[:32],
                    start.isoformat(), usage, "", "", text)

        return parse

    @property
    def header_problem(self) -> str:
        if self.missing:
            return f"the header lacks the columns for: {', '.join(self.missing)}"
        return ""

    # --- parsing

    def _split(self, text: str) -> list[str]:
        if not self.quote or self.quote not in text:
            return text.split(self.delimiter)
        row = next(csv.reader([text], delimiter=self.delimiter, quotechar=self.quote, strict=True))
        return row

    def _field(self, values, field):
        positions = self.getters.get(field)
        if positions is None:
            return self.defaults.get(field, "")
        if len(positions) == 1:
            value = values[positions[0]].strip()
        else:
            value = ":".join(values[p].strip() for p in positions)
        return value if value else self.defaults.get(field, "")

    def parse(self, line_no: int, raw: bytes, default_source: str = "") -> tuple:
        """One staged row: (line_no, source, record_id, subject, destination, type, start ISO, usage,
        reason, message, raw text)."""
        if b"\x00" in raw:  # PostgreSQL text cannot hold it: the line is kept, shown with \0, and rejected
            shown = raw.decode(self.encoding, errors="backslashreplace").replace("\x00", "\\0")[:2000]
            return self._reject(line_no, raw, shown, None, MALFORMED, "the line contains a NUL character",
                                default_source)
        if self._fast is not None:
            return self._fast(line_no, raw, default_source)
        return self._parse_slow(line_no, raw, default_source)

    def _parse_slow(self, line_no: int, raw: bytes, default_source: str = "") -> tuple:
        try:
            text = raw.decode(self.encoding)
        except UnicodeDecodeError as exc:
            shown = raw.decode(self.encoding, errors="backslashreplace")
            return self._reject(line_no, raw, shown, None, MALFORMED,
                                f"not valid {self.encoding} text (byte {exc.start + 1} of the line)", default_source)
        if len(raw) > MAX_LINE:
            return self._reject(line_no, raw, text[:2000], None, MALFORMED, f"line longer than {MAX_LINE} bytes",
                                default_source)
        try:
            values = self._split(text)
        except csv.Error as exc:
            return self._reject(line_no, raw, text, None, MALFORMED, f"bad CSV quoting: {exc}", default_source)
        if self.expected is not None and len(values) != self.expected:
            return self._reject(line_no, raw, text, values, MALFORMED,
                                f"expected {self.expected} columns, found {len(values)}", default_source)
        if len(values) <= self.max_position:
            return self._reject(line_no, raw, text, values, MALFORMED,
                                f"expected at least {self.max_position + 1} columns, found {len(values)}",
                                default_source)
        get = self._field
        record_id = get(values, "record_id")
        source = get(values, "source") or default_source
        subject = get(values, "subject")
        destination = get(values, "destination")
        raw_type = get(values, "type")
        usage_type = self.type_map.get(raw_type, raw_type)
        base = (line_no, source[:64], record_id[:128], subject[:100], destination[:64], usage_type[:32])
        for pos, op, value in self.filters:
            cell = values[pos].strip()
            if not _passes(cell, op, value):
                return base + (None, None, FILTERED, f"filtered out: column {pos + 1} {op} {_shown(value)}", text)
        if not record_id:
            return self._reject(line_no, raw, text, values, MALFORMED, "the record id is empty", default_source)
        if not subject:
            return base + (None, None, MALFORMED, "the subject is empty", text)
        start_text = get(values, "start_time")
        try:
            start = self.parse_time(start_text)
        except ValueError:
            return base + (None, None, MALFORMED, f"cannot read the start time {start_text!r}", text)
        measure = self.measures.get(usage_type)
        if measure is None:
            return base + (start.isoformat(), None, UNKNOWN_USAGE_TYPE, f"unknown usage type {raw_type!r}", text)
        usage_text = get(values, "usage")
        if usage_text == "" and "end_time" in self.getters:
            end_text = get(values, "end_time")
            try:
                end = self.parse_time(end_text)
            except ValueError:
                return base + (start.isoformat(), None, MALFORMED, f"cannot read the end time {end_text!r}", text)
            delta = end - start
            usage = (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
        else:
            try:
                usage = self.parse_usage(usage_text, measure)
            except ValueError as exc:
                return base + (start.isoformat(), None, MALFORMED, str(exc), text)
        if usage < 0:
            return base + (start.isoformat(), usage, NEGATIVE_USAGE, f"negative usage {usage_text!r}", text)
        return base + (start.isoformat(), usage, "", "", text)

    def _reject(self, line_no, raw: bytes, text: str, values, reason, message, default_source):
        record_id = source = ""
        if values is not None and "record_id" in self.getters and len(values) > max(self.getters["record_id"]):
            record_id = self._field(values, "record_id")
            if "source" in self.getters and len(values) > max(self.getters["source"]):
                source = self._field(values, "source")
        if not record_id:
            # No usable id: the line's bytes are its key, so importing the same file again
            # recognises it as a duplicate instead of queueing it twice.
            record_id = "line-sha1:" + hashlib.sha1(raw).hexdigest()
            source = ""
        else:
            source = source or self.defaults.get("source", "") or default_source
        return (line_no, source[:64], record_id[:128], "", "", "", None, None, reason, message, text)

    def parse_time(self, text: str) -> dt.datetime:
        text = text.strip()
        if not text:
            raise ValueError("empty")
        fmt = self.time_format
        if fmt == "iso8601":
            moment = dt.datetime.fromisoformat(text)
        elif fmt in ("unix", "unix_ms"):
            value = Decimal(text)
            if not value.is_finite():
                raise ValueError(text)
            micros = int(value * (10**6 if fmt == "unix" else 10**3))
            return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
        else:
            moment = dt.datetime.strptime(text, fmt)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        return moment

    def parse_usage(self, text: str, measure: str) -> int:
        text = text.strip()
        if not text:
            raise ValueError("the usage is empty")
        negative = text.startswith("-")
        body = text[1:] if negative else text
        try:
            number = Decimal(body)
        except InvalidOperation:
            number = None
        if number is not None:
            if not number.is_finite():
                raise ValueError(f"cannot read the usage {text!r}")
            if measure == "time":
                units = int(number * self.time_unit)
            elif measure == "bytes":
                units = int(number * self.data_unit)
            else:
                if number != number.to_integral_value():
                    raise ValueError(f"the usage {text!r} is not a whole number")
                units = int(number)
            return -units if negative else units
        if measure == "time":
            try:
                return parse_duration(text)
            except ValueError:
                raise ValueError(f"cannot read the usage {text!r} (seconds, or a duration such as 1m30s)") from None
        if measure == "bytes":
            match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)", body)
            unit = match and {k.lower(): v for k, v in DATA_UNITS.items()}.get(match.group(2).lower())
            if not unit:
                raise ValueError(f"cannot read the usage {text!r} (bytes, or 10MB, 1.5GiB)")
            units = int(Decimal(match.group(1)) * unit)
            return -units if negative else units
        raise ValueError(f"cannot read the usage {text!r}")


def _passes(cell: str, op: str, value) -> bool:
    if op == "eq":
        return cell == value
    if op == "ne":
        return cell != value
    if op == "in":
        return cell in value
    if op == "not_in":
        return cell not in value
    if op == "regex":
        return value.search(cell) is not None
    if op == "not_regex":
        return value.search(cell) is None
    if op == "empty":
        return cell == ""
    return cell != ""


def _shown(value) -> str:
    if isinstance(value, re.Pattern):
        return value.pattern
    if isinstance(value, set):
        return ",".join(sorted(value))
    return str(value)
