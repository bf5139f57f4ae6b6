"""The payments app's write path (rule 1): every write of a payments record goes through here.

Grouped by subject in submodules; the public functions are re-exported so that callers
write `from tarifa.payments import services; services.accept_payment(...)`.
"""

from .autopay import cancel_agreement, create_agreement, run_autopay, update_agreement
from .cards import expire_checkouts, handle_webhook, remove_payment_method, start_card_checkout
from .cashdesk import (archive_cash_desk, close_shift, create_cash_desk, expected_cash, hand_over_cash, open_shift,
                       update_cash_desk)
from .gateways import archive_gateway, authenticate_terminal, create_gateway, rotate_credentials, update_gateway
from .payments import accept_payment, open_shift_of, refund_payment, reverse_payment
from .statements import assign_line, ignore_line, import_statement
from .vouchers import generate_batch, redeem_voucher, sell_batch

__all__ = [
    "accept_payment", "archive_cash_desk", "archive_gateway", "assign_line", "authenticate_terminal",
    "cancel_agreement", "close_shift", "create_agreement", "create_cash_desk", "create_gateway", "expected_cash",
    "generate_batch", "hand_over_cash", "handle_webhook", "ignore_line", "import_statement", "open_shift",
    "open_shift_of", "redeem_voucher", "refund_payment", "remove_payment_method", "reverse_payment",
    "rotate_credentials", "run_autopay", "expire_checkouts", "sell_batch", "start_card_checkout", "update_agreement",
    "update_cash_desk", "update_gateway",
]
