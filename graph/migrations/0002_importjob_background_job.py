"""ImportJob takes the shape every background job shares (core.BackgroundJob): one status enum and progress as
done of total.

Every row is kept: "unchanged" (the files were already in the graph) becomes "done" with changed = false, and "done"
gets changed = true; the progress percent becomes progress_done of progress_total = 100 (the importer now counts
nodes and edges written, which old rows never recorded). Backwards, a done row that changed nothing is "unchanged"
again and the percent comes back from done of total. The row updates check their foreign keys at once (SET
CONSTRAINTS ALL IMMEDIATE): PostgreSQL refuses to alter a table with deferred checks still pending.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

ROWS_FORWARD = """
UPDATE graph_importjob SET changed = (status = 'done'), progress_done = LEAST(progress, 100), progress_total = 100,
                           updated_at = created_at;
UPDATE graph_importjob SET status = 'done' WHERE status = 'unchanged';
SET CONSTRAINTS ALL IMMEDIATE;
"""
ROWS_BACKWARD = """
UPDATE graph_importjob SET status = 'unchanged' WHERE status = 'done' AND NOT changed;
UPDATE graph_importjob SET status = 'failed' WHERE status = 'cancelled';
UPDATE graph_importjob SET progress = CASE WHEN status IN ('done', 'unchanged') THEN 100
                                           WHEN progress_total > 0 THEN LEAST(100, 100 * progress_done / progress_total)
                                           ELSE 0 END;
SET CONSTRAINTS ALL IMMEDIATE;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('graph', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='importjob',
            name='changed',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='importjob',
            name='error',
            field=models.TextField(blank=True, default=''),
        ),
        migrations.AddField(
            model_name='importjob',
            name='progress_done',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='importjob',
            name='progress_total',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='importjob',
            name='started_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='importjob',
            name='finished_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='importjob',
            name='updated_at',
            field=models.DateTimeField(auto_now=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.RunSQL(ROWS_FORWARD, ROWS_BACKWARD),
        migrations.RemoveField(
            model_name='importjob',
            name='progress',
        ),
        migrations.AlterField(
            model_name='importjob',
            name='status',
            field=models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], db_index=True, default='queued', max_length=16),
        ),
        migrations.AlterField(
            model_name='importjob',
            name='step',
            field=models.CharField(blank=True, default='', max_length=200),
        ),
        migrations.AlterField(
            model_name='importjob',
            name='created_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
    ]
