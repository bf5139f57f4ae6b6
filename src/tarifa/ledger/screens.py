"""Operator screens: billing accounts, ledger accounts, transfers, holds; the customer page's
"Billing accounts" panel; and customer registration that opens the first account."""

from django.contrib import messages
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from tarifa.crm.models import Contact, Customer
from tarifa.crm.panels import register_panel
from tarifa.web.registry import Action, ModelScreens, Page, Redirect, register, register_page, screens_for, url_for

from . import selectors, services
from .filters import TransferScreenFilter
from .forms import (
    AdjustForm,
    BillingAccountForm,
    OptionalReasonForm,
    PostHoldForm,
    ReverseForm,
    SwitchModeForm,
    SystemAccountForm,
    TransferFundsForm,
    registration_form,
)
from .models import BillingAccount, Hold, LedgerAccount, Transfer

RECENT = 50


def _rows(transfers, ledger_id, balance=None):
    """(transfer, signed amount for this account, the other side's account, the balance after it) for a
    statement table, newest first; the running balance counts back from `balance` (the account's
    posted balance now), None when not given."""
    rows = []
    after = balance
    for t in transfers:
        credited = t.credit_account_id == ledger_id
        signed = t.amount if credited else -t.amount
        rows.append((t, signed, t.debit_account if credited else t.credit_account, after))
        if after is not None:
            after -= signed
    return rows


# --- billing accounts ------------------------------------------------------------------------

def billing_accounts(request=None):
    return BillingAccount.objects.select_related("customer", "ledger_account").annotate(
        current_balance=F("ledger_account__credits_posted") - F("ledger_account__debits_posted"))


def _open(*, actor, customer, currency, payment_mode, credit_limit):
    return services.open_account(actor=actor, customer=customer, currency=currency, payment_mode=payment_mode,
                                 credit_limit=credit_limit or "0")


def _adjust(account, *, actor, amount, reason, idempotency_key):
    services.adjust(actor=actor, account=account, amount=amount, reason=reason, idempotency_key=idempotency_key)
    return account  # back to the account's page


def _transfer_funds(account, *, actor, target, amount, reason, idempotency_key):
    services.transfer_between_accounts(actor=actor, source=account, target=target, amount=amount, reason=reason,
                                       idempotency_key=idempotency_key)
    return account


def _account_context(request, account):
    ledger_id = account.ledger_account_id
    return {
        "ledger": account.ledger_account,
        "rows": _rows(selectors.transfers_of(account)[:RECENT], ledger_id, account.ledger_account.balance),
        "holds": selectors.holds_of(account, pending_only=True).select_related("credit_account")[:RECENT],
        "mode_changes": account.mode_changes.order_by("-effective_date", "-created_at"),
        "account_ref": account.number,
    }


def _active(account):
    return account.status == BillingAccount.Status.ACTIVE


def _empty_account():
    """The permission and form suites close a new, empty account (only those can be closed)."""
    customer = Customer.objects.filter(archived_at__isnull=True).order_by("pk").first()
    return services.open_account(actor="system", customer=customer, currency=services.default_currency())


def _create_system_account(*, actor, code, currency, name=""):
    from tarifa.audit import services as recorded

    account = services.system_account(code, currency, name=name)
    recorded.record(account, actor=actor, action="create", changes={"code": [None, code], "currency": [None, currency]})
    return account


def _switch_mode(account, *, actor, request, payment_mode, reason=""):
    """The switch, and what it settled in flight said to the operator (open online sessions)."""
    account = services.switch_payment_mode(account, actor=actor, payment_mode=payment_mode, reason=reason)
    for note in account.mode_change.effects.get("notes", []):
        messages.info(request, note)
    return account


