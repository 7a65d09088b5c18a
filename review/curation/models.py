"""Curation: background scans of the synthetic notes.

Tables keep the names they had when review was one app (db_table).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ScanJob(models.Model):
    """A background scan of the synthetic notes: near duplicates (MinHash LSH) or memorisation of real notes."""

    class Kind(models.TextChoices):
        DUPLICATES = "duplicates", _("Near duplicates among synthetic notes")
        MEMORISATION = "memorisation", _("Memorisation of real notes")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    flagged = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "review_scanjob"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} scan {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def percent(self) -> int:
        return round(100 * self.processed / self.total) if self.total else (100 if self.finished else 0)
