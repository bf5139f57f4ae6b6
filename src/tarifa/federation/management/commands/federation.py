"""`tarifa federation status | key | rotate-key | add-node | add-key | register | ping | relay | demo | test`
(docs/federation.md)."""

import datetime as dt
import json
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

ACTOR = "cli"


def _when(text, name):
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"{name}: not an ISO date-time: {text!r}") from None
    if value.tzinfo is None:
        raise CommandError(f"{name}: give a time zone, e.g. {text}Z")
    return value


class Command(BaseCommand):
    help = "Federation: this node's status and keys, the node registry, test pings, the relay."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)
        sub.add_parser("status", help="Role, code and problems as JSON; exit 1 when there is a problem.")
        sub.add_parser("key", help="This node's code, role and public keys as JSON (the key is made on first use).")
        rotate = sub.add_parser("rotate-key", help="Make a new signing key (register it at the peers first).")
        rotate.add_argument("--signs-from", help="ISO date-time it starts signing (default: now).")
        node = sub.add_parser("add-node", help="Register a node (and its first key).")
        node.add_argument("--code", required=True)
        node.add_argument("--name", required=True)
        node.add_argument("--role", choices=["centre", "branch"], default="branch")
        node.add_argument("--url", required=True, help="Its base URL, e.g. https://b1.example.net")
        node.add_argument("--key-id")
        node.add_argument("--public-key")
        key = sub.add_parser("add-key", help="Register another public key of a node (rotation).")
        key.add_argument("--code", required=True)
        key.add_argument("--key-id", required=True)
        key.add_argument("--public-key", required=True)
        key.add_argument("--valid-from")
        key.add_argument("--valid-until")
        register = sub.add_parser("register", help="Create or update several nodes and their keys from JSON "
                                                   "(a list of {code, name, role, url, key_id, public_key}).")
        register.add_argument("--file", required=True, help="The JSON file; - reads standard input.")
        ping = sub.add_parser("ping", help="Send test messages (type ping) to a node.")
        ping.add_argument("--to", required=True)
        ping.add_argument("--count", type=int, default=1)
        ping.add_argument("--kind", default="test")
        relay = sub.add_parser("relay", help="Send what waits for a node now, in this process.")
        relay.add_argument("--to", required=True)
        demo = sub.add_parser("demo", help="A centre and N branches on loopback (own databases, web servers, "
                                           "workers, demo data) until Ctrl-C.")
        demo.add_argument("--branches", type=int, default=3)
        demo.add_argument("--base-port", type=int, default=8100,
                          help="The centre's web port; branch i listens on base-port + i (default 8100).")
        demo.add_argument("--password", help="The admin password of every node (default: generated, printed).")
        demo.add_argument("--proxy", action="store_true",
                          help="Put the fault proxy between every pair of nodes (links in pass mode).")
        demo.add_argument("--keep", action="store_true", help="Keep the databases when it stops.")
        demo.add_argument("--no-demo", action="store_true", help="No demo data.")
        test = sub.add_parser("test", help="The fault harness: a centre and 3 branches, a workload, fault "
                                           "scenarios; a JSON verdict, exit 1 when a scenario fails.")
        test.add_argument("--scenario", action="append",
                          help="Run only this scenario (repeatable); default: all. See --list.")
        test.add_argument("--list", action="store_true", help="List the scenarios and exit.")
        test.add_argument("--branches", type=int, default=3)
        test.add_argument("--duration", type=float, default=None, help="Seconds of workload per scenario.")
        test.add_argument("--clients", type=int, default=None, help="Concurrent clients per branch.")
        test.add_argument("--payments", action="store_true",
                          help="Workload of foreign payments (tarifa.interbranch) instead of pings.")
        from tarifa.federation import commands

        for extra in commands.registered():  # added by higher apps (journals: reconcile)
            extra.arguments(sub.add_parser(extra.name, help=extra.help))

    def handle(self, *args, **opts):
        from tarifa.federation import commands

        extra = commands.get(opts["subcommand"])
        if extra is not None:
            return extra.run(self, **opts)
        return getattr(self, f"do_{opts['subcommand'].replace('-', '_')}")(**opts)

    def out(self, data):
        self.stdout.write(json.dumps(data, indent=2, default=str))

    def do_status(self, **opts):
        from tarifa.federation import selectors
        from tarifa.federation.extensions import extra_status

        problems = selectors.problems()
        self.out({"role": selectors.role(), "code": selectors.own_code(), "ok": not problems, "problems": problems,
                  **extra_status()})
        if problems:
            sys.exit(1)

    def do_key(self, **opts):
        from tarifa.federation import selectors, services

        services.own_signing_key()
        self.out({"code": selectors.own_code(), "role": selectors.role(), "keys": selectors.own_public_keys()})

    def do_rotate_key(self, *, signs_from=None, **opts):
        from tarifa.federation import services

        key = services.rotate_own_key(actor=ACTOR, signs_from=_when(signs_from, "--signs-from"))
        self.out({"key_id": key.key_id, "public_key": key.public_key, "signs_from": key.signs_from.isoformat()})

    def do_add_node(self, *, code, name, role, url, key_id=None, public_key=None, **opts):
        from tarifa.federation import services

        if bool(key_id) != bool(public_key):
            raise CommandError("Give both --key-id and --public-key, or neither.")
        with transaction.atomic():
            node = services.create_node(actor=ACTOR, code=code, name=name, role=role, base_url=url)
            if key_id:
                services.add_node_key(node, actor=ACTOR, key_id=key_id, public_key=public_key)
        self.out({"code": node.code, "id": str(node.id)})

    def do_add_key(self, *, code, key_id, public_key, valid_from=None, valid_until=None, **opts):
        from tarifa.federation import services
        from tarifa.federation.models import Node

        node = Node.objects.filter(code=code).first()
        if node is None:
            raise CommandError(f"No node {code}.")
        key = services.add_node_key(node, actor=ACTOR, key_id=key_id, public_key=public_key,
                                    valid_from=_when(valid_from, "--valid-from"),
                                    valid_until=_when(valid_until, "--valid-until"))
        self.out({"code": code, "key_id": key.key_id})

    def do_register(self, *, file, **opts):
        from tarifa.federation import services

        try:
            peers = json.load(sys.stdin if file == "-" else open(file))  # noqa: SIM115
        except (OSError, ValueError) as exc:
            raise CommandError(f"--file: {exc}") from None
        if not isinstance(peers, list) or not all(isinstance(p, dict) and {"code", "name", "url"} <= set(p)
                                                  for p in peers):
            raise CommandError("--file: a JSON list of {code, name, role, url, key_id, public_key}.")
        with transaction.atomic():
            nodes = [services.register_peer(actor=ACTOR, code=p["code"], name=p["name"],
                                            role=p.get("role", "branch"), base_url=p["url"], key_id=p.get("key_id"),
                                            public_key=p.get("public_key")) for p in peers]
        self.out({"registered": [n.code for n in nodes]})

    def do_demo(self, *, branches, base_port, password=None, proxy=False, keep=False, no_demo=False, **opts):
        from tarifa.federation import cluster as clustering

        self._run_until_signal(lambda: clustering.demo(branches=branches, base_port=base_port, password=password,
                                                        proxy=proxy, keep=keep, demo=not no_demo,
                                                        say=self._say))

    def do_test(self, *, scenario=None, list=False, branches=3, duration=None, clients=None, payments=False,
                **opts):
        from tarifa.federation import harness

        if list:
            self.out({name: s.__doc__ for name, s in harness.SCENARIOS.items()})
            return
        unknown = sorted(set(scenario or []) - set(harness.SCENARIOS))
        if unknown:
            raise CommandError(f"Unknown scenario {', '.join(unknown)}; one of {', '.join(harness.SCENARIOS)}.")
        if payments:
            from django.apps import apps

            if not apps.is_installed("tarifa.interbranch"):
                raise CommandError("--payments needs foreign payments (the app tarifa.interbranch).")
        verdict = harness.run(scenarios=scenario or list_all(harness), branches=branches, duration=duration,
                              clients=clients, payments=payments, say=lambda text: self.stderr.write(text))
        self.out(verdict)
        if not verdict["ok"]:
            sys.exit(1)

    def _say(self, text=""):
        self.stdout.write(text)
        self.stdout.flush()

    def _run_until_signal(self, func):
        """SIGINT/SIGTERM/SIGHUP raise KeyboardInterrupt here, so `func`'s clean-up (finally) runs."""
        import signal

        def interrupt(signum, frame):
            raise KeyboardInterrupt

        previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
        try:
            func()
        except KeyboardInterrupt:
            pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def do_ping(self, *, to, count, kind, **opts):
        from tarifa.federation import services

        from tarifa.federation.models import Node

        node = Node.objects.filter(code=to).first()
        if node is None:
            raise CommandError(f"No node {to}.")
        ids = services.send_pings(node, count=count, kind=kind)
        self.out({"sent": len(ids), "first": ids[0] if ids else None})

    def do_relay(self, *, to, **opts):
        from tarifa.federation import relay

        self.out(relay.run(to))


def list_all(harness):
    return list(harness.SCENARIOS)
