"""The transfer table partitioned by month (issue 18, migration 0008): the claims that must be
unique across months (idempotency key, reversed once, hold posted once) hold through the key
table; each month's partition keeps the guards; the job makes partitions ahead; the migration
converts a table that has rows."""

import datetime as dt
import threading
import uuid
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, connections, transaction
from django.db.migrations.executor import MigrationExecutor

from tarifa.ledger import services, tasks
from tarifa.ledger.errors import AlreadyReversed
from tarifa.ledger.models import Transfer, TransferKey
from tarifa.ledger.selectors import check_ledger, transfer_partitions

from . import factories as f

pytestmark = pytest.mark.django_db

# A transfer written behind the services' back, with an id of `at` (a uuid7 of that time),
# its key claimed and both accounts' totals moved, all in one statement.
RAW_TRANSFER = """
WITH claimed AS (
  INSERT INTO ledger_transfer_key (idempotency_key, transfer_id)
  VALUES (%(key)s, encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing
          substring(int8send((extract(epoch FROM %(at)s::timestamptz) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
          52, 1), 53, 1), 'hex')::uuid)
  RETURNING transfer_id
), ins AS (
  INSERT INTO ledger_transfer (id, branch, debit_account_id, credit_account_id, amount, currency, kind, tags,
                               reference_type, reference_id, idempotency_key, memo, actor, created_at)
  SELECT transfer_id, 'HQ', %(debit)s, %(credit)s, %(amount)s, 'USD', 'payment', '{}', '', '', %(key)s, '', 'test',
         %(at)s::timestamptz
  FROM claimed RETURNING id, amount
), moved AS (
  UPDATE ledger_ledgeraccount a
  SET debits_posted = a.debits_posted + CASE WHEN a.id = %(debit)s THEN ins.amount ELSE 0 END,
      credits_posted = a.credits_posted + CASE WHEN a.id = %(credit)s THEN ins.amount ELSE 0 END
  FROM ins WHERE a.id IN (%(debit)s, %(credit)s)
)
SELECT id FROM ins
"""


def raw_payment(account, amount, key, at):
    with connection.cursor() as cursor:
        cursor.execute(RAW_TRANSFER, {"key": key, "at": at, "debit": f.cash().pk,
                                      "credit": account.ledger_account_id, "amount": Decimal(amount)})
        return cursor.fetchone()[0]


def partition_of(transfer_id) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM ledger_transfer WHERE id = %s", [transfer_id])
        return cursor.fetchone()[0]


def month_name(day: dt.date) -> str:
    return f"ledger_transfer_y{day.year:04d}m{day.month:02d}"


def this_month() -> dt.date:
    return dt.datetime.now(dt.UTC).date().replace(day=1)


def months_after(day: dt.date, n: int) -> dt.date:
    y, m = divmod(day.month - 1 + n, 12)
    return dt.date(day.year + y, m + 1, 1)


def test_the_table_is_partitioned_by_month_with_partitions_ahead_and_a_default(ledger_ok):
    names = [p["name"] for p in transfer_partitions()]
    for n in range(4):
        assert month_name(months_after(this_month(), n)) in names
    assert names[-1] == "ledger_transfer_default"
    payment = f.pay(f.account(), "5")
    assert partition_of(payment.pk) == month_name(this_month())
    assert Transfer.objects.by_key(TransferKey.objects.get(transfer_id=payment.pk).idempotency_key).get() == payment


def test_the_job_makes_the_missing_months_once_each_with_its_guards(ledger_ok):
    assert tasks.ensure_partitions(timestamp=0) == 0  # the migration made this month and three ahead
    assert services.ensure_transfer_partitions(5) == 2
    assert services.ensure_transfer_partitions(5) == 0
    far = month_name(months_after(this_month(), 5))
    assert far in [p["name"] for p in transfer_partitions()]
    payment = f.pay(f.account(), "5")
    for sql in (f"UPDATE {far} SET memo = 'x'", f"DELETE FROM {month_name(this_month())} WHERE id = %s"):
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [payment.pk] if "%s" in sql else None)
    assert check_ledger()["checks"]["guards"] == "ok"


