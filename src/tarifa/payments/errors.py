"""The payments app's typed errors, each with a stable code (rendered by the API with its status).

400: the request itself is wrong and never will be right; 404: what it names does not
exist; 409: the present state refuses it (retrying after the state changes may succeed);
401/403: the caller is not who they must be; 429: too many attempts.
"""

from tarifa.kernel.errors import Conflict, DomainError, PermissionDenied, ValidationFailed


class AccountNotFound(ValidationFailed):
    code = "account_not_found"


class AccountClosed(Conflict):
    code = "account_closed"


class CurrencyMismatch(ValidationFailed):
    code = "currency_mismatch"


class AmountTooSmall(ValidationFailed):
    code = "amount_too_small"


class AmountTooLarge(ValidationFailed):
    code = "amount_too_large"


class InvalidChannel(ValidationFailed):
    code = "invalid_channel"


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"


class DuplicateProviderTransaction(Conflict):
    code = "duplicate_provider_txn"


class AlreadyReversed(Conflict):
    code = "already_reversed"


class NotReversible(Conflict):
    code = "not_reversible"


class RefundExceedsPayment(Conflict):
    code = "refund_exceeds_payment"


class NoOpenShift(Conflict):
    code = "no_open_shift"


class ShiftAlreadyOpen(Conflict):
    code = "shift_already_open"


class ShiftClosed(Conflict):
    code = "shift_closed"


class DeskNotAssigned(PermissionDenied):
    code = "desk_not_assigned"


class InsufficientCash(Conflict):
    code = "insufficient_cash"


class GatewayInactive(Conflict):
    code = "gateway_inactive"


class GatewayAuthFailed(DomainError):
    code = "gateway_auth_failed"
    status = 401


class GatewayAddressRefused(DomainError):
    code = "gateway_address_refused"
    status = 403


class InvalidSignature(DomainError):
    code = "invalid_signature"
    status = 401


class StaleWebhook(DomainError):
    code = "stale_webhook"
    status = 401


class VoucherUnknown(DomainError):
    code = "voucher_unknown"
    status = 404


class VoucherUsed(Conflict):
    code = "voucher_used"


class VoucherExpired(Conflict):
    code = "voucher_expired"


class VoucherNotActive(Conflict):
    code = "voucher_not_active"


class VoucherThrottled(DomainError):
    code = "voucher_throttled"
    status = 429
    retry_after = 15 * 60  # the attempts window of payments.services.vouchers


class LineNotUnmatched(Conflict):
    code = "line_not_unmatched"
