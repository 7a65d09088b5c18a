"""The audit trail every do_* action writes, and the shape every background job shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class AuditEvent(models.TextChoices):
    """Every kind of audited action, by the do_* action that writes it (one home for action names)."""

    # assessment
    CREATE_STUDY = "create_study", _("Study created")
    UPDATE_STUDY_QUESTIONS = "update_study_questions", _("Study questions changed")
    BUILD_STUDY_POOL = "build_study_pool", _("Study pool built")
    OPEN_STUDY = "open_study", _("Study opened")
    CLOSE_STUDY = "close_study", _("Study closed")
    SUBMIT_RATING = "submit_rating", _("Rating submitted")
    REVISE_RATING = "revise_rating", _("Rating revised")
    SKIP_ITEM = "skip_item", _("Item skipped")
    # curation
    SUBMIT_NOTE = "submit_note", _("Note submitted for review")
    APPROVE_NOTE = "approve_note", _("Note approved")
    REJECT_NOTE = "reject_note", _("Note rejected")
    REQUEST_EDIT_NOTE = "request_edit_note", _("Edit requested")
    REOPEN_NOTE = "reopen_note", _("Note reopened")
    EDIT_NOTE = "edit_note", _("Note edited")
    OVERRIDE_NOTE_FLAG = "override_note_flag", _("Flag overridden")
    START_SCAN = "start_scan", _("Scan started")
    VOID_MEMORISATION_CHECKS = "void_memorisation_checks", _("Memorisation checks voided")
    # releases
    CREATE_RELEASE = "create_release", _("Release created")
    RETRY_RELEASE_EXPORT = "retry_release_export", _("Release export retried")
    # utility
    UPLOAD_EVALUATION_SET = "upload_evaluation_set", _("Evaluation set uploaded")
    START_UTILITY_EVALUATION = "start_utility_evaluation", _("Utility evaluation started")
    CANCEL_UTILITY_EVALUATION = "cancel_utility_evaluation", _("Utility evaluation cancelled")
    # generation and corpus
    CREATE_GENERATION_JOB = "create_generation_job", _("Generation job created")
    CANCEL_GENERATION_JOB = "cancel_generation_job", _("Generation job cancelled")
    RESUME_GENERATION_JOB = "resume_generation_job", _("Generation job resumed")
    START_SYMPTOM_EXTRACTION = "start_symptom_extraction", _("Symptom extraction started")
    CANCEL_SYMPTOM_EXTRACTION = "cancel_symptom_extraction", _("Symptom extraction cancelled")
    ACCEPT_SYMPTOM_PROPOSAL = "accept_symptom_proposal", _("Symptom proposal accepted")
    REJECT_SYMPTOM_PROPOSAL = "reject_symptom_proposal", _("Symptom proposal rejected")
    IMPORT_NOTES = "import_notes", _("Notes imported")
    # fine-tuning
    BUILD_INSTRUCTION_SET = "build_instruction_set", _("Instruction set build started")
    START_FINETUNE = "start_finetune", _("Fine-tuning started")
    CANCEL_FINETUNE = "cancel_finetune", _("Fine-tuning cancelled")
    # graph
    IMPORT_GRAPH = "import_graph", _("Graph imported")


class AuditRecord(models.Model):
    """Who changed what, when, from which state to which, and why; written with the change itself."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=64)  # an AuditEvent value (audit_record refuses any other)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    from_state = models.CharField(max_length=32, blank=True, default="")
    to_state = models.CharField(max_length=32, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    extra = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "review_auditrecord"  # kept from when the audit trail lived in the review app
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}#{self.object_id}"


class JobStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


FINISHED_STATUSES = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})


class JobPhase(models.TextChoices):
    """What an unfinished job is doing: waiting for a worker, loading its model, working through its units, or
    finishing (every unit counted: writing files, checksums, the outcome). JobActivity stores the running job's."""

    QUEUED = "queued", _("Queued")
    LOADING_MODEL = "loading_model", _("Loading the model")
    RUNNING = "running", _("Running")
    FINISHING = "finishing", _("Finishing")


