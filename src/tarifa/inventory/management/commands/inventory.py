"""`tarifa inventory check`."""

import json
import sys

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "The warehouse of devices: verify its invariants."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)
        sub.add_parser("check", help="Verify every invariant; print a JSON summary; exit 1 naming the offenders.")

    def handle(self, *args, **opts):
        # Prefixed: a method named `check` would override BaseCommand.check (tests/test_commands.py).
        return getattr(self, f"do_{opts['subcommand']}")(**opts)

    def do_check(self, **opts):
        from tarifa.inventory.selectors import check_inventory

        report = check_inventory()
        self.stdout.write(json.dumps(report, indent=2, default=str))
        if not report["ok"]:
            offenders = ", ".join(f"{p['check']}: {next(v for k, v in p.items() if k not in ('check', 'detail'))}"
                                  for p in report["problems"][:20])
            self.stderr.write(f"inventory check FAILED: {offenders}")
            sys.exit(1)
