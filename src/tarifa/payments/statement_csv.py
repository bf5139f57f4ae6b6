"""Reading bank statement CSV files and finding account references in payment details.

Pure functions, no database. The format (docs/payments.md): UTF-8, a header row naming
at least `date, amount, currency, reference, payer, bank_txn_id` (any order, any case),
comma- or semicolon-separated. Dates are YYYY-MM-DD or DD.MM.YYYY; amounts use a dot
(or a lone comma) as the decimal separator; credits are positive.
"""

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

COLUMNS = ("date", "amount", "currency", "reference", "payer", "bank_txn_id")
REQUIRED = ("date", "amount", "currency", "bank_txn_id")
MAX_LINES = 100_000
# HQ-A0000001 (billing account) or HQ-C0000001 (customer); spaces or no dash tolerated.
NUMBER = re.compile(r"(?<![A-Za-z0-9])([A-Za-z0-9]{1,16})[-\s]?([AaCc])(\d{7,})(?!\d)")


class StatementError(Exception):
    """The file as a whole cannot be read (nothing is imported)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class Line:
    line_no: int
    raw: dict
    error: str = ""
    value_date: dt.date | None = None
    amount: Decimal | None = None
    currency: str = ""
    reference: str = ""
    payer: str = ""
    bank_txn_id: str = ""
    extra: dict = field(default_factory=dict)


def _date(text: str) -> dt.date:
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"unreadable date {text!r} (YYYY-MM-DD or DD.MM.YYYY)")


def _amount(text: str) -> Decimal:
    text = text.strip().replace(" ", "").replace("\u00a0", "")
    if "," in text and "." not in text and text.count(",") == 1:
        text = text.replace(",", ".")
    if not re.fullmatch(r"[+-]?\d+(\.\d+)?", text):
        raise ValueError(f"unreadable amount {text!r}")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - excluded by the pattern
        raise ValueError(f"unreadable amount {text!r}") from None


def parse(content: bytes) -> list[Line]:
    """The statement's data lines (line_no counts the header as 1). Raises StatementError."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StatementError(f"The file is not UTF-8 text (byte {exc.start}).", "statement_not_utf8") from None
    if not text.strip():
        raise StatementError("The file is empty.", "statement_empty")
    if "\x00" in text:
        line_no = text.count("\n", 0, text.index("\x00")) + 1
        raise StatementError(f"Line {line_no} contains a NUL character: not a CSV text file.", "statement_not_text")
    try:
        return _parse_text(text)
    except csv.Error as exc:  # e.g. a field over the csv module's limit (131072 characters)
        raise StatementError(f"Unreadable CSV: {exc}.", "statement_bad_csv") from None


def _parse_text(text: str) -> list[Line]:
    first = text.splitlines()[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader)]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise StatementError(f"Missing columns: {', '.join(missing)} (a header row naming "
                             f"{', '.join(COLUMNS)} is required).", "statement_bad_header")
    lines = []
    for line_no, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(lines) >= MAX_LINES:
            raise StatementError(f"Too many lines: at most {MAX_LINES} per file.", "statement_too_large")
        raw = dict(zip(header, (v.strip() for v in values)))
        line = Line(line_no=line_no, raw=raw)
        lines.append(line)
        if len(values) != len(header):
            line.error = f"expected {len(header)} columns, found {len(values)}"
            continue
        try:
            line.value_date = _date(raw["date"])
            line.amount = _amount(raw["amount"])
        except ValueError as exc:
            line.error = str(exc)
            continue
        line.currency = raw.get("currency", "").upper()
        line.reference = raw.get("reference", "")[:500]
        line.payer = raw.get("payer", "")[:200]
        line.bank_txn_id = raw.get("bank_txn_id", "")[:100]
        if not line.bank_txn_id:
            line.error = "no bank transaction id"
        elif line.amount <= 0:
            line.error = "not a credit (amount must be positive)"
    return lines


def references(text: str) -> tuple[list[str], list[str]]:
    """(account numbers, customer numbers) named in a payment's details, normalised and unique."""
    accounts, customers = [], []
    for branch, series, digits in NUMBER.findall(text or ""):
        number = f"{branch.upper()}-{series.upper()}{digits}"
        target = accounts if series.upper() == "A" else customers
        if number not in target:
            target.append(number)
    return accounts, customers
