"""Reports as declarations.

A report is one `Report(...)`: its code, name, description, the permission that opens it,
its parameters, a query (set-based SQL or an ORM aggregate returning rows as dicts), its
columns with their types and units, which columns are totalled, and an optional chart. From
that one declaration come the page (filter form, sortable table, SVG chart), the API
(`/api/v1/reports/<code>/` → `{"rows", "totals"}`), the CSV and XLSX exports and the
scheduled e-mail delivery. Adding a report is one `register(Report(...))` and a test.

Reports are read-only: a query reads other apps' tables and writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.utils import timezone

from tarifa.kernel.clock import today
from tarifa.kernel.errors import DomainError
from tarifa.kernel.money import CURRENCIES, CURRENCY_CHOICES

# Column types: how a value is shown, exported and totalled.
TEXT, MONEY, COUNT, NUMBER, DATE, DURATION, BYTES, PERCENT = (
    "text", "money", "count", "number", "date", "duration", "bytes", "percent")
COLUMN_TYPES = {TEXT, MONEY, COUNT, NUMBER, DATE, DURATION, BYTES, PERCENT}

# Permissions (reports.ReportSchedule's Meta): each report names the one that opens it.
FINANCE = "reports.view_finance_reports"
CASH = "reports.view_cash_reports"
SUBSCRIBERS = "reports.view_subscriber_reports"
USAGE = "reports.view_usage_reports"
OPERATIONS = "reports.view_operations_reports"

# Query parameters a report's URL may carry besides its own parameters.
RESERVED = {"format", "sort"}
MAX_PERIOD_DAYS = 3660


class ReportError(DomainError):
    pass


@dataclass(frozen=True)
class Param:
    """A report's parameter: `date` (YYYY-MM-DD), `choice` (one of `choices()`) or `text`."""

    name: str
    label: str
    kind: str = "choice"
    choices: Callable[[], list[tuple[str, str]]] | None = None
    help: str = ""


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    type: str = TEXT
    currency: str = "currency"  # a money column: the row's key that holds its currency
    total: bool = False  # summed in the totals (money per currency)
    labels: Callable[[], dict] | None = None  # a code column's words on the page (the API and files keep codes)

    def __post_init__(self):
        assert self.type in COLUMN_TYPES, self.type


@dataclass(frozen=True)
class Chart:
    """A server-rendered chart: `kind` bar or line; `x` a column, `y` a numeric column, one
    series per value of `series` (e.g. the currency or the channel)."""

    x: str
    y: str
    kind: str = "bar"
    series: str | None = None


@dataclass
class Report:
    code: str
    name: str
    description: str
    permission: str
    columns: list[Column]
    query: Callable[[dict], list[dict]]
    params: list[Param] = field(default_factory=list)
    chart: Chart | None = None
    source: str = ""  # where the numbers come from (docs/reports.md)
    group: str = "Finance"
    period: bool = True  # takes from/to
    row_limit: int | None = None  # the query itself bounds its rows (top-N)
    dashboard_url_params: dict = field(default_factory=dict)

    @property
    def all_params(self) -> list[Param]:
        dates = [Param("from", "From", "date"), Param("to", "To", "date")] if self.period else []
        return dates + list(self.params)

    def column(self, name) -> Column:
        return next(c for c in self.columns if c.name == name)


_reports: dict[str, Report] = {}


def register(report: Report) -> Report:
    assert report.code not in _reports, f"report {report.code} registered twice"
    # A report over one app's records may take that app's view permission (tickets.view_ticket).
    assert report.permission.count(".") == 1, report.permission
    _reports[report.code] = report
    return report


def all_reports() -> list[Report]:
    return list(_reports.values())


def get(code: str) -> Report | None:
    return _reports.get(code)


# --- parameters -----------------------------------------------------------------------------

def currency_param() -> Param:
    return Param("currency", "Currency", "choice", lambda: list(CURRENCY_CHOICES))


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def default_period() -> tuple[dt.date, dt.date]:
    """This month so far."""
    t = today()
    return month_start(t), t


def _parse_date(name, value) -> dt.date:
    try:
        day = dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ReportError(f"{name}: a date as YYYY-MM-DD", code="invalid_parameter",
                          fields={name: ["Enter a date as YYYY-MM-DD."]}) from None
    if not 2000 <= day.year <= 2099:
        raise ReportError(f"{name}: a year from 2000 to 2099", code="invalid_parameter",
                          fields={name: ["Enter a year from 2000 to 2099."]})
    return day


