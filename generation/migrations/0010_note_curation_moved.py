"""The curation state of synthetic notes now lives in review.curation's NoteCuration (its migration 0002 copied
every value there first): the columns go from Note."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('generation', '0009_note_prompt_inputs'),
        ('curation', '0002_notecuration'),
    ]

    operations = [
        migrations.RemoveField(model_name='note', name='duplicate_jaccard'),
        migrations.RemoveField(model_name='note', name='flag_override'),
        migrations.RemoveField(model_name='note', name='memorisation_checked_version'),
        migrations.RemoveField(model_name='note', name='memorisation_ngram'),
        migrations.RemoveField(model_name='note', name='memorisation_real_note'),
        migrations.RemoveField(model_name='note', name='memorisation_score'),
        migrations.RemoveField(model_name='note', name='memorised'),
        migrations.RemoveField(model_name='note', name='near_duplicate_of'),
        migrations.RemoveField(model_name='note', name='review_reason'),
        migrations.RemoveField(model_name='note', name='review_state'),
    ]
