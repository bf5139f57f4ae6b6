"""Issue 18: `ledger_transfer` partitioned by month on its time-ordered (uuid7) primary key.

PostgreSQL enforces a unique index over a partitioned table only when it contains the
partition key; the idempotency key must be unique across months (a retry can cross a month
boundary) and a transfer reversed or a hold posted at most once ever. So those claims move
to `ledger_transfer_key` (idempotency key → transfer, plus the reversed transfer and the
posted hold, each unique): every writer inserts the key row and the transfer in one
statement, the claim being `ON CONFLICT` on the key table's primary key, and the transfer
table's statement check refuses any transfer without its key row.

The conversion of an existing table runs in this migration's transaction (all or nothing):
the references to `ledger_transfer(id)` are dropped and re-made, the rows copied into the
partitioned table (one partition per month that has rows, the current one and the next
three, and a DEFAULT partition), their keys into the key table, the indexes built after the
copy, the guards re-made. It holds an exclusive lock on the table for as long as the copy
takes (docs/ledger.md, "Partitions").
"""

import django.db.models.deletion
from django.db import migrations, models

# One place for the DDL of a month: the migration and the periodic job call these.
FUNCTIONS = r"""
-- The smallest uuid7 of a time: its first 48 bits are the Unix time in milliseconds.
CREATE FUNCTION ledger_uuid7_floor(at timestamptz) RETURNS uuid LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT (lpad(to_hex(floor(extract(epoch FROM at) * 1000)::bigint), 12, '0') || '00000000000000000000')::uuid
$$;

-- The month (UTC) a uuid7 was made in.
CREATE FUNCTION ledger_uuid7_month(id uuid) RETURNS date LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT date_trunc('month', to_timestamp(('x' || left(replace(id::text, '-', ''), 12))::bit(48)::bigint / 1000.0)
                             AT TIME ZONE 'UTC')::date
$$;

-- The partition of one month (UTC), with the guards a statement addressed to it directly
-- must meet (statements on the parent fire the parent's). Returns 1 if made, 0 if it existed.
-- Transfers of that month already in the DEFAULT partition (made while the month had no
-- partition) are moved into it, in this transaction: references to them are deferred
-- foreign keys, checked at commit, when the rows are back under the same ids.
CREATE FUNCTION ledger_transfer_add_partition(month date) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  first date := date_trunc('month', month)::date;
  name text := 'ledger_transfer_' || to_char(date_trunc('month', month), '"y"YYYY"m"MM');
  lo uuid := ledger_uuid7_floor(first::timestamp AT TIME ZONE 'UTC');
  hi uuid := ledger_uuid7_floor((first + interval '1 month')::timestamp AT TIME ZONE 'UTC');
BEGIN
  IF to_regclass(name) IS NOT NULL THEN
    RETURN 0;
  END IF;
  IF to_regclass('ledger_transfer_default') IS NOT NULL
     AND EXISTS (SELECT 1 FROM ledger_transfer_default WHERE id >= lo AND id < hi) THEN
    EXECUTE format('CREATE TABLE %I (LIKE ledger_transfer INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format('INSERT INTO %I SELECT * FROM ledger_transfer_default WHERE id >= %L AND id < %L', name, lo, hi);
    ALTER TABLE ledger_transfer_default DISABLE TRIGGER ledger_transfer_append_only;
    DELETE FROM ledger_transfer_default WHERE id >= lo AND id < hi;
    EXECUTE format('ALTER TABLE ledger_transfer ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    -- The references to the moved rows are checked now (they are back under the same ids),
    -- which also lets the guard be enabled again; then the foreign keys are deferred again,
    -- as Django's are (DEFERRABLE INITIALLY DEFERRED).
    SET CONSTRAINTS ALL IMMEDIATE;
    ALTER TABLE ledger_transfer_default ENABLE TRIGGER ledger_transfer_append_only;
    SET CONSTRAINTS ALL DEFERRED;
  ELSE
    EXECUTE format('CREATE TABLE %I PARTITION OF ledger_transfer FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
  END IF;
  PERFORM ledger_transfer_partition_guards(name);
  RETURN 1;
END
$$;

CREATE FUNCTION ledger_transfer_partition_guards(name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE TRIGGER ledger_transfer_append_only BEFORE UPDATE OR DELETE ON %I '
                 'FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfer_append_only()', name);
  EXECUTE format('CREATE TRIGGER ledger_transfer_check_inserted AFTER INSERT ON %I REFERENCING NEW TABLE AS inserted '
                 'FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfer_check_inserted()', name);
END
$$;

-- The partitions of this month and the next `ahead` months; returns how many were made.
CREATE FUNCTION ledger_transfer_ensure_partitions(ahead integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  made integer := 0;
BEGIN
  FOR i IN 0..ahead LOOP
    made := made + ledger_transfer_add_partition(
      (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i))::date);
  END LOOP;
  RETURN made;
END
$$;

CREATE OR REPLACE FUNCTION ledger_transfer_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused; correct a transfer with a reversing one', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'restrict_violation';
END
$$;

-- The insert check of 0004, plus: every transfer claimed its key (and what it reverses or
-- posts) in ledger_transfer_key, in the same statement.
CREATE OR REPLACE FUNCTION ledger_transfer_check_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad text;
BEGIN
  SELECT n.idempotency_key INTO bad FROM inserted n
  WHERE NOT EXISTS (SELECT 1 FROM ledger_ledgeraccount d WHERE d.id = n.debit_account_id AND d.currency = n.currency)
     OR NOT EXISTS (SELECT 1 FROM ledger_ledgeraccount c WHERE c.id = n.credit_account_id AND c.currency = n.currency)
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'transfer % names an account that does not exist in its currency', bad
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  SELECT n.idempotency_key INTO bad FROM inserted n
  WHERE (n.reverses_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ledger_transfer r WHERE r.id = n.reverses_id))
     OR (n.pending_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ledger_hold h WHERE h.id = n.pending_id))
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'transfer % reverses or posts something that does not exist', bad
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  SELECT n.idempotency_key INTO bad FROM inserted n
  WHERE NOT EXISTS (SELECT 1 FROM ledger_transfer_key k
                    WHERE k.idempotency_key = n.idempotency_key AND k.transfer_id = n.id
                      AND k.reverses_id IS NOT DISTINCT FROM n.reverses_id
                      AND k.pending_id IS NOT DISTINCT FROM n.pending_id)
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'transfer % did not claim its idempotency key in ledger_transfer_key', bad
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END
$$;
"""

