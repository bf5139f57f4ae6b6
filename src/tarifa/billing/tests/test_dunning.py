"""An unpaid invoice walks the dunning ladder to suspension; a payment clears it and service resumes."""

import datetime as dt
from decimal import Decimal

import pytest

from tarifa.audit.selectors import history
from tarifa.billing import dunning, services
from tarifa.billing.models import DunningAction, Invoice, PendingItem
from tarifa.kernel import clock
from tarifa.kernel.models import DomainEvent
from tarifa.subscriptions import daily
from tarifa.subscriptions import services as subs

from .helpers import ACTOR, at, make_catalog, make_cycle, pay, postpaid_org, run_events

pytestmark = pytest.mark.django_db


def ladder():
    policy = dunning.create_policy(actor=ACTOR, code="STD", name="Standard", is_default=True)
    dunning.create_step(actor=ACTOR, policy=policy, position=1, name="Reminder", min_days_overdue=1, action="notify",
                        template="reminder")
    dunning.create_step(actor=ACTOR, policy=policy, position=2, name="Late fee", min_days_overdue=5,
                        action="late_fee", late_fee="2.50")
    dunning.create_step(actor=ACTOR, policy=policy, position=3, name="Suspend", min_days_overdue=10,
                        min_amount_overdue="10", action="suspend")
    dunning.create_step(actor=ACTOR, policy=policy, position=4, name="Terminate", min_days_overdue=60,
                        action="terminate")
    return policy


def test_unpaid_invoice_walks_the_ladder_to_suspension_and_payment_resumes():
    with clock.travel_to(at(2025, 3, 1)) as c:
        tariffs = make_catalog(start=dt.date(2025, 1, 1))
        cycle = make_cycle(payment_terms_days=14)
        ladder()
        account = postpaid_org(cycle)
        sub = subs.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="x",
                                       activate=True)
        for _ in range(31):
            c.add_days(1)
            daily.run(as_of=c.today(), actor="test")
        invoice = services.generate_invoice(actor=ACTOR, billing_account=account, period="2025-03")
        assert invoice.total == Decimal("36.00")  # 31.00 fee + 5.00 activation
        assert invoice.due_date == dt.date(2025, 4, 15)
        taken = {}
        for _ in range(30):
            c.add_days(1)
            services.mark_overdue(as_of=c.today())
            dunning.run(as_of=c.today(), actor="system:dunning")
            for action in DunningAction.objects.filter(billing_account=account):
                taken.setdefault(action.step.name, c.today())
            sub.refresh_from_db()
            if sub.status == "suspended":
                break
        invoice.refresh_from_db()
        assert invoice.state == "overdue"
        assert taken == {"Reminder": dt.date(2025, 4, 16), "Late fee": dt.date(2025, 4, 20),
                         "Suspend": dt.date(2025, 4, 25)}
        assert sub.status == "suspended" and sub.suspensions.get(ended_at__isnull=True).cause == "dunning"
        assert PendingItem.objects.get(billing_account=account).amount == Decimal("2.50")
        assert DomainEvent.objects.filter(name="billing.dunning_notice").count() == 1
        steps = [e.changes["step"][1] for e in history(account) if e.action == "dunning_step"]
        assert sorted(steps) == ["Late fee", "Reminder", "Suspend"]
        # Pays the invoice in full: allocated at once, the steps clear, service resumes.
        c.add(dt.timedelta(hours=2))
        pay(account, "36.00")
        run_events()
        invoice.refresh_from_db()
        sub.refresh_from_db()
        assert invoice.state == "paid" and invoice.paid_amount == Decimal("36.00")
        assert sub.status == "active"
        assert not DunningAction.objects.filter(billing_account=account, cleared_at__isnull=True).exists()
        assert any(e.action == "dunning_cleared" for e in history(account))
        # The next day's pass changes nothing.
        c.add_days(1)
        assert dunning.run(as_of=c.today())["applied"] == 0


def test_partial_payment_keeps_the_account_in_the_ladder():
    with clock.travel_to(at(2025, 3, 1)) as c:
        make_catalog(start=dt.date(2025, 1, 1))
        cycle = make_cycle(payment_terms_days=0)
        ladder()
        account = postpaid_org(cycle)
        services.add_pending_item(actor=ACTOR, billing_account=account, kind="one_time_fee", description="Setup",
                                  amount="100.00", day=dt.date(2025, 3, 5))
        c.add_days(31)
        invoice = services.generate_invoice(actor=ACTOR, billing_account=account, period="2025-03")
        c.add_days(2)
        dunning.run(as_of=c.today())
        assert DunningAction.objects.filter(billing_account=account, step__name="Reminder").exists()
        pay(account, "40.00")
        run_events()
        invoice.refresh_from_db()
        assert invoice.state == "overdue" and invoice.paid_amount == Decimal("40.00")
        assert DunningAction.objects.filter(billing_account=account, cleared_at__isnull=True).count() == 1


