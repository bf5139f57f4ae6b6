"""Bank statement files that are not CSV text: refused with a reason, nothing written (they were 500s)."""

import pytest

from tarifa.kernel.errors import DomainError
from tarifa.payments import services
from tarifa.payments.models import BankStatement

HEADER = b"date,amount,currency,reference,payer,bank_txn_id\n"


@pytest.mark.django_db
@pytest.mark.parametrize("body,code", [
    (HEADER + b"2026-01-05,10.00,USD,HQ-A0000001,Jo\x00e,T1\n", "statement_not_text"),
    (HEADER + b"2026-01-05,10.00,USD," + b"x" * 200_000 + b",Joe,T1\n", "statement_bad_csv"),
])
def test_nul_bytes_and_huge_fields_are_refused(body, code):
    with pytest.raises(DomainError) as err:
        services.import_statement(actor="test", filename="bad.csv", content=body)

    assert err.value.code == code and "file" in err.value.fields
    assert not BankStatement.objects.exists()
