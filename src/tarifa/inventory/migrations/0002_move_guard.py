from django.db import migrations

FORWARD = r"""
CREATE FUNCTION inventory_move_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'stock moves are posted once and never changed or deleted (reverse them instead)'
    USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER inventory_move_guard BEFORE UPDATE OR DELETE ON inventory_move
  FOR EACH ROW EXECUTE FUNCTION inventory_move_guard();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS inventory_move_guard ON inventory_move;
DROP FUNCTION IF EXISTS inventory_move_guard();
"""


class Migration(migrations.Migration):
    dependencies = [("inventory", "0001_initial")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
