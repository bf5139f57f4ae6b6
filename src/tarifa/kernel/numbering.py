from django.db import connection, transaction

from .models import NumberSequence, local_branch_code

TAKE_SQL = """
UPDATE kernel_numbersequence SET last_value = last_value + 1
WHERE branch = %s AND series = %s
RETURNING last_value
"""


def next_number(series: str, *, width: int = 7, branch: str | None = None) -> str:
    """Take the next gap-free number of `series`, e.g. `HQ-C0000001`.

    Must run inside the caller's transaction: the counter row stays locked until it
    commits, so concurrent callers queue and a rolled-back number is reused.
    One round trip (UPDATE … RETURNING) once the series exists: numbering sits in every
    payment's transaction after its locks are taken, so its cost is paid serially.
    """
    branch = branch or local_branch_code()
    with connection.cursor() as cursor:
        cursor.execute(TAKE_SQL, [branch, series])
        row = cursor.fetchone()
        if row is None:  # the series' first number
            with transaction.atomic():
                NumberSequence.objects.get_or_create(branch=branch, series=series)
            cursor.execute(TAKE_SQL, [branch, series])
            row = cursor.fetchone()
    return f"{branch}-{series}{row[0]:0{width}d}"
