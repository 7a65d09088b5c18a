"""review was one app; its models now live in review.assessment, review.curation, review.releases, generation
(NoteVersion) and medsyn_site.core (AuditRecord). Their tables stay as they are (each model keeps its db_table):
this migration only removes the models from review's state, and each new owner's first migration adds them to its
own state without touching the database. Content types follow, so admin history keeps pointing at the right model.
"""

from django.db import migrations

MOVED = {"study": "assessment", "studyitem": "assessment", "assignment": "assessment", "rating": "assessment",
         "scanjob": "curation", "release": "releases", "releasenote": "releases", "noteversion": "generation",
         "auditrecord": "core"}


def content_types_follow(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    for model, app_label in MOVED.items():
        content_type.objects.filter(app_label="review", model=model).update(app_label=app_label)


def content_types_back(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    for model, app_label in MOVED.items():
        content_type.objects.filter(app_label=app_label, model=model).update(app_label="review")


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0002_curation_releases"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Rating"),
                migrations.DeleteModel(name="Assignment"),
                migrations.DeleteModel(name="StudyItem"),
                migrations.DeleteModel(name="Study"),
                migrations.DeleteModel(name="ReleaseNote"),
                migrations.DeleteModel(name="Release"),
                migrations.DeleteModel(name="ScanJob"),
                migrations.DeleteModel(name="NoteVersion"),
                migrations.DeleteModel(name="AuditRecord"),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_follow, content_types_back),
    ]
