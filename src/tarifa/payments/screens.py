"""Operator screens of payments: the payment journal, cash desks and shifts, hand-overs, gateways,
terminal transactions, card checkouts, stored cards, automatic payments, bank statements and
the unmatched queue, vouchers; plus the cashier's page, receipts, voucher generation and
redemption (urls.py), and the customer page's "Payments" panel.

A cashier (payments.operate_cash_desk without payments.view_all_desks) sees only their own
desks' journal: the `queryset(request)` hooks below, the same restriction as the API's.
"""

from django.contrib import messages
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from tarifa.crm.panels import register_panel
from tarifa.ledger.models import BillingAccount
from tarifa.web.registry import Action, ModelScreens, Page, register, register_page, screens_for

from . import selectors, services
from .forms import (AgreementForm, AssignLineForm, CardCheckoutForm, CashDeskForm, CloseShiftForm, GatewayForm,
                    HandoverForm, ManualPaymentForm, ReasonForm, RefundForm, SellBatchForm, StatementUploadForm)
from .models import (AutoPayAgreement, AutoPayRun, BankStatement, BankStatementLine, CardCheckout, CashDesk,
                     CashHandover, CashierShift, Payment, PaymentGateway, Refund, StoredPaymentMethod,
                     TerminalTransaction, Voucher, VoucherBatch)

# --- payments ----------------------------------------------------------------------------------


def _manual_payment(*, actor, account, **data):
    return services.accept_payment(actor=actor, account=account, **data)


def _reverse(payment, *, actor, reason):
    return services.reverse_payment(payment, actor=actor, reason=reason)


def _refund(payment, *, actor, amount, destination, reason, idempotency_key):
    services.refund_payment(payment, actor=actor, amount=amount, destination=destination, reason=reason,
                            idempotency_key=idempotency_key)
    return payment


def _payment_context(request, payment):
    return {"refunds": payment.refunds.order_by("created_at"),
            "can_view_account": request.user.has_perm("ledger.view_billingaccount")}


# --- what the form-submission suite types where its generic filler cannot guess --------------------

def _an_account_number():
    from tarifa.ledger.models import BillingAccount

    return BillingAccount.objects.filter(status="active").order_by("pk").first().number


def _handover_sample(view, obj, user):
    """The acting user becomes a cashier of a desk holding cash (only a desk's cashier hands it over)."""
    desk = CashDesk.objects.filter(archived_at__isnull=True).order_by("pk").first()
    services.update_cash_desk(desk, actor="system", cashiers=[*desk.cashiers.all(), user])
    return {"from_desk": desk.code, "destination": "bank", "bank_reference": "DEP-1"}


def _agreement_sample(view, obj, user):
    if view != "add":
        return {}
    card = StoredPaymentMethod.objects.filter(archived_at__isnull=True).order_by("pk").first()
    return {"billing_account": card.billing_account.number, "payment_method": str(card.pk), "threshold": "5.00",
            "amount": "20.00"}


def _statement_sample(view, obj, user):
    from django.core.files.uploadedfile import SimpleUploadedFile

    content = ("date,amount,currency,reference,payer,bank_txn_id\n"
               f"2026-01-05,12.00,USD,{_an_account_number()},Suite Payer,SUITE-TXN-1\n").encode()
    return {"file": SimpleUploadedFile("suite-statement.csv", content, "text/csv")}


register(ModelScreens(
    model=Payment, area="Payments",
    columns=["number", "received_at", "billing_account__number", "amount", "currency", "channel", "status",
             "desk__code", "cashier__username", "gateway__code", "external_reference"],
    form_class=ManualPaymentForm, create=_manual_payment,
    form_sample=lambda view, obj, user: {"account": _an_account_number()},
    filterset_fields=["channel", "status", "currency", "desk", "gateway"],
    search_fields=["number", "billing_account__number", "external_reference", "payer", "provider_txn_id"],
    queryset=lambda request: selectors.payments_for(request.user), ordering=["-created_at"],
    menu_label=_("Payment journal"),
    detail_fields=["number", "billing_account", "amount", "currency", "channel", "status", "received_at",
                   "debit_account", "transfer", "external_reference", "payer", "gateway", "provider_txn_id", "desk",
                   "shift", "cashier", "memo", "refunded_amount", "reversed_at", "reversal_transfer",
                   "reversal_reason", "actor", "created_at"],
    detail_template="payments/payment_detail.html", detail_context=_payment_context,
    actions=[
        Action("reverse", _("Reverse"), "payments.reverse", _reverse, form_class=ReasonForm, danger=True,
               confirm=_("Books the mirror transfer: the customer's balance goes down by the payment's amount."),
               available=lambda p: p.status == Payment.Status.APPLIED and p.refunded_amount == 0),
        Action("refund", _("Refund"), "payments.refund", _refund, form_class=RefundForm,
               available=lambda p: p.refundable > 0),
    ],
))

