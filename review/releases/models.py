"""Releases: named, versioned, immutable snapshots of approved notes, and the export of each.

Release and ReleaseNote keep the table names they had when review was one app (db_table); database triggers
(migrations review 0002, releases 0002) refuse any change of a sealed release and of its snapshot rows. The export,
which does change, is a background job of its own (ReleaseExport).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from medsyn_site.core.models import BackgroundJob


class Release(models.Model):
    """A named, versioned, immutable snapshot of approved notes (its ReleaseNote rows).

    Sealed once content_sha256 is set: a database trigger then refuses any update (but created_by going to NULL when
    its user is deleted). Its export is `release.export`.
    """

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

    class Meta:
        db_table = "review_release"
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="release_name_version_unique")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class ReleaseExport(BackgroundJob):
    """The export of a release to a folder of the releases storage (medsyn_site.core.storage: RELEASES_DIR, a shared
    folder or a bucket): Parquet, JSONL, CSV, dataset card, SHA256SUMS.

    Progress is in notes. A retry resets this row: one release, one export. Its files are served only once it is
    done: the folder is published whole before that.
    """

    release = models.OneToOneField(Release, on_delete=models.PROTECT, related_name="export")
    folder = models.CharField(max_length=300, blank=True, default="")  # in the releases storage
    files = models.JSONField(default=list, blank=True)  # [{path, bytes, sha256}], SHA256SUMS last
    stats = models.JSONField(default=dict, blank=True)  # the statistics of the dataset card

    def __str__(self) -> str:
        return f"export of release {self.release_id} ({self.status})"

    def task_send(self) -> None:
        from medsyn_site.core.jobs import task_send

        from .tasks import run_release_export

        task_send(run_release_export, args=[self.release_id], queue="default")


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
