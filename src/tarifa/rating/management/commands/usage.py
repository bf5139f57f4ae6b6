"""`tarifa usage import FILE --format NAME`, `usage reprocess`, `usage rerate --from … --to …`, `usage formats`."""

import datetime as dt
import json
import os
import sys
import time

from django.core.management.base import BaseCommand

from tarifa.kernel.errors import DomainError

from ... import usage
from ...formats import builtin
from ...models import UsageBatch, UsageFormat

EXIT_INVALID = 2


def _moment(text: str, name: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        try:
            value = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(0))
        except ValueError:
            raise ValueError(f"{name} {text!r}: expected YYYY-MM-DD or an ISO 8601 time") from None
    if value.tzinfo is None:
        from django.utils import timezone

        value = timezone.make_aware(value)
    return value


class Command(BaseCommand):
    help = ("Usage records: import a file (JSON summary: read = rated + rejected + duplicates), reprocess the "
            "rejected queue, re-rate a period, list formats.")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)
        imp = sub.add_parser("import", help="Import a usage file (streamed; any size).")
        imp.add_argument("file", help="The file ('-' for standard input).")
        imp.add_argument("--format", default="csv", help="csv (default), cgrates-cdr, or a declared format's code.")
        imp.add_argument("--format-file", help="A JSON file declaring the format (instead of --format).")
        imp.add_argument("--source", default="", help="Source for records whose format names none.")
        imp.add_argument("--serial", action="store_true", help="Rate in this process only (no worker processes).")
        imp.add_argument("--actor", default="usage-import")
        rep = sub.add_parser("reprocess", help="Run rejected records through rating again.")
        rep.add_argument("--reason", action="append", help="Only records rejected for this reason (repeatable).")
        rep.add_argument("--batch", help="Only records of this batch (id).")
        rep.add_argument("--include-filtered", action="store_true", help="Also records a format's filter left out.")
        rep.add_argument("--actor", default="usage-reprocess")
        rer = sub.add_parser("rerate", help="Price a period again and book only the differences.")
        rer.add_argument("--from", dest="date_from", required=True, help="YYYY-MM-DD or ISO time (included)")
        rer.add_argument("--to", dest="date_to", required=True, help="YYYY-MM-DD or ISO time (excluded)")
        rer.add_argument("--account", help="Only this billing account (number, e.g. HQ-A0000001).")
        rer.add_argument("--actor", default="usage-rerate")
        sub.add_parser("formats", help="List the usage formats (built-in and declared).")

    def out(self, data):
        self.stdout.write(json.dumps(data, indent=2, default=str))

    def fail(self, code, message, fields=None):
        self.out({"error": {"code": code, "message": message, "fields": fields or {}}})
        sys.exit(EXIT_INVALID)

    def handle(self, *args, **opts):
        command = opts["subcommand"]
        try:
            if command == "import":
                self.import_file(opts)
            elif command == "reprocess":
                batch = None
                if opts["batch"]:
                    batch = UsageBatch.objects.filter(pk=opts["batch"]).first()
                    if batch is None:
                        self.fail("not_found", f"No usage batch {opts['batch']}.")
                result = usage.reprocess(actor=opts["actor"], reasons=opts["reason"], batch=batch,
                                         include_filtered=opts["include_filtered"])
                self.out(result.summary())
            elif command == "rerate":
                self.rerate(opts)
            else:
                rows = [{"code": code, "name": spec["name"], "builtin": True} for code, spec in builtin().items()]
                rows += [{"code": f.code, "name": f.name, "builtin": False}
                         for f in UsageFormat.objects.filter(archived_at__isnull=True)]
                self.out(rows)
        except DomainError as exc:
            self.fail(exc.code, exc.message, exc.fields)
        except ValueError as exc:
            self.fail("invalid_argument", str(exc))

    def import_file(self, opts):
        spec = usage.load_format_file(opts["format_file"]) if opts["format_file"] else None
        started = time.perf_counter()
        path = opts["file"]
        if path == "-":
            stream, name, size = sys.stdin.buffer, "<stdin>", 0
        else:
            try:
                stream = open(path, "rb")
            except OSError as exc:
                self.fail("file_not_readable", f"Cannot read {path}: {exc.strerror}")
            name, size = os.path.basename(path), os.path.getsize(path)
        try:
            batch = usage.import_file(stream, format=opts["format"], spec=spec, actor=opts["actor"], file_name=name,
                                      file_size=size, source=opts["source"],
                                      parallel=False if opts["serial"] else None)
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        seconds = time.perf_counter() - started
        summary = batch.summary()
        summary.update(file=name, seconds=round(seconds, 3),
                       records_per_s=round(batch.read / seconds, 1) if seconds > 0 else None)
        self.out(summary)

    def rerate(self, opts):
        from tarifa.ledger.models import BillingAccount

        account = None
        if opts["account"]:
            account = BillingAccount.objects.filter(number=opts["account"]).first()
            if account is None:
                self.fail("not_found", f"No billing account {opts['account']}.")
        run = usage.rerate(actor=opts["actor"], date_from=_moment(opts["date_from"], "--from"),
                           date_to=_moment(opts["date_to"], "--to"), billing_account=account)
        self.out({"run": str(run.pk), "records": run.records, "changed": run.changed, "unratable": run.unratable,
                  "old_total": str(run.old_total), "new_total": str(run.new_total),
                  "difference": str(run.difference), "transfers": run.transfers})