def test_bad_input_is_refused_clearly():
    from tarifa.billing import billrun
    from tarifa.kernel.errors import DomainError

    with clock.travel_to(at(2025, 3, 10)):
        make_catalog(start=dt.date(2025, 1, 1))
        cycle = make_cycle()
        from .helpers import customer_account

        lonely = customer_account(payment_mode="postpaid")
        with pytest.raises(DomainError) as err:
            services.generate_invoice(actor=ACTOR, billing_account=lonely, period="2025-02")
        assert err.value.code == "no_cycle"
        with pytest.raises(DomainError) as err:
            billrun.run_period(actor=ACTOR, period="2025-03", cycle=cycle.code)
        assert err.value.code == "period_not_closed" and "2025-03-31" in err.value.message
        with pytest.raises(DomainError) as err:
            billrun.run_period(actor=ACTOR, period="2025-13")
        assert err.value.code == "invalid_period"
        with pytest.raises(DomainError) as err:
            services.create_template(actor=ACTOR, kind="invoice", language="en", body="{% for x in %}")
        assert err.value.code == "template_error"
        with pytest.raises(DomainError) as err:
            services.create_template(actor=ACTOR, kind="invoice", language="de", body="{{ invoice.total|nosuchfilter }}")
        assert err.value.code == "template_error"
        account = postpaid_org(cycle)  # opened on 10 March
        services.add_pending_item(actor=ACTOR, billing_account=account, kind="one_time_fee", description="Setup",
                                  amount="10.00", day=dt.date(2025, 3, 10))
        with pytest.raises(DomainError) as err:  # a period the account did not live in
            services.generate_invoice(actor=ACTOR, billing_account=account, period="2025-02")
        assert err.value.code == "opened_after_period"
        invoice = services.bill_now(actor=ACTOR, billing_account=account)
        with pytest.raises(DomainError) as err:
            services.credit_invoice(invoice, actor=ACTOR, amount="10.01", reason="too much")
        assert err.value.code == "credit_too_large" and "10.00" in err.value.message
        # Issued invoices never change, whatever writes to the table.
        from django.db import DatabaseError, transaction

        with pytest.raises(DatabaseError), transaction.atomic():
            Invoice.objects.filter(pk=invoice.pk).update(total=Decimal("1"))
        with pytest.raises(DatabaseError), transaction.atomic():
            invoice.lines.all().delete()
        with pytest.raises(DatabaseError), transaction.atomic():
            Invoice.objects.filter(pk=invoice.pk).delete()


def test_two_runs_of_one_cycle_and_period_are_refused():
    from tarifa.billing import billrun
    from tarifa.kernel.errors import Conflict

    with clock.travel_to(at(2025, 4, 2)):
        make_catalog(start=dt.date(2025, 1, 1))
        cycle = make_cycle()
        first = billrun.start_run(actor=ACTOR, cycle=cycle, period="2025-03")
        with pytest.raises(Conflict) as err:
            billrun.start_run(actor=ACTOR, cycle=cycle, period="2025-03")
        assert err.value.code == "run_in_progress" and "already queued" in err.value.message
        assert billrun.execute_run(first)["accounts"] == 0
        billrun.start_run(actor=ACTOR, cycle=cycle, period="2025-03")  # finished: a new run may start


def test_an_account_has_its_own_policy_set_through_the_api_and_the_screen(make_user, api, staff_client):
    """The default ladder suspends at 10 days; an account given a lenient policy (through the API,
    then moved back and forth on the screen) only gets that policy's reminder."""
    from tarifa.billing.models import DunningAssignment

    with clock.travel_to(at(2025, 3, 1)) as c:
        tariffs = make_catalog(start=dt.date(2025, 1, 1))
        cycle = make_cycle(payment_terms_days=0)
        standard = ladder()
        lenient = dunning.create_policy(actor=ACTOR, code="VIP", name="Lenient")
        dunning.create_step(actor=ACTOR, policy=lenient, position=1, name="Gentle reminder", min_days_overdue=30,
                            action="notify", template="reminder")
        old = dunning.create_policy(actor=ACTOR, code="OLD", name="Old")
        dunning.archive_policy(old, actor=ACTOR)
        account = postpaid_org(cycle)
        sub = subs.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs["NET-31"], login="vip",
                                       activate=True)
        client = api(make_user("billing.add_dunningassignment", "billing.view_dunningassignment"))
        response = client.post("/api/v1/dunning-assignments/", {"billing_account": account.number, "policy": "VIP"},
                               format="json")
        assert response.status_code == 201, response.json()
        assert response.json()["policy"] == "VIP" and dunning.policy_for(account) == lenient
        refused = client.post("/api/v1/dunning-assignments/", {"billing_account": account.number, "policy": "OLD"},
                              format="json")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "policy_archived"
        assert api(make_user("billing.view_dunningassignment")).post(
            "/api/v1/dunning-assignments/", {"billing_account": account.number, "policy": "STD"},
            format="json").status_code == 403
        screen = staff_client(make_user("billing.add_dunningassignment", "billing.view_dunningassignment"))
        page = screen.post("/billing/dunningassignment/add/", {"billing_account": account.pk, "policy": standard.pk})
        assert page.status_code == 302 and dunning.policy_for(account) == standard
        page = screen.post("/billing/dunningassignment/add/", {"billing_account": account.pk, "policy": lenient.pk})
        assert page.status_code == 302 and DunningAssignment.objects.get(billing_account=account).policy == lenient
        assert any(e.action == "dunning_policy" for e in history(account))
        for _ in range(31):
            c.add_days(1)
            daily.run(as_of=c.today(), actor="test")
        services.generate_invoice(actor=ACTOR, billing_account=account, period="2025-03")
        for _ in range(20):
            c.add_days(1)
            services.mark_overdue(as_of=c.today())
            dunning.run(as_of=c.today())
        sub.refresh_from_db()
        assert sub.status == "active" and not DunningAction.objects.filter(billing_account=account).exists()


