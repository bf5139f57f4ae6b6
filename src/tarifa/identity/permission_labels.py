"""Permissions in words, grouped by area, for the role editor and the role page: "Customers: view /
add / change / archive", "Payments: reverse" — not 339 raw codes (the code stays in a tooltip)."""

from django import forms
from django.apps import apps
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

AREAS = {
    "crm": _("Customers"), "subscriptions": _("Subscriptions"), "ledger": _("Accounts and ledger"),
    "payments": _("Payments and cash desk"), "billing": _("Billing"), "rating": _("Usage and rating"),
    "catalog": _("Catalog"), "integrations": _("Notifications"), "identity": _("Users and roles"),
    "audit": _("Audit"), "branches": _("Branches"), "web": _("System"),
}
VERBS = {"view": _("view"), "add": _("add"), "change": _("change"), "delete": _("archive")}
ORDER = list(AREAS)


def area_of(perm) -> str:
    label = perm.content_type.app_label
    return str(AREAS.get(label) or capfirst(apps.get_app_config(label).verbose_name))


def subject_of(perm) -> str:
    model = perm.content_type.model_class()
    if model is None:
        return capfirst(perm.content_type.model)
    return capfirst(str(model._meta.verbose_name_plural))


def verb_of(perm) -> str:
    action, _sep, rest = perm.codename.partition("_")
    if action in VERBS and rest == perm.content_type.model:
        return str(VERBS[action])
    name = perm.name
    return name[4:] if name.startswith("Can ") else name


def human_label(perm) -> str:
    """ "Invoices: issue credit notes" """
    return f"{subject_of(perm)}: {verb_of(perm)}"


def grouped(perms) -> list[dict]:
    """[{"area", "rows": [{"subject", "perms": [(perm, verb)]}]}] in the order of AREAS."""
    areas: dict[str, dict[str, list]] = {}
    rank = {}
    for perm in perms:
        area = area_of(perm)
        rank.setdefault(area, ORDER.index(perm.content_type.app_label) if perm.content_type.app_label in ORDER else 99)
        areas.setdefault(area, {}).setdefault(subject_of(perm), []).append(perm)
    std = {"view": 0, "add": 1, "change": 2, "delete": 3}
    out = []
    for area in sorted(areas, key=lambda a: (rank[a], a)):
        rows = []
        for subject, items in areas[area].items():
            items.sort(key=lambda p: (std.get(p.codename.partition("_")[0], 9) if p.codename.partition("_")[2]
                                      == p.content_type.model else 9, p.codename))
            rows.append({"subject": subject, "perms": [(p, verb_of(p)) for p in items]})
        out.append({"area": area, "rows": rows})
    return out


class GroupedPermissionsWidget(forms.CheckboxSelectMultiple):
    """Checkboxes grouped by area, one row per kind of record, each box named "Customers: view"."""

    template_name = "identity/widgets/permissions.html"

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        selected = {str(v) for v in (value or [])}
        queryset = self.choices.queryset
        groups = grouped(queryset)
        for g in groups:
            for row in g["rows"]:
                row["boxes"] = [{"value": str(p.pk), "verb": verb, "label": f"{row['subject']}: {verb}",
                                 "code": f"{p.content_type.app_label}.{p.codename}", "checked": str(p.pk) in selected,
                                 "id": f"id_{name}_{p.pk}"} for p, verb in row["perms"]]
        context["groups"] = groups
        context["field_name"] = name
        return context
