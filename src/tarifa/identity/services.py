"""Staff users, roles and API tokens. The only write path for identity records."""

import datetime as dt
import secrets

from django.contrib.auth import authenticate as django_authenticate
from django.contrib.auth.models import Permission
from django.contrib.postgres.expressions import ArraySubquery
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import OuterRef, Value
from django.db.models.functions import Concat

from tarifa.audit import services as recorded
from tarifa.kernel.clock import now
from tarifa.kernel.errors import DomainError, PermissionDenied, ValidationFailed

from .models import ApiToken, LoginAttempt, Role, User, hash_token

LOGIN_WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_IP = 20
TOKEN_PREFIX = "tfa_"


class LoginThrottled(DomainError):
    code = "login_throttled"
    status = 429
    retry_after = int(LOGIN_WINDOW.total_seconds())


class InvalidCredentials(DomainError):
    code = "invalid_credentials"
    status = 401


def permissions_by_name(names) -> list[Permission]:
    """Resolve `app_label.codename` names; unknown names are a field error."""
    names = list(names)
    wanted = {tuple(name.partition(".")[::2]) for name in names}
    # One query, not one per name: a role may hold hundreds of permissions.
    found = {(p.content_type.app_label, p.codename): p
             for p in Permission.objects.select_related("content_type")
             .filter(content_type__app_label__in={app for app, _ in wanted}, codename__in={c for _, c in wanted})}
    perms, unknown = [], []
    for name in names:
        perm = found.get(tuple(name.partition(".")[::2]))
        (perms.append(perm) if perm else unknown.append(name))
    if unknown:
        raise ValidationFailed(f"Unknown permissions: {', '.join(unknown)}", code="unknown_permission",
                               fields={"permissions": [f"Unknown permission {n!r}." for n in unknown]})
    return perms


def permission_name(perm: Permission) -> str:
    return f"{perm.content_type.app_label}.{perm.codename}"


# --- who may grant what ----------------------------------------------------------------------
# One place for the rules, so the screens, the API and the command line share them. An actor
# that is not a user (a string such as "system", "cli" or "demo", or None) is the platform
# itself: operators with shell access, demo loaders and jobs are not limited here.

ALL = "*all*"


class RightsExceeded(PermissionDenied):
    code = "rights_exceeded"


def _is_person(actor) -> bool:
    return actor is not None and not isinstance(actor, str) and getattr(actor, "pk", None) is not None


def rights(user) -> set[str] | str:
    """The user's permissions as `app_label.codename` names, read fresh from the database
    (not Django's per-object cache, which a role change in this transaction would make stale);
    `ALL` for an active superuser."""
    if user.is_superuser:
        return ALL
    names = set()
    for app, codename in (Permission.objects.filter(roles__users=user)
                          .values_list("content_type__app_label", "codename")):
        names.add(f"{app}.{codename}")
    for app, codename in user.user_permissions.values_list("content_type__app_label", "codename"):
        names.add(f"{app}.{codename}")
    return names


def _role_rights(roles) -> set[str]:
    return {f"{app}.{codename}" for app, codename in Permission.objects.filter(roles__in=list(roles))
            .values_list("content_type__app_label", "codename")}


def _beyond(actor_rights, wanted) -> list[str]:
    """The permissions in `wanted` the actor does not hold, sorted."""
    return [] if actor_rights == ALL else sorted(set(wanted) - actor_rights)


def _refuse_beyond(actor_rights, wanted, what: str, field: str) -> None:
    missing = _beyond(actor_rights, wanted)
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        message = f"{what}: you do not hold {shown} yourself."
        raise RightsExceeded(message, fields={field: [message]})


