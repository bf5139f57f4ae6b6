"""Issue 4's story end to end through the payments app: a prepaid subscriber suspended for balance pays
at the cash desk (a cashier's open shift) and the service resumes at once — the payment's own
transaction enqueued the job that resumes it, not the next daily run."""

import datetime as dt
from decimal import Decimal

from django.db import connection

from tarifa.kernel import clock
from tarifa.kernel.models import DomainEvent
from tarifa.payments import services
from tarifa.subscriptions import daily
from tarifa.subscriptions import services as subs
from tarifa.subscriptions.models import StatusChange
from tarifa.subscriptions.tests.helpers import make_catalog, run_events

from .conftest import balance


def jobs_for(event):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'kernel.dispatch_event'"
                       " AND args->>'event_id' = %s", [str(event.pk)])
        return cursor.fetchone()[0]


def test_a_suspended_prepaid_subscriber_pays_at_the_cash_desk_and_is_resumed_at_once(desk, cashier, account, key):
    with clock.travel_to(dt.datetime(2025, 1, 15, 9, tzinfo=dt.timezone.utc)) as c:
        tariffs = make_catalog()
        front = desk("FRONT", currency="EUR")
        carla = cashier(desk=front)
        acc = account(currency="EUR")
        services.open_shift(actor=carla, desk=front, opening_float="50.00")
        services.accept_payment(actor=carla, account=acc, amount="7.00", channel="cash", idempotency_key=key())
        sub = subs.create_subscription(actor="test", billing_account=acc, tariff=tariffs["NET-31"], login="olga",
                                       activate=True)  # 5.00 activation + 1.00 today: 1.00 left
        run_events()
        c.add_days(1)
        daily.run(as_of=c.today(), actor="test")  # the 16th: 0.00 left
        c.add_days(1)
        daily.run(as_of=c.today(), actor="test")  # the 17th does not fit (limit 0): refused, suspended
        sub.refresh_from_db()
        assert sub.status == "suspended" and balance(acc) == Decimal("0.00")
        c.add_days(1)
        daily.run(as_of=c.today(), actor="test")
        assert balance(acc) == Decimal("0.00")  # suspended days are not charged

        c.add(dt.timedelta(hours=2))
        payment = services.accept_payment(actor=carla, account=acc, amount="20.00", channel="cash",
                                          idempotency_key=key())
        assert (payment.desk, payment.cashier, payment.shift.status) == (front, carla, "open")
        credited = DomainEvent.objects.get(name="ledger.account_credited", payload__transfer=str(payment.transfer_id))
        assert jobs_for(credited) == 1  # enqueued with the payment
        run_events()  # what the worker does within seconds
        sub.refresh_from_db()
        assert sub.status == "active"
        last = StatusChange.objects.filter(subscription=sub).order_by("at").last()
        assert (last.from_status, last.to_status, last.cause) == ("suspended", "active", "balance")
        # The day of resumption is charged at once (31.00 / 31 days): 20.00 − 1.00.
        assert balance(acc) == Decimal("19.00")
