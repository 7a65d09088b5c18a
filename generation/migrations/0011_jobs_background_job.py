"""Generation jobs and note import jobs take the shape every background job shares (core.BackgroundJob): one status
enum and progress as done of total. Every row is kept.

A generation job's progress is its items with an outcome (ok + failed + skipped) of the planned ones. A note import's
percent becomes rows: a finished import done of created + skipped, any other progress_done percent of 100. Its
source data set (now stored on the job, as an import command names it) is the one the upload page always used.
Import jobs gain the cancelled status; backwards it is failed again, and the percent comes back from done of total.
The row updates check their foreign keys at once (SET CONSTRAINTS ALL IMMEDIATE): PostgreSQL refuses to alter a
table with deferred checks still pending.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

ROWS_FORWARD = """
UPDATE generation_generationjob SET progress_total = planned, progress_done = ok + failed + skipped;
UPDATE generation_noteimportjob SET
    source_dataset = CASE kind WHEN 'rumedtop3' THEN 'RuMedTop3' ELSE 'MedSyn' END,
    progress_done = CASE WHEN status = 'done' THEN created + skipped ELSE LEAST(progress, 100) END,
    progress_total = CASE WHEN status = 'done' THEN created + skipped ELSE 100 END,
    updated_at = created_at;
SET CONSTRAINTS ALL IMMEDIATE;
"""
ROWS_BACKWARD = """
UPDATE generation_noteimportjob SET status = 'failed' WHERE status = 'cancelled';
UPDATE generation_noteimportjob SET progress = CASE WHEN status = 'done' THEN 100
                                                    WHEN progress_total > 0
                                                    THEN LEAST(100, 100 * progress_done / progress_total)
                                                    ELSE 0 END;
SET CONSTRAINTS ALL IMMEDIATE;
"""
STATUS = models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'),
                                   ('failed', 'Failed'), ('cancelled', 'Cancelled')],
                          db_index=True, default='queued', max_length=16)


class Migration(migrations.Migration):

    dependencies = [
        ('generation', '0010_note_curation_moved'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='generationjob',
            name='progress_done',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='generationjob',
            name='progress_total',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='generationjob',
            name='step',
            field=models.CharField(blank=True, default='', max_length=200),
        ),
        migrations.AddField(
            model_name='noteimportjob',
            name='error',
            field=models.TextField(blank=True, default=''),
        ),
        migrations.AddField(
            model_name='noteimportjob',
            name='file_path',
            field=models.CharField(blank=True, default='', max_length=1000,
                                   help_text='A file on the server an import command read (no upload).'),
        ),
        migrations.AddField(
            model_name='noteimportjob',
            name='source_dataset',
            field=models.CharField(default='', help_text='Stored on every imported note.', max_length=100),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name='noteimportjob',
            name='progress_done',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='noteimportjob',
            name='progress_total',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='noteimportjob',
            name='started_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='noteimportjob',
            name='finished_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='noteimportjob',
            name='step',
            field=models.CharField(blank=True, default='', max_length=200),
        ),
        migrations.AddField(
            model_name='noteimportjob',
            name='updated_at',
            field=models.DateTimeField(auto_now=True),
        ),
        migrations.AlterField(model_name='noteimportjob', name='status', field=STATUS),
        migrations.RunSQL(ROWS_FORWARD, ROWS_BACKWARD),
        migrations.RemoveField(
            model_name='noteimportjob',
            name='progress',
        ),
        migrations.AlterField(model_name='generationjob', name='status', field=STATUS),
        migrations.AlterField(
            model_name='generationjob',
            name='created_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='noteimportjob',
            name='created_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='noteimportjob',
            name='upload',
            field=models.FileField(blank=True, upload_to='note_imports/'),
        ),
    ]