def test_payment_does_not_resume_a_service_another_cause_still_blocks_and_the_ladder_ends_in_termination():
    """Suspended by dunning and by the operator: the payment clears dunning's cause only, the
    service stays suspended. Another account left unpaid reaches the last step: terminated."""
    with clock.travel_to(at(2025, 3, 1)) as c:
        tariffs = make_catalog(start=dt.date(2025, 1, 1))
        cycle = make_cycle(payment_terms_days=0)
        ladder()
        payer, debtor = postpaid_org(cycle), postpaid_org(cycle)
        subs_of = {a.pk: subs.create_subscription(actor=ACTOR, billing_account=a, tariff=tariffs["NET-31"],
                                                  login=f"u{i}", activate=True)
                   for i, a in enumerate((payer, debtor))}
        for _ in range(31):
            c.add_days(1)
            daily.run(as_of=c.today(), actor="test")
        for account in (payer, debtor):
            services.generate_invoice(actor=ACTOR, billing_account=account, period="2025-03")
        for _ in range(12):
            c.add_days(1)
            services.mark_overdue(as_of=c.today())
            dunning.run(as_of=c.today())
        held = subs_of[payer.pk]
        held.refresh_from_db()
        assert held.status == "suspended"
        subs.suspend(held, actor=ACTOR, cause="operator", reason="cable works")
        pay(payer, "36.00")
        run_events()
        held.refresh_from_db()
        assert not DunningAction.objects.filter(billing_account=payer, cleared_at__isnull=True).exists()
        assert held.status == "suspended"
        assert set(held.suspensions.filter(ended_at__isnull=True).values_list("cause", flat=True)) == {"operator"}
        for _ in range(50):
            c.add_days(1)
            services.mark_overdue(as_of=c.today())
            dunning.run(as_of=c.today())
        gone = subs_of[debtor.pk]
        gone.refresh_from_db()
        assert gone.status == "terminated"
        terminate = DunningAction.objects.get(billing_account=debtor, action="terminate")
        assert terminate.days_overdue >= 60 and terminate.detail["terminated"] == [gone.number]


def test_a_prepaid_account_short_of_the_reconnection_fee_keeps_the_step_until_it_can_pay():
    """The reconnection fee is held to the prepaid limit: clearing the step waits for the money,
    writes nothing meanwhile, and the payment that brings it reconnects."""
    from tarifa.catalog import services as catalog

    from .helpers import balance, customer_account

    with clock.travel_to(at(2025, 3, 1)):
        tariffs = make_catalog(start=dt.date(2025, 1, 1))
        fees = catalog.create_tariff(actor=ACTOR, code="NET-RC", name="Net", service=tariffs["NET-31"].service,
                                     currency="EUR", recurring_fee="31.00", valid_from=dt.date(2025, 1, 1),
                                     one_time_fees={"reconnection": "3.00"})
        suspend = [s for s in ladder().steps.all() if s.action == "suspend"][0]
        account = customer_account()  # prepaid, limit 0
        pay(account, "2.00")
        sub = subs.create_subscription(actor=ACTOR, billing_account=account, tariff=fees, login="pre",
                                       activate=True)  # 1.00 today: 1.00 left
        dunning.apply_step(actor=ACTOR, billing_account=account, step=suspend)
        sub.refresh_from_db()
        assert sub.status == "suspended"
        assert dunning.evaluate_account(account)["cleared"] == 0  # nothing overdue, but 1.00 < 3.00
        sub.refresh_from_db()
        assert sub.status == "suspended" and balance(account) == Decimal("1.00")
        assert DunningAction.objects.get(billing_account=account).cleared_at is None
        pay(account, "2.00")
        run_events()  # the payment's job: dunning re-evaluates, the fee now fits
        sub.refresh_from_db()
        assert sub.status == "active" and balance(account) == Decimal("0.00")
        assert DunningAction.objects.get(billing_account=account).cleared_at is not None
