"""`tarifa payments …`: what operators script.

  tarifa payments import-statement FILE.csv      import a bank statement, print the counts
  tarifa payments autopay [--as-of ISO]           run the automatic payments now
  tarifa payments generate-vouchers --count N --nominal 10.00 --currency USD --expires 2027-12-31 > cards.csv
                                                  codes go to standard output only (never stored)
"""

import csv
import datetime as dt
import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tarifa.audit import context
from tarifa.kernel.errors import DomainError


class Command(BaseCommand):
    help = "Payments: import a bank statement, run automatic payments, generate vouchers."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        statement = sub.add_parser("import-statement", help="Import a bank statement CSV file.")
        statement.add_argument("file")
        autopay = sub.add_parser("autopay", help="Top up accounts below their agreed level (once a day each).")
        autopay.add_argument("--as-of", help="ISO date-time (default: now)")
        vouchers = sub.add_parser("generate-vouchers", help="Generate a voucher batch; CSV of codes on stdout.")
        vouchers.add_argument("--count", type=int, required=True)
        vouchers.add_argument("--nominal", required=True)
        vouchers.add_argument("--currency", required=True)
        vouchers.add_argument("--expires", required=True, help="YYYY-MM-DD")
        vouchers.add_argument("--note", default="")

    def handle(self, *args, action, **opts):
        from tarifa.payments import services

        actor = "cli"
        with context.bind(channel="cli"):
            try:
                if action == "import-statement":
                    path = Path(opts["file"])
                    if not path.is_file():
                        raise CommandError(f"No such file: {path}")
                    st = services.import_statement(actor=actor, filename=path.name, content=path.read_bytes())
                    self.stdout.write(json.dumps({
                        "statement": st.number, "read": st.lines_read, "booked": st.lines_booked,
                        "unmatched": st.lines_unmatched, "duplicate": st.lines_duplicate,
                        "rejected": st.lines_rejected}))
                elif action == "autopay":
                    as_of = dt.datetime.fromisoformat(opts["as_of"]) if opts.get("as_of") else None
                    self.stdout.write(json.dumps(services.run_autopay(as_of=as_of, actor="system:autopay")))
                else:
                    batch, cards = services.generate_batch(actor=actor, count=opts["count"], nominal=opts["nominal"],
                                                           currency=opts["currency"], expires_on=opts["expires"],
                                                           note=opts["note"])
                    writer = csv.writer(self.stdout)
                    writer.writerow(["batch", "serial", "code", "nominal", "currency", "valid_until"])
                    for serial, code in cards:
                        writer.writerow([batch.number, serial, code, f"{batch.nominal:.2f}", batch.currency,
                                         batch.expires_on])
                    print(f"generated {batch.number}: {batch.count} cards (sell the batch to activate it)",
                          file=sys.stderr)
            except DomainError as exc:
                raise CommandError(f"{exc.code}: {exc.message}") from None
