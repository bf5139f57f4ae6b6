from django import forms
from django.utils.translation import gettext_lazy as _

from tarifa.ledger.models import BillingAccount
from tarifa.web import forms as web_forms
from tarifa.web.forms import AmountField, RecordForm

from .models import (BillCycle, BillCycleAssignment, DocumentTemplate, DunningAssignment, DunningPolicy, DunningStep,
                     PendingItem)


def active_accounts():
    return BillingAccount.objects.filter(status="active").order_by("number")


def live_cycles():
    return BillCycle.objects.filter(archived_at__isnull=True).order_by("code")


PeriodField = web_forms.PeriodField  # the one period parser (tarifa.kernel.periods)


class BillCycleForm(RecordForm):
    class Meta:
        model = BillCycle
        fields = ["code", "name", "day_of_month", "invoice_date_offset_days", "payment_terms_days", "rounding",
                  "series", "auto_issue", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.editing:
            del self.fields["code"]


class AssignmentForm(RecordForm):
    class Meta:
        model = BillCycleAssignment
        fields = ["billing_account", "cycle"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["billing_account"].queryset = active_accounts()
        self.fields["cycle"].queryset = live_cycles()

    def validate_unique(self):
        pass  # moving an account to another cycle is the service's job


class AssignAccountsForm(forms.Form):
    payment_mode = forms.ChoiceField(label=_("Accounts"), required=False,
                                     choices=[("", _("All without a cycle")), ("postpaid", _("Postpaid without a cycle")),
                                              ("prepaid", _("Prepaid without a cycle"))])

    def clean_payment_mode(self):
        return self.cleaned_data["payment_mode"] or None


class InvoiceNowForm(forms.Form):
    billing_account = forms.ModelChoiceField(label=_("Billing account"), queryset=BillingAccount.objects.none())
    period = PeriodField()

    def __init__(self, *args, instance=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["billing_account"].queryset = active_accounts()


class CreditForm(forms.Form):
    amount = AmountField(label=_("Amount (gross)"), required=False, max_digits=20, decimal_places=6,
                                help_text=_("Empty: everything still creditable (a full credit note)."))
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 3}))


class AllocateForm(forms.Form):
    transfer = forms.UUIDField(label=_("Payment (ledger transfer id)"))
    amount = AmountField(label=_("Amount"), required=False, max_digits=20, decimal_places=6,
                                help_text=_("Empty: as much as the payment and the invoice allow."))


class BillNowForm(forms.Form):
    purpose = forms.ChoiceField(label=_("Invoice"), choices=[
        ("interim", _("Interim: what is due so far")),
        ("final", _("Final: everything not yet invoiced (the customer leaves)"))], initial="interim")
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False)


class PendingItemForm(RecordForm):
    class Meta:
        model = PendingItem
        fields = ["billing_account", "kind", "description", "amount", "service_type", "day"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["billing_account"].queryset = active_accounts()
        self.fields["day"].required = False


class BillRunForm(forms.Form):
    cycle = forms.ModelChoiceField(label=_("Bill cycle"), queryset=BillCycle.objects.none(), required=False,
                                   empty_label=_("All cycles"),
                                   help_text=_("All cycles: one run per live cycle of the period."))
    period = PeriodField()
    dry_run = forms.BooleanField(label=_("Dry run (write nothing)"), required=False)

    def __init__(self, *args, instance=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["cycle"].queryset = live_cycles()


class DocumentTemplateForm(RecordForm):
    class Meta:
        model = DocumentTemplate
        fields = ["kind", "language", "body", "note"]
        widgets = {"body": forms.Textarea(attrs={"rows": 24, "class": "code"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.editing:
            del self.fields["kind"]

    def validate_unique(self):
        pass


class DunningPolicyForm(RecordForm):
    class Meta:
        model = DunningPolicy
        fields = ["code", "name", "customer_kind", "is_default", "reevaluate_days"]

    def validate_unique(self):
        pass


class DunningStepForm(RecordForm):
    class Meta:
        model = DunningStep
        fields = ["policy", "position", "name", "min_days_overdue", "min_amount_overdue", "min_unpaid_invoices",
                  "action", "template", "late_fee"]

    def validate_unique(self):
        pass


class DunningAssignmentForm(RecordForm):
    class Meta:
        model = DunningAssignment
        fields = ["billing_account", "policy"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["billing_account"].queryset = active_accounts()
        self.fields["policy"].queryset = DunningPolicy.objects.filter(archived_at__isnull=True).order_by("code")

    def validate_unique(self):
        pass  # moving an account to another policy is the service's job


class StatementForm(forms.Form):
    start = forms.DateField(label=_("From"))
    end = forms.DateField(label=_("To"))


class CheckForm(forms.Form):
    period = PeriodField()
    cycle = forms.ModelChoiceField(label=_("Bill cycle"), queryset=BillCycle.objects.none(), required=False,
                                   empty_label=_("All cycles"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["cycle"].queryset = live_cycles()
