"""`tarifa createadmin`: the first staff superuser, `admin`. Idempotent."""

import os
import secrets
from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError

from tarifa.kernel.errors import DomainError

ADMIN_USERNAME = "admin"
PASSWORD_ENV = "TARIFA_ADMIN_PASSWORD"


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
    from tarifa.identity import services
    from tarifa.identity.models import User

    existing = User.objects.filter(username__iexact=ADMIN_USERNAME).first()
    if existing is not None:
        return AdminResult(user=existing, created=False)
    password = os.environ.get(PASSWORD_ENV) or ""
    from_env = bool(password)
    if not from_env:
        password = secrets.token_urlsafe(15)
    user = services.create_user(actor=actor, username=ADMIN_USERNAME, password=password, is_superuser=True)
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
