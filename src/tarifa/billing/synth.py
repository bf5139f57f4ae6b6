"""`tarifa demo synth … [--bill-cycle-days 1,15]`: the synthetic accounts spread over bill cycles.

After subscriptions' synth made the accounts, every active account that is in no cycle yet
is put, set-based, in one of the monthly cycles `SYN-DD` (made if missing), chosen by a
hash of the account, so each cycle gets about the same share. An empty list leaves the
accounts without a cycle (the bill-run benchmark assigns its own).
"""

from django.db import transaction

from .models import BillCycle


def add_arguments(parser):
    parser.add_argument("--bill-cycle-days", default="1,15",
                        help="synth: first days of the monthly bill cycles the accounts are spread over "
                             "(comma-separated, 1–28; empty: none).")


def _days(text) -> list[int]:
    days = sorted({int(part) for part in str(text or "").split(",") if part.strip()})
    bad = [d for d in days if not 1 <= d <= 28]
    if bad:
        raise ValueError(f"--bill-cycle-days: {bad[0]} is not a day between 1 and 28")
    return days


@transaction.atomic
def run(*, summary=None, bill_cycle_days="1,15", actor="synth", **_options) -> dict:
    from . import services

    days = _days(bill_cycle_days)
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
