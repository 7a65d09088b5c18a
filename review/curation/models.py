"""Curation: the review state and release flags of each synthetic note, and the background scans that set the flags.

ScanJob keeps the table name it had when review was one app (db_table).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from medsyn_site.core.models import BackgroundJob, JobStatus


class ReviewState(models.TextChoices):
    GENERATED = "generated", _("Generated")
    PENDING_REVIEW = "pending_review", _("Pending review")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    NEEDS_EDIT = "needs_edit", _("Needs edit")


class NoteCuration(models.Model):
    """Where one synthetic note stands in curation: its review state and the flags the scans set on its text.

    A synthetic note without a row is generated, unflagged and unchecked: the row is created by the first curation
    action or scan that writes it. Both checked versions name the note text (Note.version) a scan read: a flag or a
    check is only good for that text, and an edit voids them (services.do_edit_note).
    """

    note = models.OneToOneField("generation.Note", primary_key=True, on_delete=models.CASCADE,
                                related_name="curation")
    state = models.CharField(max_length=16, choices=ReviewState.choices, default=ReviewState.GENERATED,
                             db_index=True)
    reason = models.TextField(blank=True, default="")  # why the last transition (reject, needs edit, reopen)
    near_duplicate_of = models.ForeignKey("generation.Note", null=True, blank=True, on_delete=models.SET_NULL,
                                          related_name="+")
    duplicate_jaccard = models.FloatField(null=True, blank=True)
    duplicates_checked_version = models.PositiveIntegerField(null=True, blank=True)
    memorisation_real_note = models.ForeignKey("generation.Note", null=True, blank=True, on_delete=models.SET_NULL,
                                               related_name="+")
    memorisation_ngram = models.PositiveIntegerField(null=True, blank=True)
    memorisation_score = models.FloatField(null=True, blank=True)
    memorised = models.BooleanField(default=False)
    memorisation_checked_version = models.PositiveIntegerField(null=True, blank=True)
    flag_override = models.BooleanField(default=False)  # an audited decision to release a flagged note

    def __str__(self) -> str:
        return f"note {self.note_id}: {self.state}"

    @property
    def flagged(self) -> bool:
        """A near duplicate of an earlier note or a memorised real note: held back from releases."""
        return self.near_duplicate_of_id is not None or self.memorised


ACTIVE_SCAN_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class ScanJob(BackgroundJob):
    """A background scan of the synthetic notes: near duplicates (MinHash LSH) or memorisation of real notes.

    Progress is in notes. At most one scan of a kind is queued or running (a constraint, so two curators pressing
    the button at once start one scan).
    """

    class Kind(models.TextChoices):
        DUPLICATES = "duplicates", _("Near duplicates among synthetic notes")
        MEMORISATION = "memorisation", _("Memorisation of real notes")

    kind = models.CharField(max_length=16, choices=Kind.choices)
    flagged = models.PositiveIntegerField(default=0)

    class Meta(BackgroundJob.Meta):
        db_table = "review_scanjob"
        constraints = [models.UniqueConstraint(fields=["kind"], condition=Q(status__in=ACTIVE_SCAN_STATUSES),
                                               name="scan_one_active_per_kind")]

    def __str__(self) -> str:
        return f"{self.kind} scan {self.pk} ({self.status})"

    def task_send(self) -> None:
        from medsyn_site.core.jobs import task_send

        from .tasks import run_scan

        task_send(run_scan, args=[self.pk], queue="default")
