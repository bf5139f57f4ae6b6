from django.db import migrations

from tarifa.kernel.migration_ops import drop_like_indexes


class Migration(migrations.Migration):
    """Idempotency keys are looked up by equality only: no `LIKE` index on them."""

    dependencies = [("payments", "0001_initial")]

    operations = [
        drop_like_indexes("payments", "Payment", "idempotency_key"),
        drop_like_indexes("payments", "Refund", "idempotency_key"),
        drop_like_indexes("payments", "CardCheckout", "idempotency_key"),
    ]