register(ModelScreens(
    model=BillingAccount, area="Customers",
    columns=["number", "customer", "currency", "payment_mode", "credit_limit", "current_balance", "status"],
    form_class=BillingAccountForm, create=_open,
    update=lambda account, *, actor, credit_limit: services.set_credit_limit(account, actor=actor,
                                                                             credit_limit=credit_limit),
    filterset_fields=["currency", "payment_mode", "status"],
    search_fields=["number", "customer__number", "customer__last_name", "customer__legal_name"],
    queryset=billing_accounts, ordering=["number"],
    detail_template="ledger/billingaccount_detail.html", detail_context=_account_context,
    sample=lambda view: _empty_account() if view == "close" else None,
    form_sample=lambda view, account, user: {"credit_limit": "15.00"} if view == "edit" else {},
    actions=[
        Action("switch-mode", _("Switch payment mode"), "ledger.switch_payment_mode", _switch_mode,
               form_class=SwitchModeForm, available=_active, pass_request=True,
               confirm=_("From today the account is charged in the other mode: prepaid services are suspended "
                         "when the balance runs out; postpaid services run on credit up to the credit limit and "
                         "are invoiced. Open online charging sessions are settled now at what they reported "
                         "(their reservations released). The history keeps both modes.")),
        Action("adjust", _("Adjust balance"), "ledger.adjust", _adjust, form_class=AdjustForm, available=_active),
        Action("transfer", _("Transfer to another account"), "ledger.transfer_funds", _transfer_funds,
               form_class=TransferFundsForm, available=_active),
        Action("close", _("Close account"), "ledger.close_account",
               lambda account, *, actor, reason="": services.close_account(account, actor=actor, reason=reason),
               form_class=OptionalReasonForm, danger=True, available=_active,
               confirm=_("Only an account with a zero balance and no pending holds can be closed. Closing is final.")),
    ],
))


# --- ledger accounts ----------------------------------------------------------------------------

def _ledger_context(request, ledger):
    return {"rows": _rows(selectors.transfers_of(ledger)[:RECENT], ledger.pk, ledger.balance),
            "billing_account": BillingAccount.objects.filter(ledger_account=ledger).first(),
            "account_ref": ledger.code}


register(ModelScreens(
    model=LedgerAccount, area="Billing", menu_label=_("Ledger accounts"),
    columns=["code", "kind", "currency", "name", "current_balance", "debits_posted", "credits_posted",
             "debits_pending", "credits_pending"],
    form_class=SystemAccountForm,
    create=_create_system_account,
    form_sample=lambda view, obj, user: {"code": "cash:SUITE"},
    filterset_fields=["kind", "currency"], search_fields=["code", "name"],
    queryset=lambda request: LedgerAccount.objects.annotate(
        current_balance=F("credits_posted") - F("debits_posted")),
    ordering=["-kind", "code", "currency"],
    detail_template="ledger/ledgeraccount_detail.html", detail_context=_ledger_context,
))


# --- transfers and holds ----------------------------------------------------------------------------

def _reversible(transfer):
    return transfer.kind != Transfer.Kind.REVERSAL and not Transfer.objects.filter(reverses=transfer).exists()


register(ModelScreens(
    model=Transfer, area="Billing",
    columns=["created_at", "kind", "amount", "currency", "debit_account__code", "credit_account__code", "memo",
             "actor"],
    filterset=TransferScreenFilter,
    search_fields=["idempotency_key", "memo", "reference_id"],
    queryset=lambda request: Transfer.objects.select_related("debit_account", "credit_account"),
    ordering=["-id"],
    detail_template="ledger/transfer_detail.html",
    detail_context=lambda request, transfer: {"reversal": Transfer.objects.filter(reverses=transfer).first()},
    actions=[Action("reverse", _("Reverse"), "ledger.reverse_transfer",
                    lambda transfer, *, actor, reason, idempotency_key: services.reverse_transfer(
                        transfer, actor=actor, reason=reason, idempotency_key=idempotency_key),
                    form_class=ReverseForm, danger=True, available=_reversible,
                    confirm=_("Books the mirror transfer (accounts swapped, same amount). A transfer is reversed "
                              "at most once."))],
))