register(ModelScreens(
    model=Refund, area="Payments",
    columns=["number", "created_at", "payment__number", "billing_account__number", "amount", "currency",
             "destination", "actor"],
    filterset_fields=["destination", "currency"], search_fields=["number", "payment__number", "reason"],
    queryset=lambda request: selectors.refunds_for(request.user), ordering=["-created_at"],
))

# --- cash desks, shifts, hand-overs ----------------------------------------------------------------


def _desk_context(request, desk):
    account = desk.ledger_account
    return {"cash_on_books": account.debits_posted - account.credits_posted,
            "open_shift": desk.shifts.filter(status=CashierShift.Status.OPEN).select_related("cashier").first(),
            "recent_shifts": desk.shifts.select_related("cashier").order_by("-opened_at")[:20],
            "cashiers": desk.cashiers.order_by("username")}


register(ModelScreens(
    model=CashDesk, area="Payments", columns=["code", "name", "currency", "location"],
    form_class=CashDeskForm, create=services.create_cash_desk, update=services.update_cash_desk,
    archive=services.archive_cash_desk, search_fields=["code", "name", "location"],
    queryset=lambda request: selectors.desks_for(request.user), ordering=["code"],
    detail_fields=["code", "name", "currency", "location", "ledger_account", "created_at"],
    detail_template="payments/cashdesk_detail.html", detail_context=_desk_context,
))


def _close_shift(shift, *, actor, counted_cash, note=""):
    return services.close_shift(shift, actor=actor, counted_cash=counted_cash, note=note)


def _shift_context(request, shift):
    context = {"summary": selectors.shift_summary(shift),
               "payments": shift.payments.select_related("billing_account").order_by("-created_at")[:200]}
    if shift.status == CashierShift.Status.OPEN:
        context["expected_now"] = services.expected_cash(shift)
    return context


register(ModelScreens(
    model=CashierShift, area="Payments",
    columns=["number", "desk__code", "cashier__username", "status", "opened_at", "opening_float", "closed_at",
             "expected_cash", "counted_cash", "discrepancy"],
    filterset_fields=["status", "desk"], search_fields=["number", "cashier__username", "desk__code"],
    queryset=lambda request: selectors.shifts_for(request.user), ordering=["-opened_at"],
    detail_template="payments/cashiershift_detail.html", detail_context=_shift_context,
    detail_fields=["number", "desk", "cashier", "status", "currency", "opened_at", "opening_float", "closed_at",
                   "expected_cash", "counted_cash", "discrepancy", "discrepancy_transfer", "closing_note"],
    actions=[Action("close", _("Close shift (supervisor)"), "payments.change_cashiershift", _close_shift,
                    form_class=CloseShiftForm, danger=True,
                    confirm=_("The shift closes for good: the counted cash is compared with the float plus the "
                              "takings, and a difference is booked as a cash discrepancy. The cashier takes no "
                              "more payments on it."),
                    available=lambda s: s.status == CashierShift.Status.OPEN)],
))

register(ModelScreens(
    model=CashHandover, area="Payments",
    columns=["number", "handed_at", "from_desk__code", "destination", "to_desk__code", "amount", "currency",
             "handed_by_label", "received_by__username", "bank_reference"],
    form_class=HandoverForm, create=services.hand_over_cash, form_sample=_handover_sample,
    filterset_fields=["destination", "from_desk", "to_desk"], search_fields=["number", "bank_reference", "note"],
    queryset=lambda request: selectors.handovers_for(request.user), ordering=["-handed_at"],
))

# --- gateways and what they send ---------------------------------------------------------------


def _create_gateway(*, actor, **data):
    gateway, _issued = services.create_gateway(actor=actor, **data)
    return gateway  # the secret is issued from the gateway's page ("Issue new credentials")


def _rotate(gateway, *, actor, request):
    issued = services.rotate_credentials(gateway, actor=actor)
    shown = ", ".join(f"{name}: {value}" for name, value in issued.items())
    messages.warning(request, _("New credentials for %(code)s — %(secret)s — copy them now, they are not shown again.")
                     % {"code": gateway.code, "secret": shown})
    return gateway


