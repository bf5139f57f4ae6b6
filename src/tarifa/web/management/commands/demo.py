import json

from django.core.management.base import BaseCommand

from tarifa.web.demo_loader import load_demo, synth_modules


class Command(BaseCommand):
    help = ("Load the demo data set (customers, accounts, payments, …) through the services; "
            "`tarifa demo synth --accounts N` makes a large synthetic operator instead (bulk, fast).")

    def add_arguments(self, parser):
        parser.add_argument("what", nargs="?", choices=["synth"], help="synth: a synthetic operator of any size.")
        parser.add_argument("--actor", default="demo", help="Name recorded as the author in the audit trail.")
        # Each app's synth.py adds its own options (--accounts, --seed, --since, …).
        for _label, module in synth_modules():
            module.add_arguments(parser)

    def handle(self, *args, **opts):
        if opts["what"] == "synth":
            summary = {}
            for label, module in synth_modules():
                summary[label] = module.run(summary=summary, **opts)
        else:
            summary = load_demo(actor=opts["actor"])
        self.stdout.write(json.dumps(summary, indent=2, default=str))
