"""The CoA side of `tarifa aaa` (added to the command's subparsers by management/commands/aaa.py):
`tarifa aaa reconcile` prints the reconciliation run as JSON; `tarifa aaa disconnect LOGIN`
disconnects a subscriber's open sessions; `tarifa aaa charge-sessions` gives rating the finished
sessions."""

import json

from django.core.management.base import CommandError


def add_parsers(sub):
    rec = sub.add_parser("reconcile", help="Compare the open sessions with the subscriptions and act on every "
                                          "difference (JSON report).")
    rec.add_argument("--actor", default="aaa-reconcile")
    dis = sub.add_parser("disconnect", help="Send a Disconnect-Request for every open session of a login.")
    dis.add_argument("login")
    dis.add_argument("--actor", default="aaa-disconnect")
    chg = sub.add_parser("charge-sessions", help="Give rating the finished sessions not given yet (JSON summary).")
    chg.add_argument("--actor", default="aaa-charge-sessions")


def handle(command, subcommand, opts) -> bool:
    """Run `subcommand` if it is one of these; False otherwise."""
    from . import coa_services
    from .models import Session

    if subcommand == "reconcile":
        run = coa_services.reconcile(actor=opts["actor"], trigger="command")
        command.stdout.write(json.dumps(coa_services.run_summary(run), indent=2, ensure_ascii=False))
        return True
    if subcommand == "disconnect":
        sessions = list(Session.objects.filter(login=opts["login"]))
        if not sessions:
            raise CommandError(f"No open session of {opts['login']!r}.")
        out = []
        for session in sessions:
            result = coa_services.disconnect_session(session, actor=opts["actor"])
            out.append({"acct_session_id": session.acct_session_id, "outcome": result.outcome,
                        "attempts": len(result.attempts)})
        command.stdout.write(json.dumps(out, indent=2))
        return True
    if subcommand == "charge-sessions":
        from . import usage

        command.stdout.write(json.dumps(usage.charge_finished_sessions(actor=opts["actor"]), indent=2))
        return True
    return False
