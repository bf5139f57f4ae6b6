from django.utils.translation import gettext_lazy as _

from tarifa.web.registry import Action, ModelScreens, Page, register, register_page

from . import services
from .forms import AssignForm, ResolveForm
from .models import JournalEntry, Mismatch, ReceivedCheckpoint, ReceivedEntry

AREA = "Administration"


register(ModelScreens(
    model=JournalEntry, area=AREA, menu_label=_("Journal entries (federation)"),
    columns=["seq", "kind", "reference", "amount", "currency", "counterparty", "occurred_at", "sealed_at"],
    filterset_fields=["kind", "currency", "counterparty"], search_fields=["reference"],
    queryset=lambda request: JournalEntry.objects.filter(branch=services.selectors.own_code()),
    ordering=["-recorded_at"],
    detail_fields=["branch", "seq", "kind", "reference", "amount", "currency", "counterparty", "payment",
                   "occurred_at", "recorded_at", "sealed_at", "prev_hash", "hash", "details"],
))

register(ModelScreens(
    model=ReceivedEntry, area=AREA, menu_label=_("Journals received (centre)"),
    columns=["branch", "seq", "kind", "reference", "amount", "currency", "counterparty", "occurred_at"],
    filterset_fields=["branch", "kind", "currency", "counterparty"], search_fields=["reference"],
    ordering=["branch", "-seq"],
    detail_fields=["branch", "seq", "kind", "reference", "amount", "currency", "counterparty", "occurred_at",
                   "sealed_at", "received_at", "prev_hash", "hash"],
))

register(ModelScreens(
    model=ReceivedCheckpoint, area=AREA, menu_label=_("Checkpoints received (centre)"),
    columns=["branch", "date", "signature_ok", "received_at"], filterset_fields=["branch", "signature_ok"],
    ordering=["-date", "branch"],
    detail_fields=["branch", "date", "key_id", "signature_ok", "received_at"],
))


def _open(item):
    return item.status in (Mismatch.Status.OPEN, Mismatch.Status.IN_PROGRESS)


register(ModelScreens(
    model=Mismatch, area=AREA, menu_label=_("Journal mismatches"),
    columns=["date", "code", "branch", "counterparty", "reference", "status", "assignee", "reported_by"],
    filterset_fields=["status", "code", "branch", "counterparty", "date"], search_fields=["reference", "branch"],
    queryset=lambda request: Mismatch.objects.filter(node=services.selectors.own_code()).select_related("assignee"),
    ordering=["-date", "status", "branch"],
    detail_fields=["date", "code", "branch", "counterparty", "reference", "status", "assignee", "resolution",
                   "details", "reported_by", "found_at", "last_found_at", "resolved_at"],
    actions=[
        Action("assign", _("Assign"), "journals.change_mismatch",
               lambda item, *, actor, assignee: services.assign_mismatch(item, actor=actor, assignee=assignee),
               form_class=AssignForm, available=_open,
               form_sample=lambda item, user: {"assignee": user.pk}),
        Action("resolve", _("Resolve"), "journals.change_mismatch",
               lambda item, *, actor, resolution: services.resolve_mismatch(item, actor=actor, resolution=resolution),
               form_class=ResolveForm, available=_open,
               form_sample=lambda item, user: {"resolution": "Applied by hand at the owner."}),
    ],
))

register_page(Page("journals:reconcile", _("Reconcile journals"), AREA, "journals.reconcile"))
