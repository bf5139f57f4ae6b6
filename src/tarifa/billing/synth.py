"""`tarifa demo synth … [--bill-cycle-days 1,15]`: the synthetic accounts spread over bill cycles.

After subscriptions' synth made the accounts, every active account that is in no cycle yet
is put, set-based, in one of the monthly cycles `SYN-DD` (made if missing), chosen by a
hash of the account, so each cycle gets about the same share. An empty list leaves the
accounts without a cycle (the bill-run benchmark assigns its own).
"""

import argparse

from django.db import transaction

from .models import BillCycle


def add_arguments(parser):
    parser.add_argument("--bill-cycle-days", default="1,15", type=cycle_days,
                        help="synth: first days of the monthly bill cycles the accounts are spread over "
                             "(comma-separated, 1–28; empty: none).")


def cycle_days(text) -> list[int]:
    """`1,15` → [1, 15]; refused (before anything is made) unless every day is 1–28."""
    if isinstance(text, (list, tuple)):
        text = ",".join(str(d) for d in text)
    try:
        days = sorted({int(part) for part in str(text or "").split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of days such as 1,15") from None
    bad = [d for d in days if not 1 <= d <= 28]
    if bad:
        raise argparse.ArgumentTypeError(f"{bad[0]} is not a day between 1 and 28")
    return days


@transaction.atomic
def run(*, summary=None, bill_cycle_days="1,15", actor="synth", **_options) -> dict:
    from . import services

    days = cycle_days(bill_cycle_days)
    if not days:
        return {"cycles": 0, "assigned": 0}
    cycles = []
    for day in days:
        code = f"SYN-{day:02d}"
        cycle = BillCycle.objects.filter(code=code).first()
        if cycle is None:
            cycle = services.create_cycle(actor=actor, code=code, name=f"Monthly, from day {day} (synthetic)",
                                          day_of_month=day)
        cycles.append(cycle)
    assigned = services.assign_accounts_bulk(actor=actor, spread_over=cycles)
    per_cycle = {c.code: c.assignments.count() for c in cycles}
    return {"cycles": len(cycles), "assigned": assigned, "accounts_per_cycle": per_cycle}
