"""`tarifa reports list | run CODE [--from --to] [--param name=value] [--format json|csv|xlsx] [--output FILE] | rollup --from --to | send-due`."""

import datetime as dt
import json
import sys

from django.core.management.base import BaseCommand, CommandError

from tarifa.kernel.clock import today
from tarifa.kernel.errors import DomainError


def _date(value):
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value}: a date as YYYY-MM-DD") from None


class Command(BaseCommand):
    help = "Reports: list them, run one to a file, roll up the daily figures, send the scheduled reports due."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="command", required=True)
        sub.add_parser("list", help="every report: code and name")
        run = sub.add_parser("run", help="run a report")
        run.add_argument("code")
        run.add_argument("--from", dest="from_", type=_date)
        run.add_argument("--to", type=_date)
        run.add_argument("--param", action="append", default=[], help="name=value (repeatable)")
        run.add_argument("--format", choices=["json", "csv", "xlsx"], default="json")
        run.add_argument("--output", help="file (default: standard output; xlsx needs a file)")
        roll = sub.add_parser("rollup", help="(re)compute the daily figures of closed days")
        roll.add_argument("--from", dest="from_", type=_date, required=True)
        roll.add_argument("--to", type=_date, help="default: yesterday")
        due = sub.add_parser("send-due", help="send the scheduled reports due today")
        due.add_argument("--as-of", type=_date)

    def handle(self, *args, command, **opts):
        from tarifa.reports import aggregates, exports, framework, services

        try:
            if command == "list":
                for r in framework.all_reports():
                    self.stdout.write(f"{r.code}\t{r.name}")
            elif command == "run":
                report = framework.get(opts["code"])
                if report is None:
                    raise CommandError(f"No report {opts['code']}")
                query = dict(p.split("=", 1) for p in opts["param"] if "=" in p)
                if opts["from_"]:
                    query["from"] = opts["from_"].isoformat()
                if opts["to"]:
                    query["to"] = opts["to"].isoformat()
                result = framework.run(report, framework.parse_params(report, query))
                if opts["format"] == "json":
                    data = json.dumps({"rows": framework.json_rows(report, result.rows),
                                       "totals": framework.json_totals(report, result.totals)}, indent=1).encode()
                elif opts["format"] == "csv":
                    data = exports.csv_bytes(result)
                else:
                    if not opts["output"]:
                        raise CommandError("--format xlsx needs --output FILE")
                    data = exports.xlsx_bytes(result)
                if opts["output"]:
                    with open(opts["output"], "wb") as fh:
                        fh.write(data)
                    self.stdout.write(f"{len(result.rows)} rows → {opts['output']}")
                else:
                    sys.stdout.buffer.write(data)
            elif command == "rollup":
                end = opts["to"] or today() - dt.timedelta(days=1)
                days = aggregates.rollup(opts["from_"], end)
                self.stdout.write(f"{days} days rolled up ({opts['from_']} – {end})")
            elif command == "send-due":
                self.stdout.write(f"{services.send_due(as_of=opts['as_of'] or today())} reports sent")
        except DomainError as exc:
            raise CommandError(exc.message) from exc
