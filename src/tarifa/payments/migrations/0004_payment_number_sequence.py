"""Payment numbers from a PostgreSQL sequence (kernel.numbering.SEQUENCE_SERIES, issue 18).

The gap-free counter row of series P was locked by every payment until it committed, so all
payments queued on it. The sequence continues after the highest number the counter gave on
this node (numbers people have seen are never given again).
"""

from django.db import migrations

FORWARD = """
CREATE SEQUENCE payments_payment_number AS bigint MINVALUE 1;
SELECT setval('payments_payment_number',
              COALESCE((SELECT max(last_value) FROM kernel_numbersequence WHERE series = 'P'), 0) + 1, false);
"""
BACKWARD = """
INSERT INTO kernel_numbersequence (branch, series, last_value)
SELECT DISTINCT p.branch, 'P', 0 FROM payments_payment p
WHERE NOT EXISTS (SELECT 1 FROM kernel_numbersequence s WHERE s.branch = p.branch AND s.series = 'P');
UPDATE kernel_numbersequence SET last_value = GREATEST(last_value,
       (SELECT COALESCE(max(substring(number from '[0-9]+$')::bigint), 0) FROM payments_payment))
WHERE series = 'P';
DROP SEQUENCE payments_payment_number;
"""


class Migration(migrations.Migration):

    dependencies = [
        ("payments", "0003_checkout_expired"),
        ("kernel", "0001_initial"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
