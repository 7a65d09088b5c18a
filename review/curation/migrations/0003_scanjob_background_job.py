"""ScanJob takes the shape every background job shares (core.BackgroundJob): total and processed become
progress_total and progress_done (kept), status gets the shared choices, and step, started_at and updated_at are
added (updated_at of an existing scan: when it finished, else when it was created).

At most one scan of a kind may be queued or running (a partial unique constraint). Should a database hold more (two
curators started one at once, the bug this closes), the newest is kept and the others are marked failed first.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

SUPERSEDED_FAIL = """
UPDATE review_scanjob
SET status = 'failed', finished_at = COALESCE(finished_at, now()),
    error = 'Superseded: a newer scan of this kind was queued at the same time.'
WHERE status IN ('queued', 'running')
  AND id NOT IN (SELECT max(id) FROM review_scanjob WHERE status IN ('queued', 'running') GROUP BY kind);
"""
UPDATED_AT_FILL = "UPDATE review_scanjob SET updated_at = COALESCE(finished_at, created_at);"


class Migration(migrations.Migration):

    dependencies = [
        ('curation', '0002_notecuration'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RenameField(model_name='scanjob', old_name='total', new_name='progress_total'),
        migrations.RenameField(model_name='scanjob', old_name='processed', new_name='progress_done'),
        migrations.AlterField(
            model_name='scanjob',
            name='status',
            field=models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], db_index=True, default='queued', max_length=16),
        ),
        # Back to the old 8-character status: a cancelled scan (the old schema has no such state) becomes failed.
        migrations.RunSQL(migrations.RunSQL.noop, "UPDATE review_scanjob SET status = 'failed' WHERE status = 'cancelled';"),
        migrations.AlterField(
            model_name='scanjob',
            name='created_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='scanjob',
            name='step',
            field=models.CharField(blank=True, default='', max_length=200),
        ),
        migrations.AddField(
            model_name='scanjob',
            name='started_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='scanjob',
            name='updated_at',
            field=models.DateTimeField(auto_now=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.RunSQL(UPDATED_AT_FILL, migrations.RunSQL.noop),
        migrations.RunSQL(SUPERSEDED_FAIL, migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name='scanjob',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ('queued', 'running'))), fields=('kind',), name='scan_one_active_per_kind'),
        ),
    ]
