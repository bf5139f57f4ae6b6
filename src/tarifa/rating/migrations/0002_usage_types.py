"""The usage types every operator has: voice seconds, SMS, data bytes, VOD items."""

from django.db import migrations

TYPES = [
    ("voice", "Voice calls", "time", True),
    ("sms", "SMS", "count", False),
    ("data", "Data", "bytes", False),
    ("vod", "Video on demand", "count", False),
]


def create(apps, schema_editor):
    UsageType = apps.get_model("rating", "UsageType")
    from tarifa.kernel.ids import uuid7

    for code, name, measure, split in TYPES:
        UsageType.objects.get_or_create(code=code, defaults={"id": uuid7(), "name": name, "measure": measure,
                                                             "split_by_time": split})


class Migration(migrations.Migration):
    dependencies = [("rating", "0001_initial")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
