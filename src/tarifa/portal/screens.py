"""Staff screens: portal logins, business customers' departments, the operator's portal settings,
and the customer page's "Self-care portal" panel (logins, "see what the customer sees")."""

from django.utils.translation import gettext_lazy as _

from tarifa.crm.panels import register_panel
from tarifa.web.registry import ModelScreens, register

from . import services
from .forms import DepartmentForm, PortalSettingsForm, PortalUserForm
from .models import Department, PortalSettings, PortalUser


def _names(records) -> str:
    return ", ".join(str(r) for r in records) or "—"


def _create_user(*, actor, initial_password, departments=(), **data):
    return services.create_portal_user(actor=actor, password=initial_password, departments=list(departments or ()),
                                       **data)


def _update_user(user, *, actor, departments=None, **data):
    return services.update_portal_user(user, actor=actor, departments=list(departments) if departments is not None
                                       else None, **data)


def _user_sample(view, obj, user):
    import secrets

    return {"login": f"portal-{secrets.token_hex(4)}@example.net", "initial_password": "Sample-portal-pass-1"} \
        if view == "add" else {}


register(ModelScreens(
    model=PortalUser, area="Customers", menu_label=_("Portal logins"),
    columns=["login", "customer", "name", "role", "language", "last_login_at", "created_at"],
    form_class=PortalUserForm, create=_create_user, update=_update_user, archive=services.archive_portal_user,
    filterset_fields=["role", "customer"], search_fields=["login", "name", "customer__number"],
    ordering=["login"], form_sample=_user_sample,
    formats={"departments": lambda obj: _names(obj.departments.all())},
    detail_fields=["login", "customer", "name", "role", "departments", "language", "totp_enabled", "notify_email",
                   "notify_sms", "last_login_at", "created_at"],
))


def _create_department(*, actor, subscriptions=(), **data):
    return services.create_department(actor=actor, subscriptions=list(subscriptions or ()), **data)


def _update_department(dept, *, actor, subscriptions=None, **data):
    return services.update_department(dept, actor=actor, subscriptions=list(subscriptions)
                                      if subscriptions is not None else None, **data)


def _department_sample(view, obj, user):
    import secrets

    return {"name": f"Department {secrets.token_hex(3)}", "subscriptions": []} if view == "add" else {"subscriptions": []}


register(ModelScreens(
    model=Department, area="Customers", menu_label=_("Portal departments"),
    columns=["name", "customer", "created_at"], form_class=DepartmentForm, create=_create_department,
    update=_update_department, archive=services.archive_department, filterset_fields=["customer"],
    search_fields=["name", "customer__number"], ordering=["customer", "name"], form_sample=_department_sample,
    formats={"subscriptions": lambda obj: _names(obj.subscriptions.all())},
    detail_fields=["name", "customer", "subscriptions", "created_at"],
))


def _update_settings(obj, *, actor, **data):
    return services.update_settings(obj, actor=actor, **data)


register(ModelScreens(
    model=PortalSettings, area="Administration", menu_label=_("Self-care portal settings"),
    columns=["name", "self_registration", "pause_allowed", "pause_max_days_per_year", "promised_payment",
             "tariff_change_requires_ticket", "updated_at"],
    form_class=PortalSettingsForm, update=_update_settings,
    detail_fields=["name", "self_registration", "allowed_tariffs", "tariff_change_requires_ticket", "pause_allowed",
                   "pause_max_days_per_year", "pause_min_days", "promised_payment", "editable_fields", "notice",
                   "updated_at"],
    formats={"allowed_tariffs": lambda obj: _names(obj.allowed_tariffs.order_by("name")),
             "editable_fields": lambda obj: ", ".join(str(dict(_editable()).get(f, f)) for f in obj.editable_fields)
             or "—"},
))


def _editable():
    from .models import EDITABLE_FIELDS

    return EDITABLE_FIELDS


def _panel(request, customer):
    return {"portal_users": PortalUser.objects.filter(customer=customer, archived_at__isnull=True),
            "may_view_as": request.user.has_perm("portal.view_as_customer"),
            "may_add": request.user.has_perm("portal.add_portaluser")}


register_panel(_("Self-care portal"), "portal/customer_panel.html", context_func=_panel,
               permission="portal.view_portaluser", key="portal.logins", order=80)
