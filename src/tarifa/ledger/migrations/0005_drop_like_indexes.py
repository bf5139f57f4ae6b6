from django.db import migrations

from tarifa.kernel.migration_ops import drop_like_indexes


class Migration(migrations.Migration):
    """Idempotency keys are looked up by equality only: no `LIKE` index on them."""

    dependencies = [("ledger", "0004_transfer_check_trigger")]

    operations = [
        drop_like_indexes("ledger", "Transfer", "idempotency_key"),
        drop_like_indexes("ledger", "Hold", "idempotency_key"),
    ]
