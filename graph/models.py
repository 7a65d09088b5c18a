"""Graph versions (cited by generated notes) and import jobs started from the upload page."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from medsyn_site.core.models import JobStatus, UploadJob


class GraphVersion(models.Model):
    """One published state of the graph; every import that changed it creates one.

    The same record is written into the graph as a :GraphVersion node (key = str(id)).
    """

    class Status(models.TextChoices):
        BUILDING = "building", _("Building")
        PUBLISHED = "published", _("Published")
        FAILED = "failed", _("Failed")

    created_at = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=64)
    source_files = models.JSONField(default=list)
    content_hash = models.CharField(max_length=64, db_index=True)
    counts = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BUILDING)
    duration_s = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"v{self.pk} {self.source} {self.created_at:%Y-%m-%d %H:%M}"


class ImportJob(UploadJob):
    """An import started from the admin upload page and run by a Celery worker.

    Progress is in nodes and edges written (none while the file is read and checked). A file already in the
    graph finishes DONE with changed=False; errors lists a bad file's problems by line. The uploaded file is kept
    as the provenance of the version it published; a failed or unchanged import deletes it (upload becomes "").
    """

    class Kind(models.TextChoices):
        GENERIC = "generic", _("Nodes and edges (JSONL)")
        ICD10_RU = "icd10_ru", _("Russian ICD-10 names (CSV code,name_ru)")

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.GENERIC)
    upload = models.FileField(upload_to="graph_imports/")
    original_name = models.CharField(max_length=255)
    errors = models.JSONField(default=list)  # [{line, message}]
    changed = models.BooleanField(default=False)  # the import published a new version
    version = models.ForeignKey(GraphVersion, null=True, blank=True, on_delete=models.SET_NULL)

    def __str__(self) -> str:
        return f"import {self.pk} {self.original_name} ({self.status})"

    def task_send(self) -> None:
        from medsyn_site.core.jobs import task_send

        from .tasks import graph_import_job_run

        task_send(graph_import_job_run, args=[self.pk], queue="default")

    @property
    def unchanged(self) -> bool:
        """Finished without a change: these files were already in the graph."""
        return self.status == JobStatus.DONE and not self.changed
