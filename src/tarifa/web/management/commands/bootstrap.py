"""`tarifa bootstrap`: make the database ready to serve. Safe to run any number of times.

1. apply migrations;
2. make this node's branch row match the settings (TARIFA_BRANCH_CODE / _NAME);
3. only on an empty database (no users yet): create the superuser `admin` and load the
   demo data, in one transaction, so a failed demo load leaves the database empty and
   the next run tries again. Later runs reuse whatever is there.
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils.module_loading import import_string

from tarifa.kernel.errors import DomainError

from .createadmin import ADMIN_USERNAME, AdminResult, ensure_admin

# Two bootstraps at once (e.g. `make run` twice) take turns.
ADVISORY_LOCK_KEY = 0x7A_72_1F_A0
# Owned by an app above the shell: named, not imported (see createadmin.CREATE_USER).
ENSURE_LOCAL_BRANCH = "tarifa.branches.services.ensure_local_branch"


@dataclass
class BootstrapResult:
    fresh: bool  # the database had no users: admin and demo data were created now
    admin: AdminResult | None = None
    demo: dict | None = None

    def describe(self) -> str:
        if self.fresh:
            return self.admin.describe()
        if get_user_model().objects.filter(username__iexact=ADMIN_USERNAME).exists():
            return (f"Existing database reused; log in as {ADMIN_USERNAME!r} with the password you were given "
                    f"(reset it with: tarifa changepassword {ADMIN_USERNAME}).")
        return "Existing database reused (it has users but no 'admin'; run `tarifa createadmin` to add one)."


def bootstrap(*, stdout=None, verbosity=1, demo=True) -> BootstrapResult:
    User = get_user_model()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
    try:
        # migrate wraps its stdout itself; a wrapped wrapper would end "Applying x..." with a newline.
        call_command("migrate", interactive=False, verbosity=verbosity, stdout=getattr(stdout, "_out", stdout))
        import_string(ENSURE_LOCAL_BRANCH)(actor="system")
        with transaction.atomic():
            if User.objects.exists():
                return BootstrapResult(fresh=False)
            admin = ensure_admin(actor="system")
            summary = None
            if demo:
                from tarifa.web.demo_loader import load_demo

                summary = load_demo(actor=admin.user, stdout=stdout if verbosity > 1 else None)
            return BootstrapResult(fresh=True, admin=admin, demo=summary)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])


class Command(BaseCommand):
    help = ("Apply migrations, register this branch and, on an empty database, create the superuser "
            "'admin' and load the demo data. Safe to repeat: existing data is reused.")
    requires_system_checks = []  # migrate runs them

    def add_arguments(self, parser):
        parser.add_argument("--no-demo", action="store_true", help="On an empty database, create only 'admin'.")

    def handle(self, *args, **opts):
        try:
            result = bootstrap(stdout=self.stdout, verbosity=opts["verbosity"], demo=not opts["no_demo"])
        except DomainError as exc:
            raise CommandError(f"Bootstrap failed: {exc.message}") from None
        if result.fresh and result.demo is not None:
            self.stdout.write(f"Demo data loaded: {', '.join(result.demo) or 'no app provides demo data yet'}.")
        self.stdout.write(self.style.SUCCESS(result.describe()) if result.fresh else result.describe())
