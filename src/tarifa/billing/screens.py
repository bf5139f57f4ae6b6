import datetime as dt
from urllib.parse import urlencode

from django.contrib import messages
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from tarifa.crm.panels import panels_for, register_panel
from tarifa.web.registry import Action, ModelScreens, Page, Redirect, register, register_page

from . import billrun, dunning, services
from .forms import (AllocateForm, AssignAccountsForm, AssignmentForm, BillCycleForm, BillNowForm, BillRunForm,
                    CreditForm,
                    DocumentTemplateForm, DunningAssignmentForm, DunningPolicyForm, DunningStepForm, InvoiceNowForm,
                    PendingItemForm, ReasonForm)
from .models import (BillCycle, BillCycleAssignment, BillRun, DocumentTemplate, DunningAction, DunningAssignment,
                     DunningPolicy, DunningStep, Invoice, PendingItem)

AREA = "Billing"


def _invoice_context(request, invoice):
    return {"lines": invoice.lines.order_by("position"),
            "allocations": invoice.allocations.select_related("transfer").order_by("created_at"),
            "credit_notes": invoice.credit_notes.order_by("invoice_date", "number"),
            "can_download": request.user.has_perm("billing.view_invoice"),
            "panels": panels_for(request, invoice, page="invoice")}


def _run_context(request, run):
    return {"failures": run.failures.select_related("billing_account")[:200]}


def _open_invoice(inv):
    return inv.kind == "invoice" and inv.state in ("issued", "partially_paid", "overdue")


def _create_run(*, actor, cycle=None, period, dry_run=False):
    if cycle is not None:
        return billrun.enqueue(actor=actor, period=period, cycle=cycle, dry_run=dry_run)[0]
    queued = billrun.enqueue_all(actor=actor, period=period, dry_run=dry_run)
    notes = [(messages.SUCCESS, _("Bill runs queued for %(period)s: %(cycles)s.") % {
        "period": queued.period, "cycles": ", ".join(r.cycle.code for r in queued.runs)})]
    notes += [(messages.WARNING, _("Cycle %(cycle)s not queued: %(message)s") % r) for r in queued.refused]
    url = reverse("billing:billrun_queued") + "?" + urlencode([("run", r.pk) for r in queued.runs])
    return Redirect(url, notes)


def _assign(*, actor, billing_account, cycle):
    return services.assign_cycle(actor=actor, billing_account=billing_account, cycle=cycle)


# --- what the form-submission suite types where its generic filler cannot guess --------------------

def _account_without(related_name):
    """An active account with no `related_name` row (a fresh one when every demo account has one)."""
    from tarifa.ledger import services as ledger
    from tarifa.ledger.models import BillingAccount

    account = (BillingAccount.objects.filter(status="active", **{f"{related_name}__isnull": True})
               .order_by("pk").first())
    if account is None:
        first = BillingAccount.objects.filter(status="active").order_by("pk").first()
        account = ledger.open_account(actor="system", customer=first.customer, currency=first.currency)
    return account


def _invoice_sample(view, obj, user):
    """An account that lived through a closed period, with a charge in it, and that period. The demo's
    accounts were all opened today, so one is opened (and charged) three months back."""
    from tarifa.kernel import clock
    from tarifa.ledger import services as ledger
    from tarifa.ledger.models import BillingAccount

    start = clock.today().replace(day=1)
    for _back in range(3):
        start = (start - dt.timedelta(days=1)).replace(day=1)
    first = BillingAccount.objects.filter(status="active").order_by("pk").first()
    with clock.travel_to(dt.datetime.combine(start, dt.time(9), tzinfo=dt.timezone.utc)):
        account = ledger.open_account(actor="system", customer=first.customer, currency=first.currency,
                                      payment_mode="postpaid")
        services.assign_cycle(actor="system", billing_account=account,
                              cycle=BillCycle.objects.filter(archived_at__isnull=True).order_by("pk").first())
        services.add_pending_item(actor="system", billing_account=account, kind="one_time_fee",
                                  description="Router", amount="49.00", day=start)
    return {"billing_account": str(account.pk), "period": f"{start:%Y-%m}"}


def _bill_now_sample(account, user):
    """Something not invoiced yet, for "Invoice now" to invoice."""
    services.add_pending_item(actor="system", billing_account=account, kind="one_time_fee", description="Router",
                              amount="49.00")
    return {"purpose": "interim"}