register(ModelScreens(
    model=PaymentGateway, area="Payments",
    columns=["code", "name", "kind", "adapter", "currency", "is_active", "min_amount", "max_amount"],
    form_class=GatewayForm, create=_create_gateway, update=services.update_gateway, archive=services.archive_gateway,
    filterset_fields=["kind", "is_active"], search_fields=["code", "name"], ordering=["code"],
    detail_fields=["code", "name", "kind", "adapter", "currency", "is_active", "username", "allowed_ips", "min_amount",
                   "max_amount", "api_url", "clearing_account", "created_at"],
    actions=[Action("rotate-credentials", _("Issue new credentials"), "payments.rotate_credentials", _rotate,
                    confirm=_("The gateway's current password / HMAC secret stops working at once."),
                    pass_request=True, form_class=None)],
))

register(ModelScreens(
    model=TerminalTransaction, area="Payments",
    columns=["checked_at", "gateway__code", "txn_id", "state", "account_ref", "amount", "result", "comment",
             "payment__number"],
    filterset_fields=["gateway", "state", "result"], search_fields=["txn_id", "account_ref"],
    ordering=["-checked_at"],
))

def _checkout_context(request, checkout):
    return {"can_view_account": request.user.has_perm("ledger.view_billingaccount"),
            "expires_at": checkout.created_at + services.cards.CHECKOUT_TTL}


register(ModelScreens(
    model=CardCheckout, area="Payments",
    columns=["created_at", "gateway__code", "billing_account__number", "amount", "currency", "state",
             "provider_txn_id", "payment__number"],
    filterset_fields=["gateway", "state"], search_fields=["provider_txn_id", "billing_account__number"],
    ordering=["-created_at"], detail_template="payments/cardcheckout_detail.html",
    detail_context=_checkout_context,
    detail_fields=["billing_account", "gateway", "amount", "currency", "state", "created_at", "completed_at",
                   "payment", "provider_txn_id", "failure_reason", "save_card"],
))


def _card_checkout(account, *, actor, request, gateway, amount, idempotency_key, save_card=False):
    """A card payment started by an operator (on the phone with the customer): the checkout's page
    links to the provider's payment page (send it to the customer, or open it with them); the
    provider's webhook applies the payment; the page sends the payer back to the account."""
    notify = request.build_absolute_uri(reverse("api:payments-gateway-webhook", args=[gateway.code]))
    back = request.build_absolute_uri(reverse("ledger:billingaccount_detail", args=[account.pk]))
    return services.start_card_checkout(actor=actor, account=account, amount=amount, gateway=gateway,
                                        notify_url=notify, return_url=back, save_card=save_card,
                                        idempotency_key=idempotency_key)


def _wire_card_checkout():
    accounts = screens_for(BillingAccount)
    if accounts is not None and not any(a.name == "card-checkout" for a in accounts.actions):
        accounts.actions.append(Action(
            "card-checkout", _("Card payment"), "payments.add_cardcheckout", _card_checkout,
            form_class=CardCheckoutForm, pass_request=True,
            available=lambda account: account.status == BillingAccount.Status.ACTIVE))


_wire_card_checkout()

register(ModelScreens(
    model=StoredPaymentMethod, area="Payments", menu=False,
    columns=["label", "gateway__code", "billing_account__number", "created_at"],
    archive=services.remove_payment_method, search_fields=["label", "billing_account__number"],
    ordering=["-created_at"], detail_fields=["label", "gateway", "billing_account", "created_at", "archived_at"],
))


def _create_agreement(*, actor, **data):
    return services.create_agreement(actor=actor, **data)


register(ModelScreens(
    model=AutoPayAgreement, area="Payments",
    columns=["billing_account__number", "payment_method__label", "threshold", "amount", "is_active", "created_at"],
    form_class=AgreementForm, create=_create_agreement, update=services.update_agreement,
    form_sample=_agreement_sample,
    archive=services.cancel_agreement, filterset_fields=["is_active"], search_fields=["billing_account__number"],
    ordering=["-created_at"], menu_label=_("Automatic payments"),
))

register(ModelScreens(
    model=AutoPayRun, area="Payments", menu=False,
    columns=["day", "agreement__billing_account__number", "state", "balance_before", "amount", "payment__number",
             "error"],
    filterset_fields=["state"], ordering=["-day", "-created_at"],
))

# --- bank statements -----------------------------------------------------------------------------


