"""Per-item claims (services.assignment_next): each item carries its study's k, and the database holds its claims
to it; one physician has at most one current item per study."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('assessment', '0002_study_blinding_report'),
    ]

    operations = [
        migrations.AddField(
            model_name='studyitem',
            name='slots',
            field=models.PositiveSmallIntegerField(default=1, validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(50)]),
            preserve_default=False,
        ),
        migrations.RunSQL(
            "UPDATE review_studyitem SET slots = study.overlap_k FROM review_study study "
            "WHERE study.id = review_studyitem.study_id",
            migrations.RunSQL.noop,
        ),
        migrations.AddConstraint(
            model_name='assignment',
            constraint=models.UniqueConstraint(condition=models.Q(('status', 'assigned')), fields=('study', 'physician'), name='assignment_one_current_per_physician'),
        ),
        migrations.AddConstraint(
            model_name='studyitem',
            constraint=models.CheckConstraint(condition=models.Q(('active_assignments__lte', models.F('slots'))), name='study_item_claims_within_k'),
        ),
    ]
