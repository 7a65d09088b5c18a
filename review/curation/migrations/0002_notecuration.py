"""The curation state of synthetic notes moves off generation.Note into NoteCuration (one row a synthetic note).

Every synthetic note gets its row with its review state, reason, flags, memorisation check and override as they
are. duplicates_checked_version is new: it is the note's version when a finished near-duplicate scan was started
after the note's current text was written (that scan read this text), else empty. generation 0010 then removes
the old columns; going back copies the rows onto the notes again.
"""

import django.db.models.deletion
from django.db import migrations, models

CURATION_COPY = """
INSERT INTO curation_notecuration (note_id, state, reason, near_duplicate_of_id, duplicate_jaccard,
                                   duplicates_checked_version, memorisation_real_note_id, memorisation_ngram,
                                   memorisation_score, memorised, memorisation_checked_version, flag_override)
SELECT n.id, n.review_state, n.review_reason, n.near_duplicate_of_id, n.duplicate_jaccard,
       CASE WHEN EXISTS (
           SELECT 1 FROM review_scanjob AS s
           WHERE s.kind = 'duplicates' AND s.status = 'done'
             AND s.created_at > COALESCE((SELECT max(v.replaced_at) FROM review_noteversion AS v
                                          WHERE v.note_id = n.id), n.created_at))
       THEN n.version END,
       n.memorisation_real_note_id, n.memorisation_ngram, n.memorisation_score, n.memorised,
       n.memorisation_checked_version, n.flag_override
FROM generation_note AS n
WHERE n.origin = 'synthetic';
"""
CURATION_COPY_BACK = """
UPDATE generation_note AS n
SET review_state = c.state, review_reason = c.reason, near_duplicate_of_id = c.near_duplicate_of_id,
    duplicate_jaccard = c.duplicate_jaccard, memorisation_real_note_id = c.memorisation_real_note_id,
    memorisation_ngram = c.memorisation_ngram, memorisation_score = c.memorisation_score, memorised = c.memorised,
    memorisation_checked_version = c.memorisation_checked_version, flag_override = c.flag_override
FROM curation_notecuration AS c
WHERE c.note_id = n.id;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('curation', '0001_initial'),
        ('generation', '0007_noteversion'),
    ]

    operations = [
        migrations.CreateModel(
            name='NoteCuration',
            fields=[
                ('note', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='curation', serialize=False, to='generation.note')),
                ('state', models.CharField(choices=[('generated', 'Generated'), ('pending_review', 'Pending review'), ('approved', 'Approved'), ('rejected', 'Rejected'), ('needs_edit', 'Needs edit')], db_index=True, default='generated', max_length=16)),
                ('reason', models.TextField(blank=True, default='')),
                ('duplicate_jaccard', models.FloatField(blank=True, null=True)),
                ('duplicates_checked_version', models.PositiveIntegerField(blank=True, null=True)),
                ('memorisation_ngram', models.PositiveIntegerField(blank=True, null=True)),
                ('memorisation_score', models.FloatField(blank=True, null=True)),
                ('memorised', models.BooleanField(default=False)),
                ('memorisation_checked_version', models.PositiveIntegerField(blank=True, null=True)),
                ('flag_override', models.BooleanField(default=False)),
                ('memorisation_real_note', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='generation.note')),
                ('near_duplicate_of', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='generation.note')),
            ],
        ),
        migrations.RunSQL(CURATION_COPY, CURATION_COPY_BACK),
    ]
