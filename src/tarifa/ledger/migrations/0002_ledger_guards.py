"""Guards the database keeps by itself, whatever code writes to it.

- Transfers and holds reference their accounts by (id, currency): a transfer in a
  currency other than its accounts' cannot exist.
- ledger_transfer is append-only: UPDATE and DELETE raise (rule 4).
- A hold leaves `pending` once: an UPDATE of a resolved hold, a change of what was
  held, or a DELETE raises.
- ledger_uuid7(): time-ordered UUIDs for set-based inserts (post_transfers_bulk).
"""

from django.db import migrations

FORWARD = r"""
ALTER TABLE ledger_transfer
  ADD CONSTRAINT ledger_transfer_debit_account_currency_fk
    FOREIGN KEY (debit_account_id, currency) REFERENCES ledger_ledgeraccount (id, currency),
  ADD CONSTRAINT ledger_transfer_credit_account_currency_fk
    FOREIGN KEY (credit_account_id, currency) REFERENCES ledger_ledgeraccount (id, currency);
ALTER TABLE ledger_hold
  ADD CONSTRAINT ledger_hold_debit_account_currency_fk
    FOREIGN KEY (debit_account_id, currency) REFERENCES ledger_ledgeraccount (id, currency),
  ADD CONSTRAINT ledger_hold_credit_account_currency_fk
    FOREIGN KEY (credit_account_id, currency) REFERENCES ledger_ledgeraccount (id, currency);

CREATE FUNCTION ledger_transfer_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger_transfer is append-only: % refused; correct a transfer with a reversing one', TG_OP
    USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER ledger_transfer_append_only
  BEFORE UPDATE OR DELETE ON ledger_transfer
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfer_append_only();

CREATE FUNCTION ledger_hold_resolved_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'ledger_hold rows are never deleted' USING ERRCODE = 'restrict_violation';
  END IF;
  IF OLD.state <> 'pending' THEN
    RAISE EXCEPTION 'hold % is already %: it is resolved once', OLD.id, OLD.state USING ERRCODE = 'restrict_violation';
  END IF;
  IF (NEW.id, NEW.debit_account_id, NEW.credit_account_id, NEW.amount, NEW.currency, NEW.idempotency_key, NEW.created_at)
     IS DISTINCT FROM
     (OLD.id, OLD.debit_account_id, OLD.credit_account_id, OLD.amount, OLD.currency, OLD.idempotency_key, OLD.created_at) THEN
    RAISE EXCEPTION 'what hold % holds cannot change', OLD.id USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER ledger_hold_resolved_once
  BEFORE UPDATE OR DELETE ON ledger_hold
  FOR EACH ROW EXECUTE FUNCTION ledger_hold_resolved_once();

-- UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version 7, random rest.
CREATE FUNCTION ledger_uuid7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
  SELECT encode(
    set_bit(set_bit(set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              placing substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
              FROM 1 FOR 6),
      52, 1), 53, 1), 54, 1), 55, 0),
    'hex')::uuid
$$;
"""

BACKWARD = r"""
DROP FUNCTION IF EXISTS ledger_uuid7();
DROP TRIGGER IF EXISTS ledger_hold_resolved_once ON ledger_hold;
DROP FUNCTION IF EXISTS ledger_hold_resolved_once();
DROP TRIGGER IF EXISTS ledger_transfer_append_only ON ledger_transfer;
DROP FUNCTION IF EXISTS ledger_transfer_append_only();
ALTER TABLE ledger_hold DROP CONSTRAINT IF EXISTS ledger_hold_debit_account_currency_fk,
  DROP CONSTRAINT IF EXISTS ledger_hold_credit_account_currency_fk;
ALTER TABLE ledger_transfer DROP CONSTRAINT IF EXISTS ledger_transfer_debit_account_currency_fk,
  DROP CONSTRAINT IF EXISTS ledger_transfer_credit_account_currency_fk;
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
