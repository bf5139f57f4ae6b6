"""The world of the charging tests: rating's usage-test operator (tarifa.rating.tests.helpers).

Prepaid "alice" (+15550001, 100 EUR), postpaid "bob"; voice to 44… costs 0.05 + 0.60 a
minute by the second; SMS 0.05; data 0.01 per MB.
"""

import datetime as dt

from tarifa.kernel import clock
from tarifa.ledger import services as ledger
from tarifa.rating.engine import SECOND
from tarifa.rating.tests.helpers import ACTOR, account, make_world, subscriber  # noqa: F401

DAY = dt.datetime(2024, 3, 4, 9, 0, tzinfo=dt.UTC)  # a Monday


def world():
    with clock.travel_to(dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)):
        return make_world()


def funded_subscriber(w, number, funds="100.00"):
    with clock.travel_to(dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)):
        acc = account("prepaid", funds=funds)
        return acc, subscriber(acc, w["tariffs"]["MOB"], number)


def seconds(n) -> int:
    return n * SECOND


def ledger_clean():
    from django.core.management import call_command
    import io
    import json

    out = io.StringIO()
    try:
        call_command("ledger", "check", stdout=out)
    except SystemExit:
        pass
    report = json.loads(out.getvalue())
    assert report["ok"], report["problems"]
    return report


def available(acc):
    acc.ledger_account.refresh_from_db()
    return acc.ledger_account.available


__all__ = ["ACTOR", "DAY", "world", "funded_subscriber", "seconds", "ledger_clean", "available", "ledger"]