def _allocate_sample(invoice, user):
    from tarifa.ledger.models import Transfer

    payment = (Transfer.objects.filter(credit_account=invoice.billing_account.ledger_account, kind="payment")
               .order_by("-created_at").first())
    return {"transfer": str(payment.pk)} if payment else {}


def _invoice_now(*, actor, billing_account, period):
    return services.generate_invoice(actor=actor, billing_account=billing_account, period=period)


register(ModelScreens(
    model=BillCycle, area=AREA, columns=["code", "name", "day_of_month", "invoice_date_offset_days",
                                         "payment_terms_days", "rounding", "series", "auto_issue"],
    form_class=BillCycleForm, create=services.create_cycle, update=services.update_cycle,
    archive=services.archive_cycle, search_fields=["code", "name"], ordering=["day_of_month", "code"],
    actions=[Action("assign-accounts", _("Assign accounts"), "billing.assign_cycle",
                    lambda cycle, *, actor, **d: services.assign_accounts_bulk(actor=actor, cycle=cycle, **d),
                    form_class=AssignAccountsForm, available=lambda c: c.archived_at is None)],
))

register(ModelScreens(
    model=BillCycleAssignment, area=AREA, columns=["billing_account__number", "cycle__code", "assigned_at", "actor"],
    form_class=AssignmentForm, create=_assign, permissions={"add": "billing.assign_cycle"},
    form_sample=lambda view, obj, user: {"billing_account": str(_account_without("bill_cycle_assignment").pk)},
    filterset_fields=["cycle"], search_fields=["billing_account__number"],
    ordering=["cycle", "billing_account__number"], menu=False,
))

register(ModelScreens(
    model=Invoice, area=AREA,
    columns=["number", "kind", "billing_account__number", "period", "invoice_date", "due_date", "total",
             "paid_amount", "state"],
    form_class=InvoiceNowForm, create=_invoice_now, form_sample=_invoice_sample,
    filterset_fields=["state", "kind", "period", "cycle", "currency"],
    search_fields=["number", "billing_account__number", "period"], ordering=["-invoice_date", "-number"],
    detail_template="billing/invoice_detail.html", detail_context=_invoice_context,
    actions=[
        Action("issue", _("Issue"), "billing.issue_invoice",
               lambda inv, *, actor: services.issue_invoice(inv, actor=actor), available=lambda inv: inv.is_draft,
               confirm=_("The invoice is numbered and booked; it can no longer change.")),
        Action("discard", _("Discard draft"), "billing.issue_invoice",
               lambda inv, *, actor, **d: services.discard_draft(inv, actor=actor, **d), form_class=ReasonForm,
               danger=True, available=lambda inv: inv.is_draft,
               confirm=_("The draft is discarded: it is never numbered nor sent; its charges are billed again "
                         "by the next invoice of the period.")),
        Action("credit", _("Credit note"), "billing.credit_invoice",
               lambda inv, *, actor, **d: services.credit_invoice(inv, actor=actor, **d), form_class=CreditForm,
               available=lambda inv: inv.kind == "invoice" and not inv.is_draft and inv.creditable > 0,
               confirm=_("A numbered credit note is issued and booked: the amount goes back to the customer's "
                         "balance and the customer is notified. It cannot be withdrawn.")),
        Action("allocate", _("Allocate a payment"), "billing.allocate_payment",
               lambda inv, *, actor, transfer, amount=None: services.allocate_payment(
                   actor=actor, invoice=inv, transfer=_transfer(transfer), amount=amount),
               form_class=AllocateForm, available=_open_invoice, form_sample=_allocate_sample),
    ],
))


def _transfer(pk):
    from tarifa.kernel.errors import NotFound
    from tarifa.ledger.models import Transfer

    found = Transfer.objects.filter(pk=pk).first()
    if found is None:
        raise NotFound("No such payment.", code="transfer_not_found", fields={"transfer": ["Unknown."]})
    return found


register(ModelScreens(
    model=PendingItem, area=AREA, columns=["billing_account__number", "kind", "description", "amount", "service_type",
                                           "day"],
    form_class=PendingItemForm, form_sample=lambda view, obj, user: {"amount": "5.00"},
    create=lambda *, actor, day=None, **d: services.add_pending_item(actor=actor, day=day, **d),
    filterset_fields=["kind"], search_fields=["billing_account__number", "description"], ordering=["-day"],
    menu_label=_("Pending charges and credits"),
))

