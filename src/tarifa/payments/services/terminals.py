"""The terminal networks' check / pay / status commands (protocol in terminal_protocol and docs)."""

import logging

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from tarifa.kernel.clock import now
from tarifa.kernel.errors import DomainError
from tarifa.ledger.models import BillingAccount

from .. import terminal_protocol as proto
from ..models import Channel, PaymentGateway, TerminalTransaction
from . import common
from .payments import accept_payment

log = logging.getLogger("tarifa.payments.terminals")

# Service error codes → the protocol's result codes.
RESULT_FOR_CODE = {
    "account_not_found": proto.ACCOUNT_NOT_FOUND,
    "account_closed": proto.PAYMENT_FORBIDDEN,
    "currency_mismatch": proto.PAYMENT_FORBIDDEN,
    "gateway_inactive": proto.PAYMENT_FORBIDDEN,
    "amount_too_small": proto.AMOUNT_TOO_SMALL,
    "amount_too_large": proto.AMOUNT_TOO_LARGE,
    "amount_zero": proto.AMOUNT_TOO_SMALL,
    "amount_negative": proto.BAD_REQUEST,
    "amount_too_precise": proto.BAD_REQUEST,
    "invalid_amount": proto.BAD_REQUEST,
}


def _actor(gateway: PaymentGateway) -> str:
    return f"gateway:{gateway.code}"


def _find_account(number: str):
    account = BillingAccount.objects.select_related("ledger_account", "customer").filter(number__iexact=number).first()
    if account is None:
        raise proto.ProtocolError(proto.ACCOUNT_NOT_FOUND, f"Account {number} not found.")
    return account


def _check_payable(gateway: PaymentGateway, account: BillingAccount, amount) -> None:
    if account.status != BillingAccount.Status.ACTIVE:
        raise proto.ProtocolError(proto.PAYMENT_FORBIDDEN, f"Account {account.number} is closed.")
    if account.currency != gateway.currency:
        raise proto.ProtocolError(proto.PAYMENT_FORBIDDEN, f"Account {account.number} is kept in {account.currency}.")
    if amount is not None:
        try:
            amount = common.payment_amount(amount, account.currency, field="sum")
        except DomainError as exc:
            raise proto.ProtocolError(RESULT_FOR_CODE.get(exc.code, proto.BAD_REQUEST), exc.message) from None
        if amount < gateway.min_amount:
            raise proto.ProtocolError(proto.AMOUNT_TOO_SMALL, f"The least accepted is {gateway.min_amount:.2f}.")
        if amount > gateway.max_amount:
            raise proto.ProtocolError(proto.AMOUNT_TOO_LARGE, f"The most accepted is {gateway.max_amount:.2f}.")


def handle(gateway: PaymentGateway, params) -> proto.Answer:
    """Answer one protocol request from an authenticated gateway; never raises a protocol error.

    Unexpected database trouble answers 1 (temporary: the terminal retries later); any
    other unexpected error 300.
    """
    txn = (params.get("txn_id") or "")[:100]
    try:
        command = proto.command(params)
        txn = proto.txn_id(params)
        if command == "check":
            return check(gateway, params)
        if command == "pay":
            return pay(gateway, params)
        return status(gateway, txn)
    except proto.ProtocolError as exc:
        return proto.Answer(result=exc.result, txn_id=txn, comment=exc.comment)
    except DatabaseError:
        log.exception("terminal request failed (gateway %s, txn %s)", gateway.code, txn)
        return proto.Answer(result=proto.TEMPORARY_ERROR, txn_id=txn)
    except Exception:
        log.exception("terminal request failed (gateway %s, txn %s)", gateway.code, txn)
        return proto.Answer(result=proto.OTHER_ERROR, txn_id=txn)


@transaction.atomic
def check(gateway: PaymentGateway, params) -> proto.Answer:
    """`check`: may account N be paid (this sum)? Records the transaction as checked (or refused).

    A transaction already paid is not changed: the check is answered as for a new one.
    """
    txn = proto.txn_id(params)
    number = None
    account = None
    amount = None
    try:
        number = proto.account_number(params, settings.TARIFA_BRANCH_CODE)
        if params.get("sum") not in (None, ""):
            amount = proto.amount(params)
        account = _find_account(number)
        _check_payable(gateway, account, amount)
        result, comment = proto.OK, "OK"
    except proto.ProtocolError as exc:
        result, comment = exc.result, exc.comment
    record = TerminalTransaction.objects.select_for_update().filter(gateway=gateway, txn_id=txn).first()
    if record is None or record.state != TerminalTransaction.State.PAID:
        values = {"state": TerminalTransaction.State.CHECKED if result == proto.OK else TerminalTransaction.State.REFUSED,
                  "account_ref": number or (params.get("account") or "")[:100], "billing_account": account,
                  "amount": amount, "result": result, "comment": comment[:200], "checked_at": now()}
        if record is None:
            TerminalTransaction.objects.create(gateway=gateway, txn_id=txn, **values)
        else:
            for name, value in values.items():
                setattr(record, name, value)
            record.save()
    extra = {}
    if result == proto.OK:
        extra = {"fio": proto.masked_name(account.customer.display_name), "account": account.number}
    return proto.Answer(result=result, txn_id=txn, comment=comment, sum=amount, extra=extra)