def test_a_key_claimed_in_an_earlier_month_is_replayed_not_posted_again(ledger_ok):
    account = f.account()
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=45)
    with connection.cursor() as cursor:
        cursor.execute("SELECT ledger_transfer_add_partition(%s)", [past.date()])
    old_id = raw_payment(account, "7", "pay-across-months", past)
    assert partition_of(old_id) == month_name(past.date().replace(day=1))
    again = f.pay(account, "7", idempotency_key="pay-across-months")
    assert again.replayed and again.pk == old_id
    assert f.balance(account) == Decimal("7")
    assert Transfer.objects.filter(idempotency_key="pay-across-months").count() == 1


def test_every_transfer_must_claim_its_key_even_in_another_month_or_partition():
    account = f.account()
    f.pay(account, "5", idempotency_key="taken")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)  # no partition: the DEFAULT one
    # A second transfer under a key already claimed (in another month): the key's unique index refuses it.
    with pytest.raises(IntegrityError, match="ledger_transfer_key_pkey"), transaction.atomic():
        raw_payment(account, "5", "taken", past)
    # A transfer that did not claim its key, into the parent or straight into a partition.
    columns = ("id, branch, debit_account_id, credit_account_id, amount, currency, kind, tags, reference_type, "
               "reference_id, idempotency_key, memo, actor, created_at")
    for table, id_sql in (("ledger_transfer", "ledger_uuid7()"), (month_name(this_month()), "ledger_uuid7()"),
                          ("ledger_transfer_default", "ledger_uuid7_floor(now() - interval '400 days')")):
        with pytest.raises(IntegrityError, match="did not claim its idempotency key"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {id_sql}, 'HQ', %s, %s, 1, 'USD', "
                               f"'payment', '{{}}', '', '', 'unclaimed', '', '', now()",
                               [f.cash().pk, account.ledger_account_id])
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        TransferKey.objects.filter(idempotency_key="taken").delete()
    assert check_ledger()["ok"]


def test_a_month_made_late_takes_its_transfers_from_the_default_partition():
    account = f.account()
    payment = f.pay(account, "2")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    old_id = raw_payment(account, "3", "pay-old", past)
    assert partition_of(old_id) == "ledger_transfer_default"
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT ledger_transfer_add_partition(%s)", [past.date()])
            assert cursor.fetchone()[0] == 1
    assert partition_of(old_id) == month_name(past.date().replace(day=1))
    assert partition_of(payment.pk) == month_name(this_month())
    assert Transfer.objects.by_key("pay-old").get().amount == Decimal("3")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM ledger_transfer_default")
    report = check_ledger()
    assert report["ok"], report["problems"]


def test_a_transfer_is_reversed_once_across_months(ledger_ok):
    account = f.account()
    payment = f.pay(account, "5")
    services.reverse_transfer(payment, actor="test", reason="wrong", idempotency_key="rev-1")
    columns = ("id, branch, debit_account_id, credit_account_id, amount, currency, kind, tags, reference_type, "
               "reference_id, idempotency_key, reverses_id, memo, actor, created_at")
    with pytest.raises(IntegrityError, match="ledger_transfer_reversed_once"), transaction.atomic():
        with connection.cursor() as cursor:  # a second reversal, written straight in SQL, a year ahead
            cursor.execute(f"""
                WITH k AS (INSERT INTO ledger_transfer_key (idempotency_key, transfer_id, reverses_id)
                           VALUES ('rev-2', ledger_uuid7_floor(now() + interval '1 year'), %(orig)s)
                           RETURNING transfer_id)
                INSERT INTO ledger_transfer ({columns})
                SELECT transfer_id, 'HQ', %(credit)s, %(debit)s, 5, 'USD', 'reversal', '{{}}', '', '', 'rev-2',
                       %(orig)s, '', '', now() FROM k""",
                           {"orig": payment.pk, "debit": payment.debit_account_id,
                            "credit": payment.credit_account_id})


