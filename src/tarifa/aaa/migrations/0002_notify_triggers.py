"""NOTIFY tarifa_aaa after any change to what the RADIUS server answers from (its snapshot):
NAS, profiles, access settings and subscriptions (logins, passwords, status, tariff). Statement
triggers: one notification per statement, and PostgreSQL folds a transaction's equal
notifications into one, delivered at commit."""

from django.db import migrations

# Only the columns the snapshot reads (the server's own writes, aaa_nas.last_seen, notify nothing).
TABLES = {"aaa_nas": "name, ip_address, secret, type, active", "aaa_profile": "", "aaa_accesssettings": "",
          "subscriptions_subscription": "login, access_password, status, mac_address, ip_address, tariff_id"}

FUNCTION = """
CREATE OR REPLACE FUNCTION aaa_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tarifa_aaa', TG_TABLE_NAME);
    RETURN NULL;
END $$"""


def triggers():
    for table, columns in TABLES.items():
        update = f"UPDATE OF {columns}" if columns else "UPDATE"
        yield (f"CREATE TRIGGER {table}_aaa_notify AFTER INSERT OR {update} OR DELETE OR TRUNCATE ON {table} "
               f"FOR EACH STATEMENT EXECUTE FUNCTION aaa_notify_change()",
               f"DROP TRIGGER IF EXISTS {table}_aaa_notify ON {table}")


class Migration(migrations.Migration):

    dependencies = [
        ("aaa", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(FUNCTION, "DROP FUNCTION IF EXISTS aaa_notify_change()"),
        *[migrations.RunSQL(forward, backward) for forward, backward in triggers()],
    ]
