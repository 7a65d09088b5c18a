# Written by hand: ModelConfig.concurrency, the number of requests an OpenAI-compatible backend keeps in flight.

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('generation', '0007_noteversion'),
    ]

    operations = [
        migrations.AddField(
            model_name='modelconfig',
            name='concurrency',
            field=models.PositiveIntegerField(default=4, help_text='Requests in flight at once (OpenAI-compatible backends)', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(64)], verbose_name='concurrency'),
        ),
    ]
