"""`tarifa aaa serve [--auth-port N] [--acct-port N] [--bind ADDR]`: the RADIUS server.
`tarifa aaa close-stale`: close sessions silent for longer than their interim interval × N.
`tarifa aaa prune-log [--days N]`: drop authentication attempts older than N days.
`tarifa aaa reconcile`, `disconnect LOGIN`, `charge-sessions`: see tarifa.aaa.coa_commands."""

import logging

from django.conf import settings
from django.core.management.base import BaseCommand

from tarifa.aaa import coa_commands


class Command(BaseCommand):
    help = "Network access (RADIUS): serve, close-stale, prune-log, reconcile, disconnect, charge-sessions."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        serve = sub.add_parser("serve", help="Run the RADIUS server until Ctrl-C.")
        serve.add_argument("--bind", default=None,
                           help=f"Address to listen on (default $TARIFA_AAA_BIND, now {settings.TARIFA_AAA_BIND}).")
        serve.add_argument("--auth-port", type=int, default=None,
                           help=f"Authentication port (default $TARIFA_AAA_AUTH_PORT, now "
                                f"{settings.TARIFA_AAA_AUTH_PORT}).")
        serve.add_argument("--acct-port", type=int, default=None,
                           help=f"Accounting port (default $TARIFA_AAA_ACCT_PORT, now {settings.TARIFA_AAA_ACCT_PORT}).")
        sub.add_parser("close-stale", help="Close sessions silent for longer than interim × TARIFA_AAA_STALE_FACTOR.")
        prune = sub.add_parser("prune-log", help="Delete old authentication attempts.")
        prune.add_argument("--days", type=int, default=None)
        coa_commands.add_parsers(sub)

    def handle(self, *args, action, **opts):
        if coa_commands.handle(self, action, opts):
            return
        if action == "serve":
            from tarifa.aaa.server import run

            logging.basicConfig(level=logging.INFO if opts["verbosity"] >= 1 else logging.WARNING,
                                format="%(asctime)s aaa %(levelname)s %(message)s")

            def ready(server):
                self.stdout.write(f"RADIUS server on {server.bind}: authentication port {server.auth_port}, "
                                  f"accounting port {server.acct_port}. Ctrl-C stops it.")
                self.stdout.flush()

            run(bind=opts["bind"], auth_port=opts["auth_port"], acct_port=opts["acct_port"], ready=ready)
        elif action == "close-stale":
            from tarifa.aaa.services import close_stale_sessions

            self.stdout.write(f"{close_stale_sessions()} stale sessions closed.")
        elif action == "prune-log":
            from tarifa.aaa.services import prune_auth_log

            self.stdout.write(f"{prune_auth_log(days=opts['days'])} authentication attempts deleted.")