class BackgroundJob(models.Model):
    """A unit of work a Celery worker (or a management command) runs, with its progress for the page to poll.

    progress_done / progress_total are in the job's own units (notes, rows, percent); ProgressRecorder writes them
    while the job runs, from any transaction.
    """

    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    step = models.CharField(max_length=200, blank=True, default="")
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # "<celery hostname> <boot id>" of the worker running it (core.jobs), so a dead worker's jobs are sent again.
    worker = models.CharField(max_length=200, blank=True, default="")

    # A queued or running job with no sign of life for this long has lost its worker or its message.
    STALLED_AFTER = timedelta(minutes=10)
    # What progress_done counts, for the progress line ("3 of 6 notes"): a key of core.progress.PROGRESS_UNITS.
    progress_unit = "items"

    class Meta:
        abstract = True
        ordering = ["-id"]

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def stalled(self) -> bool:
        if self.finished or self.updated_at is None:
            return False
        return timezone.now() - self.updated_at > self.STALLED_AFTER

    @property
    def percent(self) -> int:
        if self.progress_total:
            return min(100, round(100 * self.progress_done / self.progress_total))
        return 100 if self.status == JobStatus.DONE else 0

    def task_send(self) -> None:
        """Publish this job's Celery task on its queue now (core.jobs.job_send_on_commit calls it after the commit;
        the sweep of dead workers calls it again). Raises core.errors.BrokerUnavailable."""
        raise NotImplementedError(f"{type(self).__name__} does not say which task runs it")

    def mark_running(self) -> bool:
        """Queued (or redelivered while running) -> running, recording the worker that runs it; False when the job
        already finished."""
        from .jobs import worker_identity

        now = timezone.now()
        return bool(type(self).objects.filter(pk=self.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
                    .update(status=JobStatus.RUNNING, started_at=Coalesce(F("started_at"), Value(now)),
                            updated_at=now, worker=worker_identity()))

    def mark_finished(self, status: str, *, error: str = "", **fields: object) -> bool:
        """Record the end of a running job (and any result fields) in one write. False, and nothing written, when
        the job is no longer running: another delivery of the same task finished it first, and its result stands."""
        now = timezone.now()
        written = type(self).objects.filter(pk=self.pk, status=JobStatus.RUNNING).update(
            status=status, error=error, finished_at=now, updated_at=now, **fields)
        self.refresh_from_db()
        return bool(written)


class UploadJob(BackgroundJob):
    """A background job that imports an uploaded file (its `upload` FileField, declared by the subclass with its
    own folder). The file is kept as the provenance of what it imported; a failed import deletes it (uploads can be
    large and nobody needs a refused one) and the row keeps the original name and problems. A file an import command
    named on the server (a `file_path` field, where the model has one) is the server's and is never deleted."""

    class Meta(BackgroundJob.Meta):  # BackgroundJob's ordering too
        abstract = True

    @contextmanager
    def upload_local(self) -> Iterator[Path]:
        """The uploaded file as a local path for the import to read, on whichever host runs it (core.storage.file_local:
        the file itself in a folder, or a temporary copy from the bucket)."""
        from .storage import file_local

        with file_local(self.upload.storage, self.upload.name) as path:
            yield path

    def upload_delete(self) -> None:
        if self.upload:
            self.upload.delete(save=False)
        type(self).objects.filter(pk=self.pk).update(upload="")
        self.upload = ""

    @property
    def upload_deleted(self) -> bool:
        return self.finished and not self.upload and not getattr(self, "file_path", "")


class JobActivity(models.Model):
    """What a running job is doing right now, beside its row: one per job of any job model (job_model is the model's
    label, "generation.generationjob"). phase: a JobPhase value ("" while it simply runs); done: its progress in its
    own units, with the fraction of those under way (a batch of notes part-way through its tokens); samples: recent
    [unix time, done] pairs, newest last, from which core.progress computes the rate and the ETA.

    Written only by core.progress.ProgressRecorder (outside the caller's transaction), read by job_progress. It lives
    apart from BackgroundJob so that no job model needs a migration for it; a job that runs again (resumed, sent
    again) starts its samples afresh at its recorder's first write."""

    job_model = models.CharField(max_length=100)
    job_id = models.PositiveBigIntegerField()
    phase = models.CharField(max_length=16, choices=JobPhase.choices, blank=True, default="")
    done = models.FloatField(null=True, blank=True)
    samples = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job_model", "job_id"], name="job_activity_once_per_job")]

    def __str__(self) -> str:
        return f"{self.job_model}#{self.job_id} {self.phase or 'running'}"


class ChunkStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")


class JobChunk(models.Model):
    """One share of a chunked job (core.chunks): the job's units with indexes in [first, end), run by one Celery task
    on the job's queue, so the workers of that queue, on any host, share the job. One row per (job, chunk index);
    worker is "<celery hostname> <boot id>" of the worker running it (core.jobs), so the sweep finds the chunks of a
    worker that died. sent_at: when its task was last published (the sweep sends a chunk whose message was lost)."""

    job_model = models.CharField(max_length=100)  # the job model's label, "generation.generationjob"
    job_id = models.PositiveBigIntegerField()
    index = models.PositiveIntegerField()
    first = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ChunkStatus.choices, default=ChunkStatus.QUEUED)
    worker = models.CharField(max_length=200, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)  # how many times a worker took it
    sent_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job_model", "job_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job_model", "job_id", "index"], name="job_chunk_once_per_index"),
            models.CheckConstraint(condition=models.Q(first__lt=models.F("end")), name="job_chunk_not_empty"),
        ]
        indexes = [models.Index(fields=["status", "job_model"], name="job_chunk_status")]

    def __str__(self) -> str:
        return f"{self.job_model}#{self.job_id} chunk {self.index} [{self.first}, {self.end}) {self.status}"