def _import_statement(*, actor, file):
    return services.import_statement(actor=actor, filename=file.name, content=file.read())


def _statement_context(request, statement):
    lines = statement.lines.select_related("billing_account", "payment").order_by("line_no")
    current = {state: 0 for state in BankStatementLine.State.values}
    for line in lines:
        current[line.state] += 1
    return {"lines": lines, "current": current}


register(ModelScreens(
    model=BankStatement, area="Payments",
    columns=["number", "created_at", "filename", "lines_read", "lines_booked", "lines_unmatched", "lines_duplicate",
             "lines_rejected", "imported_by"],
    form_class=StatementUploadForm, create=_import_statement, form_sample=_statement_sample, search_fields=["number", "filename"],
    ordering=["-created_at"], detail_template="payments/bankstatement_detail.html",
    detail_context=_statement_context, max_upload_setting="TARIFA_MAX_STATEMENT_FILE_BYTES",
))


def _assign(line, *, actor, account):
    return services.assign_line(line, actor=actor, account=account)


def _ignore(line, *, actor, reason):
    return services.ignore_line(line, actor=actor, reason=reason)


def _unmatched(line):
    return line.state == BankStatementLine.State.UNMATCHED


register(ModelScreens(
    model=BankStatementLine, area="Payments",
    columns=["statement__number", "line_no", "state", "value_date", "amount", "currency", "reference", "payer",
             "bank_txn_id", "billing_account__number", "reason"],
    filterset_fields=["state", "currency"], search_fields=["reference", "payer", "bank_txn_id"],
    ordering=["-created_at", "line_no"], menu_label=_("Bank statement lines"),
    actions=[
        Action("assign", _("Assign to an account"), "payments.resolve_statement_line", _assign,
               form_class=AssignLineForm, available=_unmatched,
               form_sample=lambda line, user: {"account": _an_account_number()}),
        Action("ignore", _("Ignore"), "payments.resolve_statement_line", _ignore, form_class=ReasonForm,
               available=_unmatched,
               confirm=_("The line leaves the queue without being booked to any account; the reason is kept.")),
    ],
))

# --- vouchers ----------------------------------------------------------------------------------------


def _sell(batch, *, actor, paid_via, sold_to="", desk=None):
    return services.sell_batch(batch, actor=actor, paid_via=paid_via, sold_to=sold_to, desk=desk)


def _batch_context(request, batch):
    return {"redeemed": batch.vouchers.filter(state=Voucher.State.REDEEMED).count()}


register(ModelScreens(
    model=VoucherBatch, area="Payments",
    columns=["number", "created_at", "count", "nominal", "currency", "expires_on", "state", "sold_to"],
    filterset_fields=["state", "currency"], search_fields=["number", "sold_to", "note"], ordering=["-created_at"],
    detail_template="payments/voucherbatch_detail.html", detail_context=_batch_context,
    actions=[Action("sell", _("Sell / activate"), "payments.sell_voucherbatch", _sell, form_class=SellBatchForm,
                    form_sample=lambda batch, user: {"paid_via": "bank"},
                    confirm=_("The batch's cards become redeemable and its value (cards × nominal) is booked as "
                              "owed to card holders, paid via the source chosen. A batch is sold once."),
                    available=lambda b: b.state == VoucherBatch.State.GENERATED)],
))

register(ModelScreens(
    model=Voucher, area="Payments", menu=False,
    columns=["serial", "batch__number", "state", "redeemed_at", "billing_account__number", "payment__number"],
    filterset_fields=["state"], search_fields=["serial", "batch__number"], ordering=["serial"],
    detail_fields=["serial", "batch", "state", "redeemed_at", "billing_account", "payment"],
))

register_page(Page("payments:cashier", _("Cashier"), "Payments", "payments.operate_cash_desk"))
register_page(Page("payments:voucher_generate", _("Generate vouchers"), "Payments", "payments.add_voucherbatch"))
register_page(Page("payments:voucher_redeem", _("Redeem a voucher"), "Payments", "payments.redeem_voucher"))

# --- the customer page ----------------------------------------------------------------------------------


def _customer_payments(request, customer):
    qs = selectors.payments_for(request.user).filter(billing_account__customer=customer).order_by("-created_at")
    return {"payments": qs[:20]}


register_panel(_("Payments"), "payments/customer_payments_panel.html", context_func=_customer_payments,
               permission="payments.view_payment", order=40)  # after accounts, services and invoices: what matters first
