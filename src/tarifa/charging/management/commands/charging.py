"""`tarifa charging diameter [--host H] [--port 3868]` (the Gy/Ro server), `tarifa charging expire`."""

import json
import signal
import threading

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Online charging: `diameter` runs the Diameter Gy/Ro credit-control server until Ctrl-C; "
            "`expire` closes the silent sessions whose reservation's validity is over.")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)
        dia = sub.add_parser("diameter", help="Run the Diameter credit-control server.")
        dia.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        dia.add_argument("--port", type=int, default=3868, help="TCP port (default 3868).")
        dia.add_argument("--workers", type=int, default=8, help="Threads answering requests (default 8).")
        sub.add_parser("expire", help="Close silent sessions (what the periodic job does).")

    def handle(self, *args, **opts):
        getattr(self, "do_" + opts["subcommand"])(**opts)

    def do_expire(self, **opts):
        from tarifa.charging import services

        self.stdout.write(json.dumps({"expired": services.expire_sessions()}))

    def do_diameter(self, *, host, port, workers, **opts):
        import logging

        from tarifa.charging.diameter import build_node, own_identity

        logging.basicConfig(level=logging.WARNING)
        node = build_node(host=host, port=port, workers=workers)
        stop = threading.Event()

        def on_signal(signum, frame):
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
        node.start()
        origin_host, realm = own_identity()
        self.stdout.write(f"Diameter credit-control server {origin_host} (realm {realm}) listening on "
                          f"{host}:{port}; peers: {', '.join(node.peers) or 'none'}. Ctrl-C stops it.")
        self.stdout.flush()
        stop.wait()
        self.stdout.write("Stopping (DPR to the connected peers)…")
        node.stop(wait_timeout=5, force=True)
        self.stdout.flush()