register(ModelScreens(
    model=BillRun, area=AREA, columns=["cycle__code", "period", "dry_run", "status", "accounts", "done", "invoiced",
                                       "skipped", "started_at", "finished_at"],
    form_class=BillRunForm, create=_create_run, filterset_fields=["status", "period", "cycle", "dry_run"],
    permissions={"add": "billing.run_bill_run"},
    confirm=_("A bill run invoices every account of the cycle (or of every cycle) for the period: invoices are "
              "generated and, where the cycle issues automatically, numbered, booked and sent to the customers; "
              "issued invoices cannot be withdrawn, only credited. Tick Dry run to see the result and write nothing."),
    ordering=["-started_at"], detail_template="billing/billrun_detail.html", detail_context=_run_context,
))

register(ModelScreens(
    model=DocumentTemplate, area=AREA, columns=["kind", "language", "note", "updated_at"],
    form_class=DocumentTemplateForm, create=services.create_template, update=services.update_template,
    archive=services.archive_template, filterset_fields=["kind", "language"], ordering=["kind", "language"],
))

register(ModelScreens(
    model=DunningPolicy, area=AREA, columns=["code", "name", "customer_kind", "is_default", "reevaluate_days"],
    form_class=DunningPolicyForm, create=dunning.create_policy, update=dunning.update_policy,
    archive=dunning.archive_policy, search_fields=["code", "name"], ordering=["code"],
    detail_template="billing/dunningpolicy_detail.html",
    detail_context=lambda request, p: {"steps": p.steps.order_by("position")},
))

register(ModelScreens(
    model=DunningStep, area=AREA, columns=["policy__code", "position", "name", "min_days_overdue",
                                           "min_amount_overdue", "min_unpaid_invoices", "action", "late_fee"],
    form_class=DunningStepForm, create=dunning.create_step, update=dunning.update_step,
    form_sample=lambda view, obj, user: {"position": "99"} if view == "add" else {},
    filterset_fields=["policy", "action"], ordering=["policy__code", "position"], menu=False,
))

register(ModelScreens(
    model=DunningAssignment, area=AREA, columns=["billing_account__number", "policy__code", "assigned_at"],
    form_class=DunningAssignmentForm, create=dunning.assign_policy, filterset_fields=["policy"],
    form_sample=lambda view, obj, user: {"billing_account": str(_account_without("dunning_assignment").pk)},
    search_fields=["billing_account__number"], ordering=["billing_account__number"],
    menu_label=_("Dunning policy per account"),
))

register(ModelScreens(
    model=DunningAction, area=AREA, columns=["billing_account__number", "step__name", "action", "taken_at",
                                             "days_overdue", "amount_overdue", "cleared_at"],
    filterset_fields=["action"], search_fields=["billing_account__number"], ordering=["-taken_at"],
    menu_label=_("Dunning history"),
))

register_page(Page("billing:check", _("Revenue assurance"), AREA, "billing.view_invoice"))
register_page(Page("billing:billrun_queued", _("Bill runs queued"), AREA, "billing.view_billrun", menu=False))


def _customer_invoices(request, customer):
    return {"invoices": Invoice.objects.filter(customer=customer).exclude(state="draft")
            .order_by("-invoice_date", "-number")[:24],
            "accounts": customer.billing_accounts.order_by("number")}


register_panel(_("Invoices"), "billing/customer_panel.html", context_func=_customer_invoices,
               permission="billing.view_invoice", key="billing.invoices", order=30)


# "Invoice now" on the billing account (ledger's screen; billing sits above ledger and adds it).
def _bill_now_available(account) -> bool:
    return account.status == "active" and BillCycleAssignment.objects.filter(billing_account=account).exists()


def _add_bill_now_action():
    import tarifa.ledger.screens  # noqa: F401 — the account's screens, registered first
    from tarifa.ledger.models import BillingAccount
    from tarifa.web.registry import screens_for

    account_screens = screens_for(BillingAccount)
    if account_screens is None or any(a.name == "bill-now" for a in account_screens.actions):
        return
    account_screens.actions.append(Action(
        "bill-now", _("Invoice now"), "billing.issue_invoice",
        lambda account, *, actor, purpose="interim", reason="": services.bill_now(
            actor=actor, billing_account=account, purpose=purpose, reason=reason),
        form_class=BillNowForm, available=_bill_now_available, form_sample=_bill_now_sample,
        confirm=_("An invoice is issued now for what is not yet invoiced (interim: up to today; final: "
                  "everything) and e-mailed; the next regular invoice starts where it ends.")))


_add_bill_now_action()
