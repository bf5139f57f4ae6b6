"""Monthly partitions of the finished-sessions table (`aaa_finishedsession`, partitioned by range of
`stopped_at`; migration 0001 creates it with a DEFAULT partition and the months around its day).

`ensure(months_ahead=2)` creates the partitions of this month and the next ones (the daily job
calls it), so a Stop always lands in its month's partition; a row whose month has no partition yet
(a clock far in the past in a test) lands in the default partition, and that month's partition is
then left to the default (PostgreSQL refuses a partition whose rows already sit in the default).
"""

import datetime as dt

from django.db import connection, transaction

TABLE = "aaa_finishedsession"


def _month(day: dt.date, add: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + add
    return dt.date(index // 12, index % 12 + 1, 1)


def partition_sql(first: dt.date) -> tuple[str, str]:
    """(name, CREATE TABLE statement) of the partition of the month starting on `first`."""
    name = f"{TABLE}_{first:%Y%m}"
    nxt = _month(first, 1)
    return name, (f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {TABLE} "
                  f"FOR VALUES FROM ('{first.isoformat()}') TO ('{nxt.isoformat()}')")


def existing() -> set[str]:
    with connection.cursor() as cur:
        cur.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s", [TABLE])
        return {row[0] for row in cur.fetchall()}


def ensure(*, today: dt.date | None = None, months_ahead: int = 2) -> list[str]:
    """Create the missing monthly partitions from this month to `months_ahead` months on; returns
    the names created."""
    from tarifa.kernel.clock import today as clock_today

    day = today or clock_today()
    have = existing()
    made = []
    for add in range(0, months_ahead + 1):
        first = _month(day.replace(day=1), add)
        name, sql = partition_sql(first)
        if name in have:
            continue
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(f"SELECT EXISTS (SELECT 1 FROM {TABLE}_default WHERE stopped_at >= %s AND stopped_at < %s)",
                        [first, _month(first, 1)])
            if cur.fetchone()[0]:
                continue
            cur.execute(sql)
        made.append(name)
    return made
