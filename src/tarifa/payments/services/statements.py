"""Bank statements: import, match lines to accounts, book the matched, queue the rest."""

import datetime as dt
import hashlib

from django.db import connection, transaction
from django.utils import timezone

from tarifa.audit import services as recorded
from tarifa.kernel.errors import DomainError, ValidationFailed
from tarifa.kernel.ids import uuid7
from tarifa.kernel.money import CURRENCIES
from tarifa.kernel.numbering import next_number
from tarifa.ledger.models import BillingAccount

from .. import errors, statement_csv
from ..models import BankStatement, BankStatementLine, Channel
from . import common
from .payments import accept_payment

ACTIVE_STATES = (BankStatementLine.State.BOOKED, BankStatementLine.State.UNMATCHED, BankStatementLine.State.IGNORED)


def _received_at(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(12, 0)))


def match_account(reference: str, currency: str) -> tuple[BillingAccount | None, str]:
    """The billing account a payment's details name, or (None, why not).

    An account number wins; a customer number is enough when the customer has exactly
    one open account in the line's currency.
    """
    account_numbers, customer_numbers = statement_csv.references(reference)
    accounts = list(BillingAccount.objects.filter(number__in=account_numbers).select_related("ledger_account"))
    if len(accounts) == 1:
        return accounts[0], ""
    if len(accounts) > 1:
        return None, f"several accounts named: {', '.join(a.number for a in accounts)}"
    if customer_numbers:
        candidates = list(BillingAccount.objects.filter(customer__number__in=customer_numbers, currency=currency,
                                                        status=BillingAccount.Status.ACTIVE)
                          .select_related("ledger_account"))
        if len(candidates) == 1:
            return candidates[0], ""
        if candidates:
            return None, f"customer has {len(candidates)} open {currency} accounts: assign one"
        return None, f"no open {currency} account of customer {', '.join(customer_numbers)}"
    if account_numbers:
        return None, f"unknown account {', '.join(account_numbers)}"
    return None, "no account or customer number in the reference"


def _book(line: BankStatementLine, account: BillingAccount, *, actor) -> None:
    payment = accept_payment(actor=actor, account=account, amount=line.amount, currency=line.currency,
                             channel=Channel.BANK_TRANSFER, idempotency_key=f"bank:{line.bank_txn_id}",
                             external_reference=line.reference[:200], payer=line.payer,
                             received_at=_received_at(line.value_date))
    line.state = BankStatementLine.State.BOOKED
    line.billing_account = account
    line.payment = payment
    line.reason = ""


