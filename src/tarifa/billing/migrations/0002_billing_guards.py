"""Issued invoices never change (a database guard, not only a service rule).

- billing_invoice: once `state` is not `draft`, an UPDATE may change only the payment
  state (`state`, `paid_amount`, `credited_amount`, `updated_at`); a DELETE is refused.
  A draft becomes issued by an UPDATE that sets its number (allowed from draft).
- billing_invoiceline and billing_invoicedsource: rows are added, changed or removed only
  while their invoice is a draft (statement-level checks, cheap for the bulk path).
"""

from django.db import migrations

FORWARD = r"""
CREATE FUNCTION billing_invoice_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.state <> 'draft' THEN
      RAISE EXCEPTION 'invoice % is issued and cannot be deleted', OLD.number USING ERRCODE = 'P0001';
    END IF;
    RETURN OLD;
  END IF;
  IF OLD.state <> 'draft' AND (to_jsonb(NEW) - ARRAY['state', 'paid_amount', 'credited_amount', 'updated_at'])
       IS DISTINCT FROM (to_jsonb(OLD) - ARRAY['state', 'paid_amount', 'credited_amount', 'updated_at']) THEN
    RAISE EXCEPTION 'invoice % is issued and cannot be changed', OLD.number USING ERRCODE = 'P0001';
  END IF;
  IF NEW.state = 'draft' AND OLD.state <> 'draft' THEN
    RAISE EXCEPTION 'invoice % is issued and cannot return to draft', OLD.number USING ERRCODE = 'P0001';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER billing_invoice_immutable BEFORE UPDATE OR DELETE ON billing_invoice
  FOR EACH ROW EXECUTE FUNCTION billing_invoice_immutable();

CREATE FUNCTION billing_lines_of_drafts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    IF EXISTS (SELECT 1 FROM new_rows n JOIN billing_invoice i ON i.id = n.invoice_id WHERE i.state <> 'draft') THEN
      RAISE EXCEPTION '%: the invoice is issued; its lines cannot change', TG_TABLE_NAME USING ERRCODE = 'P0001';
    END IF;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    IF EXISTS (SELECT 1 FROM old_rows o JOIN billing_invoice i ON i.id = o.invoice_id WHERE i.state <> 'draft') THEN
      RAISE EXCEPTION '%: the invoice is issued; its lines cannot change', TG_TABLE_NAME USING ERRCODE = 'P0001';
    END IF;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER billing_line_insert AFTER INSERT ON billing_invoiceline REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION billing_lines_of_drafts();
CREATE TRIGGER billing_line_update AFTER UPDATE ON billing_invoiceline
  REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION billing_lines_of_drafts();
CREATE TRIGGER billing_line_delete AFTER DELETE ON billing_invoiceline REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION billing_lines_of_drafts();
CREATE TRIGGER billing_source_insert AFTER INSERT ON billing_invoicedsource REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION billing_lines_of_drafts();
CREATE TRIGGER billing_source_update AFTER UPDATE ON billing_invoicedsource
  REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION billing_lines_of_drafts();
CREATE TRIGGER billing_source_delete AFTER DELETE ON billing_invoicedsource REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION billing_lines_of_drafts();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS billing_source_delete ON billing_invoicedsource;
DROP TRIGGER IF EXISTS billing_source_update ON billing_invoicedsource;
DROP TRIGGER IF EXISTS billing_source_insert ON billing_invoicedsource;
DROP TRIGGER IF EXISTS billing_line_delete ON billing_invoiceline;
DROP TRIGGER IF EXISTS billing_line_update ON billing_invoiceline;
DROP TRIGGER IF EXISTS billing_line_insert ON billing_invoiceline;
DROP FUNCTION IF EXISTS billing_lines_of_drafts();
DROP TRIGGER IF EXISTS billing_invoice_immutable ON billing_invoice;
DROP FUNCTION IF EXISTS billing_invoice_immutable();
"""


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial"), ("ledger", "0002_ledger_guards")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
