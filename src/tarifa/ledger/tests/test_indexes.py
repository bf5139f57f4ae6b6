"""The hot tables carry no index that nothing reads: each one costs every insert."""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def indexes(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return dict(cursor.fetchall())


@pytest.mark.parametrize("table", ["ledger_transfer_key", "ledger_hold", "payments_payment", "payments_refund",
                                   "payments_cardcheckout"])
def test_idempotency_keys_are_unique_without_a_like_index(table):
    found = indexes(table)
    on_key = {name: d for name, d in found.items() if "(idempotency_key" in d}
    assert [d for d in on_key.values() if "UNIQUE" in d], f"{table}: the unique index on the key must stay"
    assert not [name for name, d in on_key.items() if "varchar_pattern_ops" in d], on_key