@transaction.atomic
def import_statement(*, actor, filename: str, content: bytes) -> BankStatement:
    """Import a CSV statement: every line ends in exactly one state (rule 6).

    - rejected: unreadable (date, amount), not a credit, no bank transaction id, unknown
      currency — kept with the reason;
    - duplicate: its bank transaction id was taken before (this file or an earlier one)
      — never booked twice (a partial unique index on the id, and the payment's key
      `bank:<id>`);
    - booked: matched by reference to an account and applied as a bank-transfer payment;
    - unmatched: no (single) account found, or the account refused the payment — queued
      for an operator (assign_line / ignore_line).
    read = booked + unmatched + duplicate + rejected. Imports run one at a time (an
    advisory lock). Permission `payments.add_bankstatement`. Errors (nothing written):
    statement_not_utf8, statement_empty, statement_bad_header, statement_too_large.
    """
    common.require(actor, "payments.add_bankstatement")
    try:
        parsed = statement_csv.parse(content)
    except statement_csv.StatementError as exc:
        raise ValidationFailed(exc.message, code=exc.code, fields={"file": [exc.message]}) from None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('tarifa.payments.bank_statement'))")
    statement = BankStatement(id=uuid7(), number=next_number("BS", width=6), filename=str(filename or "")[:255],
                              sha256=hashlib.sha256(content).hexdigest(), imported_by=common.actor_label(actor))
    statement.save(force_insert=True)
    ids = [p.bank_txn_id for p in parsed if p.bank_txn_id]
    taken = {line.bank_txn_id: line for line in
             BankStatementLine.objects.filter(bank_txn_id__in=ids, state__in=ACTIVE_STATES)}
    counts = {state: 0 for state in BankStatementLine.State.values}
    for item in parsed:
        line = BankStatementLine(statement=statement, line_no=item.line_no, raw=item.raw, value_date=item.value_date,
                                 amount=item.amount, currency=item.currency[:3], reference=item.reference,
                                 payer=item.payer, bank_txn_id=item.bank_txn_id)
        if not item.error and item.currency not in CURRENCIES:
            item.error = f"unknown currency {item.currency!r}"
        if item.error:
            line.state, line.reason = BankStatementLine.State.REJECTED, item.error[:300]
        elif item.bank_txn_id in taken:
            line.state = BankStatementLine.State.DUPLICATE
            line.duplicate_of = taken[item.bank_txn_id]
            line.reason = f"bank transaction {item.bank_txn_id} already in {taken[item.bank_txn_id]}"[:300]
        else:
            account, why = match_account(item.reference, item.currency)
            line.state, line.reason = BankStatementLine.State.UNMATCHED, why
            if account is not None:
                try:
                    with transaction.atomic():
                        _book(line, account, actor=actor)
                        line.matched_by = "auto"
                except DomainError as exc:
                    line.state, line.reason = BankStatementLine.State.UNMATCHED, f"{account.number}: {exc.message}"[:300]
                    line.billing_account = None
                    line.payment = None
        if line.state == BankStatementLine.State.UNMATCHED or line.state == BankStatementLine.State.BOOKED:
            taken[item.bank_txn_id] = line
        line.save(force_insert=True)
        counts[line.state] += 1
    statement.lines_read = len(parsed)
    statement.lines_booked = counts["booked"]
    statement.lines_unmatched = counts["unmatched"]
    statement.lines_duplicate = counts["duplicate"]
    statement.lines_rejected = counts["rejected"]
    statement.save(update_fields=["lines_read", "lines_booked", "lines_unmatched", "lines_duplicate", "lines_rejected"])
    recorded.record(statement, actor=actor, action="import", message=statement.filename,
                    changes={"read": [None, len(parsed)], "booked": [None, counts["booked"]],
                             "unmatched": [None, counts["unmatched"]], "duplicate": [None, counts["duplicate"]],
                             "rejected": [None, counts["rejected"]]})
    return statement


def _lock_unmatched(line: BankStatementLine) -> BankStatementLine:
    line = BankStatementLine.objects.select_for_update().select_related("statement").get(pk=line.pk)
    if line.state != BankStatementLine.State.UNMATCHED:
        raise errors.LineNotUnmatched(f"Line {line} is {line.get_state_display().lower()}, not unmatched.")
    return line


@transaction.atomic
def assign_line(line: BankStatementLine, *, actor, account) -> BankStatementLine:
    """Book an unmatched line to the account the operator chose. Permission
    `payments.resolve_statement_line`. Errors: line_not_unmatched (409), account and amount errors."""
    common.require(actor, "payments.resolve_statement_line")
    line = _lock_unmatched(line)
    account = common.billing_account(account)
    _book(line, account, actor=actor)
    line.matched_by = common.actor_label(actor)
    line.save(update_fields=["state", "billing_account", "payment", "reason", "matched_by"])
    recorded.record(line, actor=actor, action="assign", changes={"billing_account": [None, account.number]})
    return line


@transaction.atomic
def ignore_line(line: BankStatementLine, *, actor, reason: str) -> BankStatementLine:
    """Take an unmatched line off the queue (not ours, returned to the payer…), with a reason."""
    common.require(actor, "payments.resolve_statement_line")
    reason = str(reason or "").strip()
    if not reason:
        raise ValidationFailed("A reason is required.", code="reason_required", fields={"reason": ["Required."]})
    line = _lock_unmatched(line)
    line.state = BankStatementLine.State.IGNORED
    line.reason = reason[:300]
    line.matched_by = common.actor_label(actor)
    line.save(update_fields=["state", "reason", "matched_by"])
    recorded.record(line, actor=actor, action="ignore", message=reason)
    return line