FORWARD = FUNCTIONS + r"""
CREATE TABLE ledger_transfer_key (
  idempotency_key varchar(200) NOT NULL PRIMARY KEY,
  transfer_id uuid NOT NULL,
  reverses_id uuid NULL,
  pending_id uuid NULL
);
CREATE TRIGGER ledger_transfer_key_append_only BEFORE UPDATE OR DELETE ON ledger_transfer_key
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfer_append_only();

DROP TABLE IF EXISTS ledger_transfer_refs;
CREATE TEMP TABLE ledger_transfer_refs ON COMMIT DROP AS
  SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def
  FROM pg_constraint WHERE contype = 'f' AND confrelid = 'ledger_transfer'::regclass;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM ledger_transfer_refs LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
  END LOOP;
END
$$;

ALTER TABLE ledger_transfer RENAME TO ledger_transfer_unpartitioned;
CREATE TABLE ledger_transfer (LIKE ledger_transfer_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
  PARTITION BY RANGE (id);
CREATE TABLE ledger_transfer_default PARTITION OF ledger_transfer DEFAULT;
SELECT ledger_transfer_partition_guards('ledger_transfer_default');
-- A partition for every month that has transfers (ids made between 2000 and a year ahead;
-- anything else goes to the default partition), this month and the next three.
SELECT ledger_transfer_add_partition(month) FROM (
  SELECT DISTINCT ledger_uuid7_month(id) AS month FROM ledger_transfer_unpartitioned
) m WHERE month BETWEEN DATE '2000-01-01' AND (now() + interval '1 year')::date ORDER BY month;
SELECT ledger_transfer_ensure_partitions(3);

INSERT INTO ledger_transfer SELECT * FROM ledger_transfer_unpartitioned ORDER BY id;
INSERT INTO ledger_transfer_key (idempotency_key, transfer_id, reverses_id, pending_id)
  SELECT idempotency_key, id, reverses_id, pending_id FROM ledger_transfer_unpartitioned ORDER BY idempotency_key;
DROP TABLE ledger_transfer_unpartitioned;
CREATE UNIQUE INDEX ledger_transfer_reversed_once ON ledger_transfer_key (reverses_id) WHERE reverses_id IS NOT NULL;
CREATE UNIQUE INDEX ledger_transfer_hold_posted_once ON ledger_transfer_key (pending_id) WHERE pending_id IS NOT NULL;

ALTER TABLE ledger_transfer ADD CONSTRAINT ledger_transfer_pkey PRIMARY KEY (id);
CREATE INDEX ledger_transfer_reference ON ledger_transfer (reference_type, reference_id);
CREATE INDEX ledger_transfer_debit_at ON ledger_transfer (debit_account_id, created_at);
CREATE INDEX ledger_transfer_credit_at ON ledger_transfer (credit_account_id, created_at);
CREATE INDEX ledger_transfer_created_brin ON ledger_transfer USING brin (created_at);
CREATE TRIGGER ledger_transfer_append_only BEFORE UPDATE OR DELETE ON ledger_transfer
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfer_append_only();
CREATE TRIGGER ledger_transfer_check_inserted AFTER INSERT ON ledger_transfer REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfer_check_inserted();

DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM ledger_transfer_refs LOOP
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', r.tbl, r.conname, r.def);
  END LOOP;
END
$$;
ANALYZE ledger_transfer;
ANALYZE ledger_transfer_key;
"""

