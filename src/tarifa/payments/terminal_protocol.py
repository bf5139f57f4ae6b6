"""The terminal networks' check/pay protocol (OSMP/QIWI style): parameters, result codes, answers.

Pure functions, no database: `services.terminals` does the work, this module reads the
request's parameters and writes the answer (XML by default, JSON on `Accept:
application/json`). The protocol is documented in docs/payments.md.
"""

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from xml.sax.saxutils import escape

# Result codes. 0 is the only success; terminals retry on 1 and give up on the rest.
OK = 0
TEMPORARY_ERROR = 1
BAD_ACCOUNT_FORMAT = 4
ACCOUNT_NOT_FOUND = 5
PAYMENT_FORBIDDEN = 7
BAD_REQUEST = 8
NOT_CHECKED = 90
AMOUNT_TOO_SMALL = 241
AMOUNT_TOO_LARGE = 242
OTHER_ERROR = 300

RESULT_TEXT = {
    OK: "OK",
    TEMPORARY_ERROR: "Temporary error, retry later",
    BAD_ACCOUNT_FORMAT: "Wrong account format",
    ACCOUNT_NOT_FOUND: "Account not found",
    PAYMENT_FORBIDDEN: "Payment to this account is forbidden",
    BAD_REQUEST: "Bad request: unknown command or missing/malformed parameter",
    NOT_CHECKED: "No successful check for this transaction (or not paid)",
    AMOUNT_TOO_SMALL: "Amount too small",
    AMOUNT_TOO_LARGE: "Amount too large",
    OTHER_ERROR: "Other error",
}

COMMANDS = ("check", "pay", "status")
TXN_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
# A billing account number as printed (HQ-A0000001), or its digits alone (1 or 0000001).
ACCOUNT = re.compile(r"^(?:(?P<branch>[A-Za-z0-9]{1,16})-)?(?P<series>[Aa])?(?P<digits>\d{1,12})$")
SUM = re.compile(r"^\d{1,14}(?:\.\d{1,6})?$")
TXN_DATE_FORMAT = "%Y%m%d%H%M%S"


class ProtocolError(Exception):
    def __init__(self, result: int, comment: str):
        super().__init__(comment)
        self.result = result
        self.comment = comment


@dataclass
class Answer:
    result: int
    txn_id: str = ""
    comment: str = ""
    prv_txn: str = ""
    sum: Decimal | None = None
    extra: dict = field(default_factory=dict)  # fio, state, …

    def as_dict(self) -> dict:
        data = {"osmp_txn_id": self.txn_id, "result": self.result, "comment": self.comment or RESULT_TEXT.get(self.result, "")}
        if self.prv_txn:
            data["prv_txn"] = self.prv_txn
        if self.sum is not None:
            data["sum"] = f"{self.sum:.2f}" if self.sum == self.sum.quantize(Decimal("0.01")) else f"{self.sum:f}"
        data.update(self.extra)
        return data


def command(params) -> str:
    value = (params.get("command") or "").strip().lower()
    if value not in COMMANDS:
        raise ProtocolError(BAD_REQUEST, f"Unknown command {value!r}: check, pay or status.")
    return value


def txn_id(params) -> str:
    value = (params.get("txn_id") or "").strip()
    if not TXN_ID.match(value):
        raise ProtocolError(BAD_REQUEST, "txn_id is missing or malformed (1-100 letters, digits, _ . -).")
    return value


def account_number(params, branch: str) -> str:
    """The billing account number the terminal asks for, normalised (HQ-A0000001)."""
    value = re.sub(r"\s+", "", params.get("account") or "")
    match = ACCOUNT.match(value)
    if not match:
        raise ProtocolError(BAD_ACCOUNT_FORMAT, "Wrong account format: an account number such as "
                                                f"{branch}-A0000001, or its digits.")
    digits = match["digits"]
    return f"{(match['branch'] or branch).upper()}-A{int(digits):07d}"


def amount(params) -> Decimal:
    value = (params.get("sum") or "").strip()
    if not SUM.match(value):
        raise ProtocolError(BAD_REQUEST, "sum is missing or malformed: a decimal with a dot, e.g. 10.00.")
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern already excludes it
        raise ProtocolError(BAD_REQUEST, "sum is malformed.") from None


def txn_date(params, tz) -> dt.datetime:
    value = (params.get("txn_date") or "").strip()
    try:
        naive = dt.datetime.strptime(value, TXN_DATE_FORMAT)
    except ValueError:
        raise ProtocolError(BAD_REQUEST, "txn_date is missing or malformed: YYYYMMDDHHMMSS.") from None
    return naive.replace(tzinfo=tz)


def masked_name(name: str) -> str:
    """What a kiosk may show to whoever typed the account number: first word and initials."""
    words = [w for w in (name or "").split() if w]
    if not words:
        return ""
    return " ".join([words[0]] + [f"{w[0]}." for w in words[1:]])


def wants_json(accept: str) -> bool:
    return "application/json" in (accept or "").lower()


def render_xml(answer: Answer) -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<response>"]
    for name, value in answer.as_dict().items():
        lines.append(f"<{name}>{escape(str(value))}</{name}>")
    lines.append("</response>")
    return "\n".join(lines) + "\n"


def render_json(answer: Answer) -> str:
    return json.dumps(answer.as_dict(), ensure_ascii=False)