def check_manage_user(actor, user, *, doing: str = "change") -> None:
    """`actor` may change `user` (profile, roles, password, activation, tokens): a superuser only
    by a superuser; another user only when the actor holds every permission that user holds."""
    if not _is_person(actor) or actor.pk == user.pk:
        return
    if user.is_superuser and not actor.is_superuser:
        raise RightsExceeded(f"Only a superuser may {doing} a superuser ({user.get_username()}).")
    missing = _beyond(rights(actor), rights(user) if not user.is_superuser else set())
    if missing:
        raise RightsExceeded(
            f"You may not {doing} {user.get_username()}: they hold rights you do not "
            f"({', '.join(missing[:5])}{f' and {len(missing) - 5} more' if len(missing) > 5 else ''}).")


def _check_role_grant(actor, user, before_roles, after_roles) -> None:
    """Roles given or taken away must be within the actor's own rights; nobody raises their own."""
    if not _is_person(actor):
        return
    before, after = {r.pk: r for r in before_roles}, {r.pk: r for r in after_roles}
    added = [r for pk, r in after.items() if pk not in before]
    removed = [r for pk, r in before.items() if pk not in after]
    held = rights(actor)
    if added:
        if user is not None and actor.pk == user.pk and held != ALL:
            gained = _role_rights(added) - held
            if gained:
                message = ("You cannot raise your own rights: another user must grant you "
                           f"{', '.join(sorted(gained)[:5])}{f' and {len(gained) - 5} more' if len(gained) > 5 else ''}.")
                raise RightsExceeded(message, fields={"roles": [message]})
        for role in added:
            _refuse_beyond(held, _role_rights([role]), f"You may not grant the role {role.name}", "roles")
    for role in removed:
        _refuse_beyond(held, _role_rights([role]), f"You may not take away the role {role.name}", "roles")


def _check_password(password: str, user=None) -> None:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), code="weak_password", fields={"password": exc.messages}) from None