def pay(gateway: PaymentGateway, params) -> proto.Answer:
    """`pay`: book the checked transaction, once. A repeated pay answers the first result.

    Needs a successful `check` of the same txn_id first (else 90). The account must be
    the checked one; the sum is the paid one (checked against the limits again).
    """
    txn = proto.txn_id(params)
    number = proto.account_number(params, settings.TARIFA_BRANCH_CODE)
    amount = proto.amount(params)
    paid_at = proto.txn_date(params, timezone.get_current_timezone())
    with transaction.atomic():
        # No joins in the locking query: after waiting for a concurrent pay, PostgreSQL re-reads
        # the locked row but not an outer-joined one, which would look unpaid.
        record = TerminalTransaction.objects.select_for_update().filter(gateway=gateway, txn_id=txn).first()
        if record is None or record.state == TerminalTransaction.State.REFUSED:
            return proto.Answer(result=proto.NOT_CHECKED, txn_id=txn,
                                comment="No successful check for this txn_id: send check first.")
        if record.state == TerminalTransaction.State.PAID:
            if record.account_ref != number or record.amount != amount:
                return proto.Answer(result=proto.OTHER_ERROR, txn_id=txn,
                                    comment="This txn_id was paid with another account or sum.")
            return proto.Answer(result=proto.OK, txn_id=txn, prv_txn=record.payment.number, sum=record.amount,
                                comment="OK (already paid)")
        if record.account_ref != number:
            return proto.Answer(result=proto.OTHER_ERROR, txn_id=txn,
                                comment=f"The check was for account {record.account_ref}, not {number}.")
        try:
            with transaction.atomic():
                _check_payable(gateway, record.billing_account, amount)
                payment = accept_payment(actor=_actor(gateway), account=record.billing_account, amount=amount,
                                         channel=Channel.TERMINAL, gateway=gateway, provider_txn_id=txn,
                                         idempotency_key=f"terminal:{gateway.code}:{txn}", received_at=paid_at,
                                         external_reference=txn)
        except proto.ProtocolError as exc:
            return proto.Answer(result=exc.result, txn_id=txn, comment=exc.comment)
        except DomainError as exc:
            return proto.Answer(result=RESULT_FOR_CODE.get(exc.code, proto.OTHER_ERROR), txn_id=txn,
                                comment=exc.message[:200])
        record.state = TerminalTransaction.State.PAID
        record.payment = payment
        record.amount = amount
        record.txn_date = paid_at
        record.paid_at = now()
        record.result = proto.OK
        record.comment = "OK"
        record.save(update_fields=["state", "payment", "amount", "txn_date", "paid_at", "result", "comment"])
    return proto.Answer(result=proto.OK, txn_id=txn, prv_txn=payment.number, sum=amount)


def status(gateway: PaymentGateway, txn: str) -> proto.Answer:
    """`status`: 0 with the payment number when the transaction was paid; 90 otherwise."""
    record = (TerminalTransaction.objects.select_related("payment").filter(gateway=gateway, txn_id=txn).first())
    if record is None:
        return proto.Answer(result=proto.NOT_CHECKED, txn_id=txn, comment="Unknown transaction.",
                            extra={"state": "unknown"})
    if record.state != TerminalTransaction.State.PAID:
        return proto.Answer(result=proto.NOT_CHECKED, txn_id=txn, comment="Checked, not paid.",
                            extra={"state": record.state})
    extra = {"state": "paid", "txn_date": timezone.localtime(record.txn_date).strftime(proto.TXN_DATE_FORMAT)}
    if record.payment.status != "applied":
        extra["state"] = record.payment.status
    return proto.Answer(result=proto.OK, txn_id=txn, prv_txn=record.payment.number, sum=record.amount, extra=extra)
