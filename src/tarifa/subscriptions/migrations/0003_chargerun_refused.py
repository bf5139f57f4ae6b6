from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('subscriptions', '0002_identifier_history'),
    ]

    operations = [
        migrations.AddField(
            model_name='chargerun',
            name='refused',
            field=models.PositiveIntegerField(default=0, help_text="Prepaid charges that did not fit the account's limit.", verbose_name='charges refused'),
        ),
    ]
