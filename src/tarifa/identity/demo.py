"""Demo staff: roles with typical permission sets, users holding them, API tokens.

Demo users get no password (login disabled): an administrator sets one from the user's
page when a demo login is wanted. Loading twice changes nothing.
"""

from . import services
from .models import ApiToken, Role, User

ROLES = {
    "Administrators": ["identity.view_user", "identity.add_user", "identity.change_user", "identity.set_password",
                       "identity.view_role", "identity.add_role", "identity.change_role",
                       "identity.view_apitoken", "identity.add_apitoken", "identity.revoke",
                       "audit.view_auditevent", "identity.view_dashboard", "identity.view_jobs"],
    "Auditors": ["identity.view_user", "identity.view_role", "audit.view_auditevent", "identity.view_dashboard"],
}

USERS = [
    # username, first name, last name, roles, active
    ("anna.admin", "Anna", "Admin", ["Administrators"], True),
    ("viktor.auditor", "Viktor", "Auditor", ["Auditors"], True),
    ("olga.former", "Olga", "Former", ["Auditors"], False),
]


def load(*, actor) -> dict:
    roles = {}
    for name, perms in ROLES.items():
        roles[name] = Role.objects.filter(name=name).first() or services.create_role(
            actor=actor, name=name, description=f"Demo role: {name.lower()}.",
            permissions=services.permissions_by_name(perms))
    users = {}
    for username, first, last, role_names, active in USERS:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = services.create_user(actor=actor, username=username, first_name=first, last_name=last,
                                        email=f"{username}@example.com", roles=[roles[r] for r in role_names])
            if not active:
                services.deactivate_user(user, actor=actor, reason="left the company (demo)")
        users[username] = user
    viktor = users["viktor.auditor"]
    if not viktor.api_tokens.exists():
        services.issue_token(actor=actor, user=viktor, name="reporting script")
        old, _secret = services.issue_token(actor=actor, user=viktor, name="old laptop")
        services.revoke_token(old, actor=actor)
    return {"roles": len(roles), "users": len(users), "api_tokens": ApiToken.objects.count()}
