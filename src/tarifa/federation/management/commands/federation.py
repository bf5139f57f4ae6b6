"""`tarifa federation status | key | rotate-key | add-node | add-key | ping | relay` (docs/federation.md)."""

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
        ping = sub.add_parser("ping", help="Send test messages (type ping) to a node.")
        ping.add_argument("--to", required=True)
        ping.add_argument("--count", type=int, default=1)
        ping.add_argument("--kind", default="test")
        relay = sub.add_parser("relay", help="Send what waits for a node now, in this process.")
        relay.add_argument("--to", required=True)
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

        problems = selectors.problems()
        self.out({"role": selectors.role(), "code": selectors.own_code(), "ok": not problems, "problems": problems})
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

    def do_ping(self, *, to, count, kind, **opts):
        from tarifa.federation import services

        with transaction.atomic():
            ids = [str(services.send(receiver=to, kind=kind, type="ping", payload={"n": n}).id)
                   for n in range(1, count + 1)]
        self.out({"sent": len(ids), "first": ids[0] if ids else None})

    def do_relay(self, *, to, **opts):
        from tarifa.federation import relay

        self.out(relay.run(to))
