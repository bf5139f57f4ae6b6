"""`tarifa rating import-cgrates DIR [--tenant T]`, `export-cgrates TENANT DIR`, `cost …`."""

import datetime as dt
import json
import sys

from django.core.management.base import BaseCommand, CommandError

from tarifa.kernel.errors import DomainError

from ... import engine, services
from ...cgrates_io import export_directory, import_directory
from ...models import RatingTenant
from ...selectors import measure_of
from ...units import QuantityError, parse_quantity

EXIT_INVALID = 2
EXIT_UNRATABLE = 3


def _parse_time(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--answer-time {text!r} is not an ISO 8601 time (e.g. 2019-03-11T09:00:00Z)") from None
    if moment.tzinfo is None:
        raise ValueError("--answer-time needs a time zone (e.g. 2019-03-11T09:00:00Z)")
    return moment


class Command(BaseCommand):
    help = ("Tariff plans: import/export a CGRateS classic directory; price one call "
            "(`tarifa rating cost --tenant T --category C --subject S --destination D --answer-time … --usage 45s`).")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)
        imp = sub.add_parser("import-cgrates", help="Load a CGRateS classic tariff-plan directory (replaces the plans "
                                                    "of the tenants it loads, atomically).")
        imp.add_argument("directory")
        imp.add_argument("--tenant", help="Load every profile under this tenant instead of the files' tenants.")
        imp.add_argument("--actor", default="rating-import", help="Name recorded in the audit trail.")
        exp = sub.add_parser("export-cgrates", help="Write a tenant's tariff plan as a CGRateS directory.")
        exp.add_argument("tenant")
        exp.add_argument("directory")
        cost = sub.add_parser("cost", help="Price one call; prints JSON (exit 3 when it cannot be rated).")
        cost.add_argument("--tenant", required=True)
        cost.add_argument("--category", required=True)
        cost.add_argument("--subject", required=True)
        cost.add_argument("--destination", default="")
        cost.add_argument("--answer-time", required=True, help="ISO 8601 with a zone, e.g. 2019-03-11T09:00:00Z")
        cost.add_argument("--usage", required=True, help="45s, 1m20s, 90 (seconds) for time; a count for data/SMS")
        cost.add_argument("--type", default="voice", help="voice, data, sms or another usage type (default voice)")
        cost.add_argument("--plan", default=None, help="Price with this rating plan, skipping the profiles.")
        cost.add_argument("--rounding-decimals", type=int, default=5, help="Engine-wide rounding decimals (5).")

    def fail(self, code, message, status=EXIT_INVALID, fields=None):
        self.stdout.write(json.dumps({"error": {"code": code, "message": message, "fields": fields or {}}}, indent=2))
        sys.exit(status)

    def handle(self, *args, **opts):
        command = opts["subcommand"]
        if command == "import-cgrates":
            try:
                summary = import_directory(opts["directory"], tenant=opts["tenant"], actor=opts["actor"])
            except DomainError as exc:
                raise CommandError(f"{exc.code}: {exc.message}") from None
            self.stdout.write(json.dumps(summary, indent=2))
            return
        if command == "export-cgrates":
            tenant = RatingTenant.objects.filter(code=opts["tenant"], archived_at__isnull=True).first()
            if tenant is None:
                raise CommandError(f"tenant_not_found: no rating tenant {opts['tenant']!r}")
            counts = export_directory(tenant, opts["directory"])
            self.stdout.write(json.dumps({"tenant": tenant.code, "directory": opts["directory"], "rows": counts},
                                         indent=2))
            return
        try:
            answer_time = _parse_time(opts["answer_time"])
            usage = parse_quantity(opts["usage"], measure_of(opts["type"]) if opts["type"] not in
                                   ("voice", "data", "sms") else {"voice": "time", "data": "bytes",
                                                                  "sms": "count"}[opts["type"]])
        except (ValueError, QuantityError) as exc:
            self.fail("invalid_argument", str(exc))
        try:
            cost = services.calculate_cost(tenant=opts["tenant"], category=opts["category"], subject=opts["subject"],
                                           destination=opts["destination"], answer_time=answer_time, usage=usage,
                                           usage_type=opts["type"], rating_plan=opts["plan"],
                                           rounding_decimals=opts["rounding_decimals"])
        except engine.RatingError as exc:
            self.fail(exc.code, exc.message, EXIT_UNRATABLE)
        except DomainError as exc:
            self.fail(exc.code, exc.message, EXIT_INVALID, exc.fields)
        self.stdout.write(json.dumps(services.cost_to_dict(cost), indent=2))
