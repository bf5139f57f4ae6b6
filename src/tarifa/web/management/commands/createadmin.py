"""`tarifa createadmin`: the first staff superuser, `admin`. Idempotent."""

import os
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

from tarifa.kernel.errors import DomainError

ADMIN_USERNAME = "admin"
PASSWORD_ENV = "TARIFA_ADMIN_PASSWORD"

# These commands are the installation's composition root: they run set-up steps owned by
# apps above the shell (ARCHITECTURE.md rule 2), so they name those services at run time,
# as the shell already does for each app's screens, urls and demo data, rather than
# importing upward.
CREATE_USER = "tarifa.identity.services.create_user"


@dataclass
class AdminResult:
    user: object
    created: bool
    password: str | None = None  # the password, only when it was generated here
    from_env: bool = False

    def describe(self) -> str:
        if not self.created:
            return (f"User {ADMIN_USERNAME!r} already exists; nothing changed. "
                    f"Forgot the password? Run: tarifa changepassword {ADMIN_USERNAME}")
        if self.from_env:
            return f"Created superuser {ADMIN_USERNAME!r} with the password from {PASSWORD_ENV}."
        return (f"Created superuser {ADMIN_USERNAME!r}. Password (shown once, keep it): {self.password}")


def ensure_admin(*, actor="system") -> AdminResult:
    """Create the superuser `admin` when missing (password from TARIFA_ADMIN_PASSWORD, else
    generated). An existing `admin` is left exactly as it is."""
    existing = get_user_model().objects.filter(username__iexact=ADMIN_USERNAME).first()
    if existing is not None:
        return AdminResult(user=existing, created=False)
    password = os.environ.get(PASSWORD_ENV) or ""
    from_env = bool(password)
    if not from_env:
        password = secrets.token_urlsafe(15)
    user = import_string(CREATE_USER)(actor=actor, username=ADMIN_USERNAME, password=password, is_superuser=True)
    return AdminResult(user=user, created=True, password=None if from_env else password, from_env=from_env)


class Command(BaseCommand):
    help = (f"Create the staff superuser {ADMIN_USERNAME!r} if missing. Password from {PASSWORD_ENV}, "
            "otherwise generated and printed once. Does nothing when the user exists.")

    def handle(self, *args, **opts):
        try:
            result = ensure_admin()
        except DomainError as exc:
            raise CommandError(f"Cannot create {ADMIN_USERNAME!r}: {exc.message}") from None
        style = self.style.SUCCESS if result.created else self.style.WARNING
        self.stdout.write(style(result.describe()))
