"""`tarifa secrets rotate`: re-encrypt every stored secret with the first key of
TARIFA_ENCRYPTION_KEYS (after a new key was put first); `tarifa secrets check`: every stored
secret opens with the configured keys. Both print a JSON summary; a secret that no key opens is
named and the command exits 1."""

import json

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from tarifa.kernel import secrets


def secret_fields():
    """(model, [fields]) for every model with an encrypted field."""
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if getattr(f, "secret", False)]
        if fields:
            yield model, fields


def _stored_rows(model, fields):
    """The ciphertext as stored (the field itself would decrypt), rows locked."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c) for c in [model._meta.pk.column, *(f.column for f in fields)])
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {quote(model._meta.db_table)} FOR UPDATE")
        return cursor.fetchall()


class Command(BaseCommand):
    help = "Rotate or check the secrets stored encrypted (TARIFA_ENCRYPTION_KEYS)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["rotate", "check"])

    def handle(self, *args, action, **options):
        summary, failures = {}, []
        for model, fields in secret_fields():
            label, rows_seen, rotated = model._meta.label, 0, 0
            with transaction.atomic():
                for pk, *stored_values in _stored_rows(model, fields):
                    rows_seen += 1
                    changes = {}
                    for field, stored in zip(fields, stored_values, strict=True):
                        if not stored:
                            continue
                        try:
                            secrets.decrypt(stored)
                        except secrets.SecretUnreadable as exc:
                            failures.append({"model": label, "pk": str(pk), "field": field.name, "error": str(exc)})
                            continue
                        if action == "rotate":
                            changes[field.attname] = secrets.rotate(stored)
                    if changes:
                        model.objects.filter(pk=pk).update(**changes)
                        rotated += 1
            summary[label] = {"rows": rows_seen, **({"rotated": rotated} if action == "rotate" else {})}
        self.stdout.write(json.dumps({"models": summary, "failures": failures}, indent=2))
        if failures:
            raise CommandError(f"{len(failures)} stored secret(s) cannot be decrypted with the configured keys")
