"""`tarifa ledger check | expire-holds | balance NUMBER | partitions [--ensure [--ahead N]]`."""

import datetime as dt
import json
import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone


class Command(BaseCommand):
    help = "The double-entry ledger: verify its invariants, expire holds, show an account's balance."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)
        sub.add_parser("check", help="Verify every invariant; print a JSON summary; exit 1 naming the offenders.")
        expire = sub.add_parser("expire-holds", help="Expire the pending holds due by --as-of (default: now).")
        expire.add_argument("--as-of", help="ISO date-time, e.g. 2026-05-01T12:00:00Z")
        balance = sub.add_parser("balance", help="Print a billing account's balance as JSON.")
        balance.add_argument("number", help="Billing account number, e.g. HQ-A0000001")
        parts = sub.add_parser("partitions", help="List the transfer table's monthly partitions as JSON; "
                                                  "--ensure makes the missing ones up to --ahead months ahead.")
        parts.add_argument("--ensure", action="store_true", help="Make the missing partitions first.")
        parts.add_argument("--ahead", type=int, default=None, help="Months ahead (default: the job's, 3).")

    def handle(self, *args, **opts):
        # Subcommand methods are prefixed: a method named `check` would override BaseCommand.check,
        # the system check Django runs before every command (so every `tarifa ledger …` ran the
        # whole ledger check first; tests/test_commands.py keeps every command free of such clashes).
        return getattr(self, f"do_{opts['subcommand'].replace('-', '_')}")(**opts)

    def do_check(self, **opts):
        from tarifa.ledger.selectors import check_ledger

        report = check_ledger()
        self.stdout.write(json.dumps(report, indent=2))
        if not report["ok"]:
            offenders = ", ".join(f"{p['check']}: {next(v for k, v in p.items() if k not in ('check', 'detail'))}"
                                  for p in report["problems"][:20])
            self.stderr.write(f"ledger check FAILED: {offenders}")
            sys.exit(1)

    def do_expire_holds(self, *, as_of=None, **opts):
        from tarifa.kernel.clock import now
        from tarifa.ledger.services import expire_holds

        when = now()
        if as_of:
            try:
                when = dt.datetime.fromisoformat(as_of.replace("Z", "+00:00"))
            except ValueError:
                raise CommandError(f"--as-of: not an ISO date-time: {as_of!r}") from None
            if timezone.is_naive(when):
                when = timezone.make_aware(when)
        self.stdout.write(json.dumps({"expired": expire_holds(as_of=when), "as_of": when.isoformat()}))

    def do_partitions(self, *, ensure=False, ahead=None, **opts):
        from tarifa.kernel.errors import DomainError
        from tarifa.ledger import selectors, services

        made = None
        if ensure:
            try:
                made = services.ensure_transfer_partitions(
                    services.PARTITION_MONTHS_AHEAD if ahead is None else ahead)
            except DomainError as exc:
                raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps({"made": made, "partitions": selectors.transfer_partitions()}, indent=2))

    def do_balance(self, *, number, **opts):
        from tarifa.ledger.selectors import billing_account_by_number

        account = billing_account_by_number(number)
        if account is None:
            raise CommandError(f"No billing account {number}.")
        la = account.ledger_account
        self.stdout.write(json.dumps({
            "number": account.number, "customer": account.customer.number, "currency": account.currency,
            "payment_mode": account.payment_mode, "status": account.status,
            "credit_limit": f"{account.credit_limit:f}", "balance": f"{la.balance:f}",
            "available": f"{la.available:f}", "debits_pending": f"{la.debits_pending:f}"}))
