"""Graph versions (cited by generated notes) and import jobs started from the upload page."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


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


class ImportJob(models.Model):
    """An import started from the admin upload page and run by a Celery worker."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        UNCHANGED = "unchanged", _("Unchanged (already imported)")
        FAILED = "failed", _("Failed")

    class Kind(models.TextChoices):
        GENERIC = "generic", _("Nodes and edges (JSONL)")
        ICD10_RU = "icd10_ru", _("Russian ICD-10 names (CSV code,name_ru)")

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.GENERIC)
    upload = models.FileField(upload_to="graph_imports/")
    original_name = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    step = models.CharField(max_length=200, blank=True)
    errors = models.JSONField(default=list)
    version = models.ForeignKey(GraphVersion, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"import {self.pk} {self.original_name} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.UNCHANGED, self.Status.FAILED}