def _pending(hold):
    return hold.state == Hold.State.PENDING


register(ModelScreens(
    model=Hold, area="Billing",
    columns=["created_at", "state", "amount", "currency", "debit_account__code", "credit_account__code", "expires_at",
             "kind"],
    filterset_fields=["state", "currency", "kind"], search_fields=["idempotency_key", "memo", "reference_id"],
    queryset=lambda request: Hold.objects.select_related("debit_account", "credit_account"),
    ordering=["-id"],
    detail_template="ledger/hold_detail.html",
    detail_context=lambda request, hold: {"posting": Transfer.objects.filter(pending=hold).first()},
    actions=[
        Action("post", _("Post"), "ledger.post_hold",
               lambda hold, *, actor, idempotency_key, amount=None, memo="": services.post_hold(
                   hold, actor=actor, idempotency_key=idempotency_key, amount=amount, memo=memo),
               form_class=PostHoldForm, available=_pending),
        Action("void", _("Void"), "ledger.void_hold",
               lambda hold, *, actor, reason="": services.void_hold(hold, actor=actor, reason=reason),
               form_class=OptionalReasonForm, danger=True, available=_pending,
               confirm=_("The reserved amount is released to the account; the hold can no longer be posted.")),
    ],
))


register_page(Page("ledger:check", _("Ledger check"), "Billing", "ledger.view_ledgeraccount"))


# --- the customer page ---------------------------------------------------------------------------

def _panel_context(request, customer):
    accounts = list(selectors.accounts_of(customer))
    ledger_ids = [a.ledger_account_id for a in accounts]
    by_ledger = {a.ledger_account_id: a for a in accounts}
    recent = (Transfer.objects.filter(Q(debit_account_id__in=ledger_ids) | Q(credit_account_id__in=ledger_ids))
              .select_related("debit_account", "credit_account").order_by("-created_at", "-id")[:10])
    rows = []
    for t in recent:
        mine = t.credit_account_id if t.credit_account_id in by_ledger else t.debit_account_id
        rows.append((t, by_ledger[mine], t.amount if t.credit_account_id == mine else -t.amount))
    return {"accounts": accounts, "recent": rows,
            "can_add_account": request.user.has_perm("ledger.add_billingaccount") and customer.is_active,
            "can_view_transfers": request.user.has_perm("ledger.view_transfer")}


register_panel(_("Billing accounts"), "ledger/customer_accounts_panel.html", context_func=_panel_context,
               permission="ledger.view_billingaccount", key="ledger.accounts", order=10)


def _register_customer(*, actor, email="", phone="", currency="", payment_mode="", credit_limit="", **data):
    """The customer form's create: crm's fields plus the first account's terms → register_customer.
    A user who may not open accounts sees no account fields; the customer is registered without one."""
    contacts = []
    if email:
        contacts.append({"kind": Contact.Kind.EMAIL, "value": email, "is_preferred": True})
    if phone:
        contacts.append({"kind": Contact.Kind.PHONE, "value": phone, "is_preferred": True})
    customer = services.register_customer(actor=actor, currency=currency or None, payment_mode=payment_mode or None,
                                          credit_limit=credit_limit or None, contacts=contacts, **data)
    if services.may_open_accounts(actor):
        return customer
    return Redirect(url_for(customer), messages=[
        (messages.SUCCESS, _("Registered %(customer)s.") % {"customer": customer}),
        (messages.WARNING, _("No billing account was opened: that needs the permission to open billing accounts "
                             "(ledger.add_billingaccount). Ask someone who has it to open one."))])


def _wire_customer_registration():
    customers = screens_for(Customer)
    if customers is None or getattr(customers, "_ledger_registration", False):
        return
    customers.create = _register_customer
    if customers.form_class is not None:
        customers.form_class = registration_form(customers.form_class)
    if customers.import_fields:
        customers.import_fields = [*customers.import_fields, "currency", "payment_mode", "credit_limit"]
    customers._ledger_registration = True


_wire_customer_registration()
