"""Human-facing numbers: `HQ-C0000001` = branch, series, counter.

Every series is registered once, in `SERIES` below, with what it numbers: a number's
prefix must tell a reader what the record is (a receipt that reads "Shift HQ-S0000016"
when HQ-S… are subscriptions is a bug). The table is checked when this module is
imported (a series registered twice stops the process at startup), and
`tarifa/kernel/tests/test_numbering.py` checks that every `next_number("…")` call in the
code uses a registered series from the app that owns it. Bill cycles choose their
invoice series (`check_configurable_series`): any series nobody else owns.

Renumbering: numbers people have seen never change. When a record kind moves to a new
series (cashier shifts: `S` → `SH`), records numbered before keep their numbers; new
ones take the new series (docs/payments.md).
"""

from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction

from .errors import ValidationFailed
from .models import NumberSequence, local_branch_code

# (series, owning app, what it numbers). One row per series.
REGISTRY: tuple[tuple[str, str, str], ...] = (
    ("C", "crm", "customers"),
    ("K", "crm", "contracts"),
    ("A", "ledger", "billing accounts"),
    ("S", "subscriptions", "subscriptions"),
    ("I", "billing", "invoices (the default bill-cycle series)"),
    ("CN", "billing", "credit notes"),
    ("P", "payments", "payments"),
    ("R", "payments", "refunds"),
    ("SH", "payments", "cashier shifts (before 2026-12: S, shared with subscriptions)"),
    ("H", "payments", "cash hand-overs"),
    ("BS", "payments", "bank statements"),
    ("VB", "payments", "voucher batches"),
    ("T", "tickets", "tickets"),
    ("FP", "interbranch", "foreign payments (taken here for another branch's subscriber)"),
)
# Series drawn from a PostgreSQL sequence instead of the gap-free counter row (series → sequence,
# created by the owning app's migration). Unique and increasing, never reused, but a number taken by
# a transaction that rolls back is skipped. For records taken concurrently at high rates, whose
# numbers no law requires gap-free: a counter row would be locked by every transaction until it
# commits, so they would queue on it (issue 18). Payments: docs/payments.md.
SEQUENCE_SERIES: dict[str, str] = {"P": "payments_payment_number"}
# Series a bill cycle may also choose for its invoices besides free ones.
INVOICE_SERIES = "I"


def _index(rows) -> dict[str, tuple[str, str]]:
    table: dict[str, tuple[str, str]] = {}
    for series, owner, what in rows:
        if not series.isalpha() or not series.isupper():
            raise ImproperlyConfigured(f"Number series {series!r} ({owner}: {what}) is not capital letters.")
        if series in table:
            raise ImproperlyConfigured(f"Number series {series!r} is registered twice: {table[series][0]} "
                                       f"({table[series][1]}) and {owner} ({what}).")
        table[series] = (owner, what)
    return table


SERIES: dict[str, tuple[str, str]] = _index(REGISTRY)


def owner_of(series: str) -> str | None:
    entry = SERIES.get(series)
    return entry[0] if entry else None


def check_configurable_series(series: str, *, field: str = "series") -> str:
    """Refuse an operator-chosen invoice series that numbers something else (payments, shifts, …)."""
    if series in SERIES and series != INVOICE_SERIES:
        owner, what = SERIES[series]
        raise ValidationFailed(f"The series {series} numbers {what}; choose another.", code="reserved_series",
                               fields={field: [f"Reserved: {what}."]})
    return series


TAKE_SQL = """
UPDATE kernel_numbersequence SET last_value = last_value + 1
WHERE branch = %s AND series = %s
RETURNING last_value
"""


def next_number(series: str, *, width: int = 7, branch: str | None = None) -> str:
    """Take the next gap-free number of `series`, e.g. `HQ-C0000001` (SEQUENCE_SERIES: the next
    number of its sequence, unique but not gap-free).

    Must run inside the caller's transaction: the counter row stays locked until it
    commits, so concurrent callers queue and a rolled-back number is reused.
    One round trip (UPDATE … RETURNING) once the series exists: numbering sits in every
    payment's transaction after its locks are taken, so its cost is paid serially.
    """
    branch = branch or local_branch_code()
    if series in SEQUENCE_SERIES:  # not gap-free: see SEQUENCE_SERIES
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(%s)", [SEQUENCE_SERIES[series]])
            return f"{branch}-{series}{cursor.fetchone()[0]:0{width}d}"
    with connection.cursor() as cursor:
        cursor.execute(TAKE_SQL, [branch, series])
        row = cursor.fetchone()
        if row is None:  # the series' first number
            with transaction.atomic():
                NumberSequence.objects.get_or_create(branch=branch, series=series)
            cursor.execute(TAKE_SQL, [branch, series])
            row = cursor.fetchone()
    return f"{branch}-{series}{row[0]:0{width}d}"
