"""`tarifa demo synth`: a synthetic operator in bulk that keeps the ledger's invariants."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from tarifa.ledger.models import BillingAccount
from tarifa.ledger.selectors import check_ledger
from tarifa.subscriptions.models import ChargeRun, Subscription

pytestmark = pytest.mark.django_db


def below_limit() -> list:
    """Prepaid accounts whose balance is below minus their credit limit."""
    return [a.number for a in BillingAccount.objects.filter(payment_mode="prepaid").select_related("ledger_account")
            if a.ledger_account.balance < -a.credit_limit]


def test_synth_makes_accounts_subscriptions_and_payments_and_the_ledger_checks():
    out = StringIO()
    call_command("demo", "synth", "--accounts", "200", "--seed", "7", "--since", "2025-01-01", stdout=out)
    summary = json.loads(out.getvalue())["subscriptions"]
    assert summary["accounts"] == 200 and summary["subscriptions"] == 400
    assert Subscription.objects.filter(login__startswith="syn").count() == 200
    assert Subscription.objects.exclude(phone_number="").count() + Subscription.objects.exclude(smart_card="").count() == 200
    assert summary["payments"] >= 200
    assert summary["suspended"] > 0
    assert check_ledger()["ok"], check_ledger()["problems"]
    assert not below_limit(), "a prepaid account of the synthetic operator is below its credit limit"
    # A second batch continues the numbers; the charge run after it charges today only.
    call_command("demo", "synth", "--accounts", "50", "--seed", "8", stdout=StringIO())
    assert Subscription.objects.count() == 500
    out = StringIO()
    call_command("billing", "charge", stdout=out)
    result = json.loads(out.getvalue())
    assert result["first_day"] == result["as_of"]
    assert result["inserted"] > 300
    # Only the low prepaid accounts (8 %, 0.25 left) cannot pay today's fees.
    assert 0 < result["refused"] < 0.15 * (result["inserted"] + result["refused"])
    assert ChargeRun.objects.count() == 3
    assert check_ledger()["ok"]
    assert not below_limit()