# Back to one table (the partitions' rows copied, the key table dropped; its claims go back
# to the transfer table's unique indexes).
BACKWARD = r"""
DROP TABLE IF EXISTS ledger_transfer_refs;
CREATE TEMP TABLE ledger_transfer_refs ON COMMIT DROP AS
  SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def
  FROM pg_constraint WHERE contype = 'f' AND confrelid = 'ledger_transfer'::regclass AND conparentid = 0;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM ledger_transfer_refs LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
  END LOOP;
END
$$;
ALTER TABLE ledger_transfer RENAME TO ledger_transfer_partitioned;
CREATE TABLE ledger_transfer (LIKE ledger_transfer_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
INSERT INTO ledger_transfer SELECT * FROM ledger_transfer_partitioned ORDER BY id;
DROP TABLE ledger_transfer_partitioned;
DROP TABLE ledger_transfer_key;
ALTER TABLE ledger_transfer ADD CONSTRAINT ledger_transfer_pkey PRIMARY KEY (id);
ALTER TABLE ledger_transfer ADD CONSTRAINT ledger_transfer_idempotency_key_key UNIQUE (idempotency_key);
CREATE UNIQUE INDEX ledger_transfer_reversed_once ON ledger_transfer (reverses_id) WHERE reverses_id IS NOT NULL;
CREATE UNIQUE INDEX ledger_transfer_hold_posted_once ON ledger_transfer (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX ledger_transfer_reference ON ledger_transfer (reference_type, reference_id);
CREATE INDEX ledger_transfer_debit_at ON ledger_transfer (debit_account_id, created_at);
CREATE INDEX ledger_transfer_credit_at ON ledger_transfer (credit_account_id, created_at);
CREATE INDEX ledger_transfer_created_brin ON ledger_transfer USING brin (created_at);
DROP FUNCTION ledger_transfer_ensure_partitions(integer);
DROP FUNCTION ledger_transfer_add_partition(date);
DROP FUNCTION ledger_transfer_partition_guards(text);
DROP FUNCTION ledger_uuid7_month(uuid);
DROP FUNCTION ledger_uuid7_floor(timestamptz);
CREATE OR REPLACE FUNCTION ledger_transfer_check_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad text;
BEGIN
  SELECT n.idempotency_key INTO bad FROM inserted n
  WHERE NOT EXISTS (SELECT 1 FROM ledger_ledgeraccount d WHERE d.id = n.debit_account_id AND d.currency = n.currency)
     OR NOT EXISTS (SELECT 1 FROM ledger_ledgeraccount c WHERE c.id = n.credit_account_id AND c.currency = n.currency)
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'transfer % names an account that does not exist in its currency', bad
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  SELECT n.idempotency_key INTO bad FROM inserted n
  WHERE (n.reverses_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ledger_transfer r WHERE r.id = n.reverses_id))
     OR (n.pending_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ledger_hold h WHERE h.id = n.pending_id))
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'transfer % reverses or posts something that does not exist', bad
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER ledger_transfer_append_only BEFORE UPDATE OR DELETE ON ledger_transfer
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfer_append_only();
CREATE TRIGGER ledger_transfer_check_inserted AFTER INSERT ON ledger_transfer REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfer_check_inserted();
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM ledger_transfer_refs LOOP
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', r.tbl, r.conname, r.def);
  END LOOP;
END
$$;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0007_drop_transfer_tags_index'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
            state_operations=[
                migrations.RemoveConstraint(model_name='transfer', name='ledger_transfer_reversed_once'),
                migrations.RemoveConstraint(model_name='transfer', name='ledger_transfer_hold_posted_once'),
                migrations.AlterField(
                    model_name='transfer',
                    name='idempotency_key',
                    field=models.CharField(max_length=200, verbose_name='idempotency key'),
                ),
                migrations.CreateModel(
                    name='TransferKey',
                    fields=[
                        ('idempotency_key', models.CharField(max_length=200, primary_key=True, serialize=False,
                                                             verbose_name='idempotency key')),
                        ('transfer', models.ForeignKey(db_constraint=False, db_index=False,
                                                       on_delete=django.db.models.deletion.DO_NOTHING,
                                                       related_name='+', to='ledger.transfer',
                                                       verbose_name='transfer')),
                        ('reverses_id', models.UUIDField(blank=True, null=True, verbose_name='reverses')),
                        ('pending_id', models.UUIDField(blank=True, null=True, verbose_name='posts hold')),
                    ],
                    options={
                        'verbose_name': 'transfer key',
                        'verbose_name_plural': 'transfer keys',
                        'db_table': 'ledger_transfer_key',
                        'default_permissions': (),
                        'constraints': [
                            models.UniqueConstraint(condition=models.Q(('reverses_id__isnull', False)),
                                                    fields=('reverses_id',), name='ledger_transfer_reversed_once'),
                            models.UniqueConstraint(condition=models.Q(('pending_id__isnull', False)),
                                                    fields=('pending_id',), name='ledger_transfer_hold_posted_once'),
                        ],
                    },
                ),
            ],
        ),
    ]
