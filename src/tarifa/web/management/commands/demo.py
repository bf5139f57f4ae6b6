import json

from django.core.management.base import BaseCommand

from tarifa.web.demo_loader import load_demo


class Command(BaseCommand):
    help = "Load the demo data set (customers, accounts, payments, …) through the services."

    def add_arguments(self, parser):
        parser.add_argument("--actor", default="demo", help="Name recorded as the author in the audit trail.")

    def handle(self, *args, **opts):
        summary = load_demo(actor=opts["actor"])
        self.stdout.write(json.dumps(summary, indent=2, default=str))
