from django.contrib import messages
from django.utils.translation import gettext_lazy as _

from tarifa.web.registry import Action, ModelScreens, register

from . import services
from .forms import IssueTokenForm, RoleForm, SetPasswordForm, UserForm
from .models import ApiToken, Role, User
from .permission_labels import grouped


def _create_user(*, actor, roles=(), password="", **fields):
    return services.create_user(actor=actor, roles=list(roles), password=password or None, **fields)


def _update_user(user, *, actor, roles=None, **fields):
    fields.pop("username", None)
    return services.update_user(user, actor=actor, roles=list(roles) if roles is not None else None, **fields)


def _create_role(*, actor, name, description="", permissions=()):
    return services.create_role(actor=actor, name=name, description=description, permissions=list(permissions))


def _update_role(role, *, actor, name, description="", permissions=()):
    return services.update_role(role, actor=actor, name=name, description=description, permissions=list(permissions))


def _issue(user, *, actor, request, name="", expires_at=None):
    token, secret = services.issue_token(actor=actor, user=user, name=name, expires_at=expires_at)
    # Shown once: only its hash is stored.
    messages.warning(request, _("Token %(name)s: %(secret)s — copy it now, it is not shown again.")
                     % {"name": name or token.prefix, "secret": secret})
    return user


def _as_peer(user, acting):
    """form_sample: an administrator manages only users holding no right they lack; the acting
    user of the form suite gets the subject's roles first."""
    services.update_user(acting, actor="system", roles=[*acting.roles.all(), *user.roles.all()])
    return {}


register(ModelScreens(
    model=User, area="Administration", columns=["username", "first_name", "last_name", "email", "is_active", "last_login"],
    form_class=UserForm, create=_create_user, update=_update_user,
    form_sample=lambda view, user, acting: _as_peer(user, acting) if user is not None else {},
    import_fields=["username", "first_name", "last_name", "email"],
    filterset_fields=["is_active"], search_fields=["username", "first_name", "last_name", "email"],
    ordering=["username"],
    detail_fields=["username", "first_name", "last_name", "email", "is_active", "is_superuser", "date_joined", "last_login", "branch"],
    detail_template="identity/user_detail.html",
    actions=[
        Action("set-password", _("Set password"), "identity.set_password",
               lambda user, *, actor, password: services.set_password(user, actor=actor, password=password),
               form_class=SetPasswordForm, form_sample=_as_peer),
        Action("deactivate", _("Deactivate"), "identity.change_user",
               lambda user, *, actor: services.deactivate_user(user, actor=actor, reason="deactivated"),
               confirm=_("The user can no longer log in; their API tokens are revoked."), danger=True,
               available=lambda user: user.is_active),
        Action("reactivate", _("Reactivate"), "identity.change_user",
               lambda user, *, actor: services.update_user(user, actor=actor, is_active=True),
               available=lambda user: not user.is_active),
        Action("issue-token", _("Issue API token"), "identity.add_apitoken", _issue, form_class=IssueTokenForm,
               pass_request=True, form_sample=_as_peer),
    ],
    detail_context=lambda request, user: {"roles": user.roles.order_by("name"),
                                          "tokens": user.api_tokens.order_by("-created_at")},
))

register(ModelScreens(
    model=Role, area="Administration", columns=["name"], form_class=RoleForm,
    create=_create_role, update=_update_role, search_fields=["name"], ordering=["name"],
    detail_fields=["name", "description"], detail_template="identity/role_detail.html",
    detail_context=lambda request, role: {
        "permissions": role.permissions.select_related("content_type").order_by("content_type__app_label", "codename"),
        "permission_groups": grouped(role.permissions.select_related("content_type")),
        "members": role.users.order_by("username")},
))

register(ModelScreens(
    model=ApiToken, area="Administration", columns=["prefix", "user__username", "name", "created_at", "expires_at", "last_used_at", "revoked_at"],
    search_fields=["name", "prefix", "user__username"], ordering=["-created_at"], menu_label=_("API tokens"),
    detail_fields=["prefix", "user", "name", "created_at", "expires_at", "last_used_at", "revoked_at"],
    actions=[Action("revoke", _("Revoke"), "identity.revoke",
                    lambda token, *, actor: services.revoke_token(token, actor=actor), danger=True,
                    confirm=_("Requests with this token will be refused from now on."),
                    available=lambda token: token.revoked_at is None)],
))
