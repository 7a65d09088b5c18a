"""Releases: named, versioned, immutable snapshots of approved notes and their export.

Tables keep the names they had when review was one app (db_table); database triggers (migration
review 0002) refuse any change of a sealed release but its export fields.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Release(models.Model):
    """A named, versioned, immutable snapshot of approved notes (its ReleaseNote rows) and its export.

    Only the export_* fields ever change after creation; a database trigger refuses any other update.
    """

    class ExportStatus(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    EXPORT_FIELDS = ("export_status", "export_progress", "export_error", "export_files", "export_stats",
                     "exported_at", "export_folder")

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True, default="")
    licence = models.CharField(max_length=50, default="mit")
    include_real = models.BooleanField(default=False)
    real_data_licence = models.CharField(max_length=100, blank=True, default="")
    filters = models.JSONField(default=dict, blank=True)
    note_count = models.PositiveIntegerField(default=0)
    content_sha256 = models.CharField(max_length=64)  # over (note id, version, text) of every note, in idx order
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    export_status = models.CharField(max_length=8, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    export_progress = models.PositiveSmallIntegerField(default=0)
    export_error = models.TextField(blank=True, default="")
    export_folder = models.CharField(max_length=300, blank=True, default="")  # under RELEASES_DIR
    export_files = models.JSONField(default=list, blank=True)  # [{path, bytes, sha256}]
    export_stats = models.JSONField(default=dict, blank=True)
    exported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "review_release"
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="release_name_version_unique")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def export_finished(self) -> bool:
        return self.export_status in (self.ExportStatus.DONE, self.ExportStatus.FAILED)


class ReleaseNote(models.Model):
    """One note as frozen into a release: text and exported fields copied, never updated (database trigger)."""

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="notes")
    idx = models.PositiveIntegerField()
    note = models.ForeignKey("generation.Note", on_delete=models.PROTECT, related_name="release_entries")
    note_version = models.PositiveIntegerField()
    origin = models.CharField(max_length=16)
    icd_code = models.CharField(max_length=16)
    text = models.TextField()
    fields = models.JSONField()  # every exported column but idx, ICD-10 and response (export.ALL_COLUMNS)

    class Meta:
        db_table = "review_releasenote"
        ordering = ["release", "idx"]
        constraints = [
            models.UniqueConstraint(fields=["release", "idx"], name="release_note_idx_unique"),
            models.UniqueConstraint(fields=["release", "note"], name="release_note_once"),
        ]

    def __str__(self) -> str:
        return f"{self.release_id}#{self.idx}"
