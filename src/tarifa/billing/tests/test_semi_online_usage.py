"""Billing leaves out of invoices the rated CDRs of calls charged online already (semi-online billing:
their cost is in the ledger as the session's charges and its correction)."""

import datetime as dt

import pytest

from tarifa.charging.tests.helpers import DAY, world
from tarifa.charging.tests.test_semi_online import cdr, import_cdrs, online_call
from tarifa.ledger.selectors import check_ledger
from tarifa.rating.models import UsageRecord

pytestmark = pytest.mark.django_db


def test_postpaid_cdr_charged_online_is_not_invoiced_again():
    from django.db import connection

    from tarifa.billing.sources import USAGE_SQL

    w = world()
    online_call("call-8", used_s=60, number="15550002")  # bob, postpaid
    import_cdrs(cdr("bob-1", 60, subject="+15550002"), cdr("bob-2", 60, subject="+15550002",
                                                           start=DAY + dt.timedelta(hours=1)))
    assert UsageRecord.objects.get(record_id="bob-1").online_session is not None
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE billing_scope (account_id uuid, ledger_id uuid, period_end date)")
        cursor.execute("INSERT INTO billing_scope VALUES (%s, %s, '2024-03-31')",
                       [w["postpaid"].pk, w["postpaid"].ledger_account_id])
        cursor.execute(USAGE_SQL, {"tz": "UTC"})
        invoiced = {row[0] for row in cursor.fetchall()}
    assert invoiced == {UsageRecord.objects.get(record_id="bob-2").pk}
    assert check_ledger()["ok"]