@transaction.atomic
def create_user(*, actor, username: str, password: str | None = None, email: str = "", first_name: str = "",
                last_name: str = "", roles=(), is_superuser: bool = False) -> User:
    """Create a staff user with roles. Argon2-hashed password; none means login disabled.

    A person as actor may only give roles within their own rights, and only a superuser makes one."""
    if is_superuser and _is_person(actor) and not actor.is_superuser:
        raise RightsExceeded("Only a superuser may make a superuser.")
    _check_role_grant(actor, None, [], list(roles))
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationFailed(f"User {username!r} already exists.", code="duplicate_username",
                               fields={"username": ["A user with this name already exists."]})
    user = User(username=username, email=email, first_name=first_name, last_name=last_name,
                is_superuser=is_superuser, is_staff=is_superuser)
    recorded.validate(user, exclude=["password"])
    if password:
        _check_password(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save(force_insert=True)
    user.roles.set(list(roles))
    recorded.record(user, actor=actor, action="create",
                    changes=recorded.diff({}, {**recorded.snapshot(user), "roles": sorted(r.name for r in roles)}))
    return user


@transaction.atomic
def update_user(user: User, *, actor, roles=None, **fields) -> User:
    """Change a user's profile, activation or roles (see `check_manage_user`, `_check_role_grant`)."""
    check_manage_user(actor, user)
    if "is_superuser" in fields or "is_staff" in fields:
        if _is_person(actor) and not actor.is_superuser:
            raise RightsExceeded("Only a superuser may make or unmake a superuser.")
        if _is_person(actor) and actor.pk == user.pk and not fields.get("is_superuser", True):
            raise DomainError("You cannot remove your own superuser status.", code="self_demotion")
    if roles is not None:
        _check_role_grant(actor, user, list(user.roles.all()), list(roles))
    before_roles = sorted(user.roles.values_list("name", flat=True))
    user = recorded.update(user, actor=actor, **fields)
    if roles is not None:
        user.roles.set(list(roles))
        after_roles = sorted(r.name for r in roles)
        if after_roles != before_roles:
            recorded.record(user, actor=actor, action="roles", changes={"roles": [before_roles, after_roles]})
    return user


@transaction.atomic
def set_password(user: User, *, actor, password: str) -> User:
    """Set `user`'s password. A person needs `identity.set_password` (for their own password too:
    it is the permission to set passwords), and for another user rights at least equal to theirs."""
    if _is_person(actor):
        if not actor.has_perm("identity.set_password"):
            raise PermissionDenied("Setting a password needs the permission identity.set_password.",
                                   fields={"password": ["You may not set passwords."]})
        check_manage_user(actor, user, doing="set the password of")
    _check_password(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    recorded.record(user, actor=actor, action="set_password", message="Password changed")
    return user


@transaction.atomic
def deactivate_user(user: User, *, actor, reason: str = "") -> User:
    """Users are deactivated, never deleted; their tokens are revoked with them."""
    if actor is not None and getattr(actor, "pk", None) == user.pk:
        raise DomainError("You cannot deactivate yourself.", code="self_deactivation")
    check_manage_user(actor, user, doing="deactivate")
    user = recorded.update(user, actor=actor, action="deactivate", message=reason, is_active=False)
    for token in user.api_tokens.filter(revoked_at__isnull=True):
        revoke_token(token, actor=actor)
    return user


@transaction.atomic
def create_role(*, actor, name: str, description: str = "", permissions=()) -> Role:
    """A new role; a person may only put in it permissions they hold themselves."""
    if _is_person(actor):
        _refuse_beyond(rights(actor), {permission_name(p) for p in permissions},
                       "You may not give this role those permissions", "permissions")
    if Role.objects.filter(name__iexact=name).exists():
        raise ValidationFailed(f"Role {name!r} already exists.", code="duplicate_role",
                               fields={"name": ["A role with this name already exists."]})
    role = recorded.create(Role, actor=actor, name=name, description=description)
    role.permissions.set(list(permissions))
    recorded.record(role, actor=actor, action="permissions",
                    changes={"permissions": [[], sorted(permission_name(p) for p in permissions)]})
    return role


@transaction.atomic
def update_role(role: Role, *, actor, name: str | None = None, description: str | None = None, permissions=None) -> Role:
    """Rename or re-permission a role. Editing its permissions is granting: a person may add or
    remove only permissions they hold, and may not add any to a role they hold themselves."""
    if permissions is not None and _is_person(actor):
        current = {permission_name(p) for p in role.permissions.select_related("content_type")}
        wanted = {permission_name(p) for p in permissions}
        added, removed = wanted - current, current - wanted
        if added and not actor.is_superuser and role.users.filter(pk=actor.pk).exists():
            raise RightsExceeded(f"You cannot add permissions to {role.name}: you hold this role yourself.",
                                 fields={"permissions": ["You cannot add permissions to a role you hold."]})
        held = rights(actor)
        _refuse_beyond(held, added, f"You may not add those permissions to {role.name}", "permissions")
        _refuse_beyond(held, removed, f"You may not take those permissions from {role.name}", "permissions")
    if name is not None and Role.objects.filter(name__iexact=name).exclude(pk=role.pk).exists():
        raise ValidationFailed(f"Role {name!r} already exists.", code="duplicate_role",
                               fields={"name": ["A role with this name already exists."]})
    changes = {k: v for k, v in {"name": name, "description": description}.items() if v is not None}
    if changes:
        role = recorded.update(role, actor=actor, **changes)
    if permissions is not None:
        before = sorted(permission_name(p) for p in role.permissions.select_related("content_type"))
        role.permissions.set(list(permissions))
        after = sorted(permission_name(p) for p in permissions)
        if before != after:
            recorded.record(role, actor=actor, action="permissions", changes={"permissions": [before, after]})
    return role


def _throttled(username: str, ip: str | None) -> bool:
    since = now() - LOGIN_WINDOW
    recent = LoginAttempt.objects.filter(at__gte=since, succeeded=False)
    if recent.filter(username__iexact=username).count() >= MAX_FAILURES_PER_USER:
        return True
    return bool(ip) and recent.filter(ip=ip).count() >= MAX_FAILURES_PER_IP


def authenticate(*, username: str, password: str, ip: str | None = None, request=None) -> User:
    """Check credentials, throttling repeated failures per username and per address.

    Every attempt is logged; after too many failures in the window the account is
    refused (even with the right password) until the window passes.
    """
    if _throttled(username, ip):
        LoginAttempt.objects.create(username=username[:150], ip=ip, succeeded=False)
        raise LoginThrottled("Too many failed login attempts. Try again in 15 minutes.")
    user = django_authenticate(request, username=username, password=password)
    LoginAttempt.objects.create(username=username[:150], ip=ip, succeeded=user is not None)
    if user is None or not user.is_active:
        raise InvalidCredentials("Wrong username or password.")
    return user


@transaction.atomic
def issue_token(*, actor, user: User, name: str = "", expires_at=None) -> tuple[ApiToken, str]:
    """Create a token for `user`; returns (token, secret). The secret is never stored.

    A token acts with all of its user's rights, so issuing one for another user needs
    `identity.add_apitoken` and rights at least equal to that user's (a superuser's only by a
    superuser); it is audited on the token and on the user, naming the issuer and the user."""
    for_other = _is_person(actor) and actor.pk != user.pk
    if for_other:
        if not actor.has_perm("identity.add_apitoken"):
            raise PermissionDenied("You may not issue tokens for other users.")
        check_manage_user(actor, user, doing="issue an API token for")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name[:100], prefix=raw[:12], key_hash=hash_token(raw),
                                    expires_at=expires_at)
    issuer = recorded.actor_label(actor)
    who = {"user": [None, user.get_username()], "issued_by": [None, issuer], "token": [None, token.prefix]}
    if for_other:
        message = f"API token {token.prefix}… issued by {issuer} for {user.get_username()}"
        recorded.record(token, actor=actor, action="issue_for_other", changes=who, message=message)
        recorded.record(user, actor=actor, action="token_issued_by_other", changes=who, message=message)
    else:
        recorded.record(token, actor=actor, action="issue", changes=who, message=name)
    return token, raw


@transaction.atomic
def revoke_token(token: ApiToken, *, actor) -> ApiToken:
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        raise DomainError("Token already revoked.", code="already_revoked", status=409)
    token.revoked_at = now()
    token.save(update_fields=["revoked_at"])
    recorded.record(token, actor=actor, action="revoke")
    return token


def _permission_names(**where) -> ArraySubquery:
    """The "app_label.codename" names of the permissions matching `where`, as one array."""
    return ArraySubquery(Permission.objects.filter(**where).annotate(
        perm_name=Concat("content_type__app_label", Value("."), "codename")).values("perm_name"))


def token_user(raw: str) -> tuple[User, ApiToken] | None:
    """The active user of a valid token, or None. Touches `last_used_at` at most once a minute.

    One statement: the token, its user and the user's permissions (own and through roles) come
    together, and the permission caches Django's backend keeps on the user object (for this
    request only) are filled from them, so `has_perm` asks the database nothing more. Nothing is
    cached across requests: a revoked token or a changed role counts from the next request."""
    token = (ApiToken.objects.select_related("user").filter(key_hash=hash_token(raw))
             .annotate(own_perms=_permission_names(user=OuterRef("user_id")),
                       role_perms=_permission_names(roles__users=OuterRef("user_id"))).first())
    at = now()
    if token is None or not token.is_valid(at) or not token.user.is_active:
        return None
    user = token.user
    if not user.is_superuser:  # a superuser's permissions are all of them: the backend reads them itself
        user._user_perm_cache = set(token.own_perms)
        user._group_perm_cache = set(token.role_perms)
        user._perm_cache = user._user_perm_cache | user._group_perm_cache
    if token.last_used_at is None or at - token.last_used_at > dt.timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=at)
    return token.user, token
