"""Registers the releases' line in `tarifa federation status` / the status API, their problems, their
subcommands of `tarifa federation` and their dashboard tile (called from apps.ready)."""

import json
import sys

from django.core.management.base import CommandError


def _status():
    from tarifa.federation import selectors as federation

    from . import selectors

    return selectors.status() if federation.enabled() else None


def _problems():
    from tarifa.federation import selectors as federation

    from . import selectors

    return selectors.problems() if federation.enabled() else []


def _configure_publish(parser):
    parser.add_argument("--effective-date", help="YYYY-MM-DD (default: today).")
    parser.add_argument("--note", default="")
    parser.add_argument("--dry-run", action="store_true", help="Show what would be published, and the difference "
                                                                "from the last release; publish nothing.")


def _run_publish(command, *, effective_date=None, note="", dry_run=False, **opts):
    import datetime as dt

    from tarifa.kernel.errors import DomainError

    from . import services

    if dry_run:
        command.out(services.preview())
        return
    try:
        day = dt.date.fromisoformat(effective_date) if effective_date else None
        release = services.publish(actor="cli", effective_date=day, note=note)
    except ValueError:
        raise CommandError(f"--effective-date: not a date: {effective_date!r}") from None
    except DomainError as exc:
        raise CommandError(f"{exc.code}: {exc.message}") from None
    command.out({"number": release.number, "content_hash": release.content_hash,
                 "effective_date": release.effective_date.isoformat(), "counts": release.counts,
                 "changes": release.changes})


def _configure_pull(parser):
    pass


def _run_pull(command, **opts):
    from tarifa.kernel.errors import DomainError

    from . import services

    try:
        result = services.pull(actor="cli")
    except DomainError as exc:
        command.stdout.write(json.dumps({"ok": False, "error": {"code": exc.code, "message": exc.message}}))
        sys.exit(1)
    command.out({"ok": not result["refused"], **result})
    if result["refused"]:
        sys.exit(1)


def _configure_release(parser):
    pass


def _run_release(command, **opts):
    from . import selectors

    command.out(selectors.status())


def register():
    from tarifa.federation import commands, extensions

    extensions.status_entry("release", _status)
    extensions.problem_source(_problems)
    commands.register("publish-release", help="Centre: publish the reference data as the next signed release "
                                              "(--dry-run: show the difference only).",
                      arguments=_configure_publish, run=_run_publish)
    commands.register("pull-releases", help="Branch: fetch and apply the centre's releases after the one in force; "
                                            "exit 1 when one is refused.", arguments=_configure_pull, run=_run_pull)
    commands.register("release", help="The reference release in force here (JSON).", arguments=_configure_release,
                      run=_run_release)
