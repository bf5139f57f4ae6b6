"""`tarifa billing charge --as-of YYYY-MM-DD`.

Lives in subscriptions until the billing app exists; the module only parses arguments
and calls `tarifa.subscriptions.daily.run`, so it can move as it is.
"""

import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError

from tarifa.kernel.clock import today


class Command(BaseCommand):
    help = "Billing runs. `charge`: charge every fee due up to a day (idempotent; catches up missed days)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)
        charge = sub.add_parser("charge", help="Charge every fee due up to --as-of (default: today).")
        charge.add_argument("--as-of", dest="as_of", help="YYYY-MM-DD")
        charge.add_argument("--batch-accounts", type=int, default=None, help="Accounts per transaction.")
        charge.add_argument("--actor", default="system:cli")

    def handle(self, *args, **opts):
        from tarifa.subscriptions.daily import BATCH_ACCOUNTS, run

        try:
            as_of = dt.date.fromisoformat(opts["as_of"]) if opts["as_of"] else today()
        except ValueError:
            raise CommandError(f"--as-of {opts['as_of']!r}: expected YYYY-MM-DD") from None
        result = run(as_of=as_of, actor=opts["actor"], batch_accounts=opts["batch_accounts"] or BATCH_ACCOUNTS,
                     log=lambda line: self.stderr.write(line) if opts["verbosity"] > 1 else None)
        self.stdout.write(json.dumps(result, indent=2))
