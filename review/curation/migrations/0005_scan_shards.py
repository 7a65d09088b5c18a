# Scans in shards (review.curation.scans): the notes a scan reads, frozen in shards, and what it found for them.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('curation', '0004_job_worker'),
    ]

    operations = [
        migrations.AddField(
            model_name='scanjob',
            name='pairs_found',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='scanjob',
            name='real_notes_newest',
            field=models.PositiveBigIntegerField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name='ScanShard',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('first', models.PositiveIntegerField()),
                ('end', models.PositiveIntegerField()),
                ('notes', models.JSONField(default=list)),
                ('written', models.PositiveIntegerField(default=0)),
                ('flagged', models.PositiveIntegerField(default=0)),
                ('signed', models.BooleanField(default=False)),
                ('bands', models.BinaryField(blank=True, null=True)),
                ('shingles', models.BinaryField(blank=True, null=True)),
                ('shingle_ends', models.BinaryField(blank=True, null=True)),
                ('found', models.JSONField(blank=True, default=dict)),
                ('scan', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='shards', to='curation.scanjob')),
            ],
            options={
                'ordering': ['scan', 'first'],
                'constraints': [models.UniqueConstraint(fields=('scan', 'first'), name='scan_shard_once_per_first')],
            },
        ),
    ]