def test_concurrent_posts_of_one_key_post_once(transactional_db):
    account = f.account()
    f.cash()
    barrier, results, errors = threading.Barrier(6), [], []

    def post():
        try:
            barrier.wait()
            results.append(f.pay(account, "2", idempotency_key="same-key").pk)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1
    assert Transfer.objects.filter(idempotency_key="same-key").count() == 1
    assert f.balance(account) == Decimal("2")
    assert check_ledger()["ok"]


def test_the_migration_converts_a_table_with_rows(transactional_db):
    """Back to 0007 (one table, rows written as 0007's services did), forward to 0008: every row
    in its month's partition, its key claimed, the references to transfers kept, the check ok."""
    account = f.account()
    first = f.pay(account, "10")
    services.reverse_transfer(first, actor="test", reason="wrong", idempotency_key="rev-first")
    executor = MigrationExecutor(connection)
    executor.migrate([("ledger", "0007_drop_transfer_tags_index")])
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'ledger_transfer'::regclass")
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
                       "AND confrelid = 'ledger_transfer'::regclass")
        references = cursor.fetchone()[0]
        assert references > 0  # payments, billing… point at transfers
        # Rows of an earlier month, as the unpartitioned table took them.
        old_id = uuid.UUID(int=(int((dt.datetime.now(dt.UTC) - dt.timedelta(days=70)).timestamp() * 1000) << 80)
                           | (0x7 << 76) | 0x8000_0000_0000_0000)
        cursor.execute("""INSERT INTO ledger_transfer (id, branch, debit_account_id, credit_account_id, amount,
                          currency, kind, tags, reference_type, reference_id, idempotency_key, memo, actor,
                          created_at) VALUES (%s, 'HQ', %s, %s, 4, 'USD', 'payment', '{}', '', '', 'old-row', '',
                          'test', now() - interval '70 days')""", [old_id, f.cash().pk, account.ledger_account_id])
        cursor.execute("UPDATE ledger_ledgeraccount SET debits_posted = debits_posted + 4 WHERE id = %s", [f.cash().pk])
        cursor.execute("UPDATE ledger_ledgeraccount SET credits_posted = credits_posted + 4 WHERE id = %s",
                       [account.ledger_account_id])
        cursor.execute("SELECT count(*) FROM ledger_transfer")
        rows = cursor.fetchone()[0]
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ledger_transfer")
        assert cursor.fetchone()[0] == rows
        cursor.execute("SELECT count(*) FROM ledger_transfer_key")
        assert cursor.fetchone()[0] == rows
        cursor.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
                       "AND confrelid = 'ledger_transfer'::regclass AND conparentid = 0")
        assert cursor.fetchone()[0] == references
    old_month = (dt.datetime.now(dt.UTC) - dt.timedelta(days=70)).date().replace(day=1)
    assert partition_of(old_id) == month_name(old_month)
    assert partition_of(first.pk) == month_name(this_month())
    assert Transfer.objects.by_key("rev-first").get().reverses_id == first.pk
    # The claims work on the converted table: a replay, a refused second reversal.
    assert f.pay(account, "4", idempotency_key="old-row").pk == old_id
    with pytest.raises(AlreadyReversed):
        services.reverse_transfer(first, actor="test", reason="again", idempotency_key="rev-again")
    report = check_ledger()
    assert report["ok"], report["problems"]
    call_command("ledger", "partitions")


def test_the_check_names_a_claim_without_its_transfer():
    f.pay(f.account(), "1")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO ledger_transfer_key (idempotency_key, transfer_id) VALUES ('lost', %s)",
                           [uuid.uuid4()])
        report = check_ledger()
        transaction.set_rollback(True)
    assert report["checks"]["transfer_keys"] == "1 problems"
    assert [p["detail"] for p in report["problems"]] == ["key lost claimed by a transfer that does not exist"]
    assert check_ledger()["ok"]
