"""The ledger's typed errors. Each has a stable code; the API renders it with its status.

409 means "the account's or record's present state refuses this": retrying after the
state changes (a payment arrives, a hold is created anew) may succeed. 400 means the
request itself is wrong and never will.
"""

from tarifa.kernel.errors import Conflict, ValidationFailed


class InsufficientFunds(Conflict):
    """A debit would take the account's available balance below −credit limit."""

    code = "insufficient_funds"


class IdempotencyConflict(Conflict):
    """The idempotency key was used before for a different movement."""

    code = "idempotency_conflict"


class AccountClosed(Conflict):
    code = "account_closed"


class HoldNotPending(Conflict):
    """The hold was already posted, voided or expired: it is resolved once."""

    code = "hold_not_pending"


class HoldExpired(Conflict):
    code = "hold_expired"


class AlreadyReversed(Conflict):
    code = "already_reversed"


class NotReversible(Conflict):
    code = "not_reversible"


class CurrencyMismatch(ValidationFailed):
    code = "currency_mismatch"


class SameAccount(ValidationFailed):
    code = "same_account"
