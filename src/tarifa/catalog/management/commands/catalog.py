import json
import sys

from django.core.management.base import BaseCommand, CommandError

from tarifa.kernel.errors import DomainError

from ...exchange import export_catalog, import_catalog


class Command(BaseCommand):
    help = "Export the catalog to a JSON file, or import one (`tarifa catalog export -o FILE` / `import FILE`)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)
        exp = sub.add_parser("export", help="Write the whole catalog as JSON.")
        exp.add_argument("-o", "--output", default="-", help="File to write (default: standard output).")
        imp = sub.add_parser("import", help="Apply a catalog JSON file (one transaction).")
        imp.add_argument("file", help="File to read ('-' for standard input).")
        imp.add_argument("--actor", default="catalog-import", help="Name recorded in the audit trail.")

    def handle(self, *args, **opts):
        if opts["subcommand"] == "export":
            text = json.dumps(export_catalog(), indent=2, ensure_ascii=False)
            if opts["output"] == "-":
                self.stdout.write(text)
            else:
                with open(opts["output"], "w", encoding="utf-8") as fh:
                    fh.write(text + "\n")
                self.stderr.write(f"catalog written to {opts['output']}")
            return
        try:
            raw = sys.stdin.read() if opts["file"] == "-" else open(opts["file"], encoding="utf-8").read()
            data = json.loads(raw)
        except (OSError, json.JSONDecodeError) as exc:
            raise CommandError(f"cannot read catalog file: {exc}") from None
        try:
            stats = import_catalog(data, actor=opts["actor"])
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        self.stdout.write(json.dumps(stats, indent=2))