def parse_params(report: Report, query, *, strict: bool = True) -> dict:
    """The report's parameters from a query string (a QueryDict or a dict): dates as dates,
    choices checked against their choices, empty values left out. Unknown parameters are an
    error when `strict` (the API), ignored otherwise."""
    known = {p.name: p for p in report.all_params}
    if strict:
        unknown = sorted(set(query.keys()) - set(known) - RESERVED)
        if unknown:
            raise ReportError(f"Unknown parameters: {', '.join(unknown)}", code="unknown_parameter",
                              fields={n: ["Unknown parameter."] for n in unknown})
    values: dict = {}
    for name, p in known.items():
        raw = query.get(name)
        if raw in (None, ""):
            continue
        if "\x00" in str(raw):
            raise ReportError(f"{name}: invalid value", code="invalid_parameter", fields={name: ["Invalid value."]})
        if p.kind == "date":
            values[name] = _parse_date(name, raw)
        elif p.kind == "choice" and p.choices is not None:
            if raw not in {str(k) for k, _ in p.choices()}:
                raise ReportError(f"{name}: {raw[:40]!r} is not one of the choices", code="invalid_parameter",
                                  fields={name: ["Select a valid choice."]})
            values[name] = raw
        else:
            values[name] = str(raw)[:200]
    if report.period:
        start, end = default_period()
        values.setdefault("from", start if "to" not in values else month_start(values["to"]))
        values.setdefault("to", max(values["from"], end) if values["from"] <= end else values["from"])
        if values["from"] > values["to"]:
            raise ReportError("The period starts after it ends", code="invalid_period",
                              fields={"from": ["The period starts after it ends."]})
        if (values["to"] - values["from"]).days > MAX_PERIOD_DAYS:
            raise ReportError("The period is longer than ten years", code="invalid_period",
                              fields={"to": ["At most ten years."]})
    return values


def bounds(params) -> tuple[dt.datetime, dt.datetime]:
    """The period as [start, end) instants in the operator's time zone."""
    tz = timezone.get_default_timezone()
    start = dt.datetime.combine(params["from"], dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(params["to"] + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return start, end


def tz_name() -> str:
    return settings.TIME_ZONE


# --- running ----------------------------------------------------------------------------------

def sql(query: str, args=()) -> list[dict]:
    """Rows of a set-based query as dicts (the report's column names are the query's)."""
    with connection.cursor() as cursor:
        cursor.execute(query, args)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass
class Result:
    report: Report
    params: dict
    rows: list[dict]
    totals: dict


def totals(report: Report, rows: list[dict]) -> dict:
    out: dict = {}
    for col in report.columns:
        if not col.total:
            continue
        if col.type == MONEY:
            per: dict[str, Decimal] = {}
            for row in rows:
                value = row.get(col.name)
                if value is not None:
                    cur = row.get(col.currency) or ""
                    per[cur] = per.get(cur, Decimal(0)) + Decimal(value)
            out[col.name] = dict(sorted(per.items()))
        else:
            out[col.name] = sum((row.get(col.name) or 0) for row in rows)
    return out


def run(report: Report, params: dict) -> Result:
    rows = report.query(params)
    return Result(report, params, rows, totals(report, rows))


def sort_rows(report: Report, rows: list[dict], key: str | None) -> list[dict]:
    if not key:
        return rows
    desc = key.startswith("-")
    name = key.lstrip("-")
    if name not in {c.name for c in report.columns}:
        return rows
    present = [r for r in rows if r.get(name) is not None]
    missing = [r for r in rows if r.get(name) is None]
    present.sort(key=lambda r: r[name], reverse=desc)
    return present + missing


# --- values as the API and the exports give them ------------------------------------------------

def exact(value: Decimal, currency: str | None) -> str:
    """A money amount as a decimal string, exact, with at least the currency's minor places."""
    places = CURRENCIES.get(currency or "", 2)
    value = Decimal(value)
    text = format(value.normalize(), "f")
    if "." not in text or len(text.split(".")[1]) < places:
        text = format(value.quantize(Decimal(1).scaleb(-places)), "f")
    return text


def json_value(col: Column, row: dict):
    value = row.get(col.name)
    if value is None:
        return None
    if col.type == MONEY:
        return exact(value, row.get(col.currency))
    if col.type in (NUMBER, PERCENT):
        return format(Decimal(value).normalize(), "f") if isinstance(value, Decimal) else value
    if col.type in (COUNT, DURATION, BYTES):
        return int(value)
    if col.type == DATE:
        return value.isoformat()
    return str(value)


def json_totals(report: Report, result_totals: dict) -> dict:
    out = {}
    for name, value in result_totals.items():
        if isinstance(value, dict):
            out[name] = {cur: exact(v, cur) for cur, v in value.items()}
        else:
            out[name] = int(value) if report.column(name).type in (COUNT, DURATION, BYTES) else str(value)
    return out


def json_rows(report: Report, rows: list[dict]) -> list[dict]:
    return [{c.name: json_value(c, r) for c in report.columns} for r in rows]
