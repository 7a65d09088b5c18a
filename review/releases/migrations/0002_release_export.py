"""The export of a release becomes a background job of its own (ReleaseExport, the shape every job shares).

Every release gets its export row, copied from its export_* columns (progress was a percent; it becomes notes of
note_count), then those columns go. With them goes the only reason a sealed release could change: the trigger of
review 0002 that let export_* through now refuses any update of a sealed release (but created_by going to NULL,
which deleting its user does). The ReleaseNote and delete triggers stay as they are.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

EXPORTS_COPY = """
INSERT INTO releases_releaseexport (release_id, status, progress_done, progress_total, step, error, created_by_id,
                                    created_at, started_at, finished_at, updated_at, folder, files, stats)
SELECT id, export_status,
       CASE WHEN export_status = 'done' THEN note_count ELSE note_count * LEAST(export_progress, 100) / 100 END,
       note_count, '', export_error, created_by_id, created_at, NULL,
       CASE WHEN export_status = 'done' THEN exported_at END, COALESCE(exported_at, created_at),
       export_folder, export_files, export_stats
FROM review_release;
"""
EXPORTS_COPY_BACK = """
UPDATE review_release AS r
SET export_status = CASE WHEN e.status = 'cancelled' THEN 'failed' ELSE e.status END,
    export_progress = CASE WHEN e.status = 'done' THEN 100
                           WHEN e.progress_total > 0 THEN LEAST(100, 100 * e.progress_done / e.progress_total)
                           ELSE 0 END,
    export_error = e.error, export_folder = e.folder, export_files = e.files, export_stats = e.stats,
    exported_at = CASE WHEN e.status = 'done' THEN e.finished_at END
FROM releases_releaseexport AS e
WHERE e.release_id = r.id;
"""

SEALED_FROZEN = """
DROP TRIGGER review_release_frozen ON review_release;
CREATE TRIGGER review_release_frozen BEFORE UPDATE ON review_release FOR EACH ROW
    WHEN (OLD.content_sha256 <> '' AND (
          (to_jsonb(OLD) - 'created_by_id') IS DISTINCT FROM (to_jsonb(NEW) - 'created_by_id')
          OR (NEW.created_by_id IS NOT NULL AND NEW.created_by_id IS DISTINCT FROM OLD.created_by_id)))
    EXECUTE FUNCTION review_release_snapshot_immutable();
"""
SEALED_FROZEN_BUT_EXPORT = """
DROP TRIGGER review_release_frozen ON review_release;
CREATE TRIGGER review_release_frozen BEFORE UPDATE ON review_release FOR EACH ROW
    WHEN (OLD.content_sha256 <> '' AND (OLD.name IS DISTINCT FROM NEW.name OR OLD.version IS DISTINCT FROM NEW.version
          OR OLD.description IS DISTINCT FROM NEW.description OR OLD.licence IS DISTINCT FROM NEW.licence
          OR OLD.include_real IS DISTINCT FROM NEW.include_real
          OR OLD.real_data_licence IS DISTINCT FROM NEW.real_data_licence OR OLD.filters IS DISTINCT FROM NEW.filters
          OR OLD.note_count IS DISTINCT FROM NEW.note_count OR OLD.content_sha256 IS DISTINCT FROM NEW.content_sha256
          OR OLD.created_at IS DISTINCT FROM NEW.created_at))
    EXECUTE FUNCTION review_release_snapshot_immutable();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('releases', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ReleaseExport',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], db_index=True, default='queued', max_length=16)),
                ('progress_done', models.PositiveIntegerField(default=0)),
                ('progress_total', models.PositiveIntegerField(default=0)),
                ('step', models.CharField(blank=True, default='', max_length=200)),
                ('error', models.TextField(blank=True, default='')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('folder', models.CharField(blank=True, default='', max_length=300)),
                ('files', models.JSONField(blank=True, default=list)),
                ('stats', models.JSONField(blank=True, default=dict)),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('release', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='export', to='releases.release')),
            ],
            options={
                'ordering': ['-id'],
                'abstract': False,
            },
        ),
        migrations.RunSQL(EXPORTS_COPY, EXPORTS_COPY_BACK),
        migrations.RunSQL(SEALED_FROZEN, SEALED_FROZEN_BUT_EXPORT),
        migrations.RemoveField(model_name='release', name='export_error'),
        migrations.RemoveField(model_name='release', name='export_files'),
        migrations.RemoveField(model_name='release', name='export_folder'),
        migrations.RemoveField(model_name='release', name='export_progress'),
        migrations.RemoveField(model_name='release', name='export_stats'),
        migrations.RemoveField(model_name='release', name='export_status'),
        migrations.RemoveField(model_name='release', name='exported_at'),
    ]
