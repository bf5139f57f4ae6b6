"""Operations shared by the apps' migrations."""

from django.db import migrations


def drop_like_indexes(app_label: str, model_name: str, *fields: str) -> migrations.RunPython:
    """Drop the `varchar_pattern_ops` ("…_like") indexes PostgreSQL gets from Django for
    unique or indexed character fields.

    They serve only `LIKE 'prefix%'` searches, which nothing does on keys such as
    idempotency keys, yet every insert pays for them: on `ledger_transfer` the one on
    `idempotency_key` cost a fifth of a bulk insert's time. The unique index itself stays.
    Reversible (the index is made again)."""

    def names(apps, schema_editor):
        model = apps.get_model(app_label, model_name)
        table = model._meta.db_table
        for name in fields:
            column = model._meta.get_field(name).column
            yield table, column, schema_editor._create_index_name(table, [column], suffix="_like")

    def forwards(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for _table, _column, index in names(apps, schema_editor):
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(index)}")

    def backwards(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table, column, index in names(apps, schema_editor):
            schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {schema_editor.quote_name(index)} ON "
                                  f"{schema_editor.quote_name(table)} ({schema_editor.quote_name(column)} "
                                  f"varchar_pattern_ops)")

    return migrations.RunPython(forwards, backwards, elidable=False)
