"""Blind assessment: studies, their pooled items, physicians' assignments and ratings, and the audit trail."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


def item_rank() -> int:
    """A random position in the study's shared random order (see services.assignment_next)."""
    return secrets.randbits(62)


def item_token() -> str:
    """A random public id for a study item: no link to the note id, origin or order."""
    return secrets.token_urlsafe(12)


class Study(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", _("Draft")
        OPEN = "open", _("Open")
        CLOSED = "closed", _("Closed")

    name = models.CharField(max_length=200, unique=True)
    instructions = models.TextField(blank=True, default="")
    questions = models.JSONField(help_text=_("Editable while the study is a draft; frozen once it opens."))
    overlap_k = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1), MaxValueValidator(50)])
    state = models.CharField(max_length=8, choices=State.choices, default=State.DRAFT)
    pool_report = models.JSONField(default=dict, blank=True)
    physicians = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="assessment_studies")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = _("studies")

    def __str__(self) -> str:
        return self.name


class StudyItem(models.Model):
    """One note in a study's pool, as physicians see it (normalised text and diagnosis only)."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="items")
    note = models.ForeignKey("generation.Note", on_delete=models.PROTECT, related_name="study_items")
    token = models.CharField(max_length=32, unique=True, default=item_token)
    display_text = models.TextField()
    diagnosis_code = models.CharField(max_length=16)
    diagnosis_name = models.CharField(max_length=300, blank=True, default="")
    is_synthetic = models.BooleanField()  # for results only; never rendered to raters
    length_band = models.CharField(max_length=16)
    active_assignments = models.PositiveSmallIntegerField(default=0)
    rank = models.BigIntegerField(default=item_rank)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["study", "note"], name="study_item_note_once")]
        indexes = [models.Index(fields=["study", "rank"])]

    def __str__(self) -> str:
        return f"{self.study_id}:{self.token}"


class Assignment(models.Model):
    class Status(models.TextChoices):
        ASSIGNED = "assigned", _("Assigned")
        DONE = "done", _("Done")
        SKIPPED = "skipped", _("Skipped")

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(StudyItem, on_delete=models.CASCADE, related_name="assignments")
    physician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="assignments")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ASSIGNED)
    skip_reason = models.CharField(max_length=500, blank=True, default="")
    assigned_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    seconds_on_item = models.FloatField(null=True, blank=True)  # measured on the server

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "physician"], name="assignment_once_per_physician")]
        indexes = [models.Index(fields=["study", "physician", "status"])]

    def __str__(self) -> str:
        return f"{self.physician_id}→{self.item_id} ({self.status})"


class Rating(models.Model):
    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="rating")
    judged_synthetic = models.BooleanField()
    confidence = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])
    likert = models.JSONField(default=dict)  # question key -> 1..5
    comment = models.TextField(blank=True, default="")
    revisions = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"rating of {self.assignment_id}"


class AuditRecord(models.Model):
    """Who changed what, when, from which state to which, and why; written with the change itself."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    from_state = models.CharField(max_length=32, blank=True, default="")
    to_state = models.CharField(max_length=32, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    extra = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}#{self.object_id}"


class NoteVersion(models.Model):
    """An earlier text of an edited note (the note itself holds the current one): originals are never lost."""

    note = models.ForeignKey("generation.Note", on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    text = models.TextField()
    checks = models.JSONField(default=dict, blank=True)  # the automatic checks of that text
    edited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    edit_reason = models.TextField(blank=True, default="")  # why it was replaced
    replaced_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["note", "version"]
        constraints = [models.UniqueConstraint(fields=["note", "version"], name="note_version_once")]

    def __str__(self) -> str:
        return f"note {self.note_id} v{self.version}"


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
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} scan {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def percent(self) -> int:
        return round(100 * self.processed / self.total) if self.total else (100 if self.finished else 0)


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
        ordering = ["release", "idx"]
        constraints = [
            models.UniqueConstraint(fields=["release", "idx"], name="release_note_idx_unique"),
            models.UniqueConstraint(fields=["release", "note"], name="release_note_once"),
        ]

    def __str__(self) -> str:
        return f"{self.release_id}#{self.idx}"
