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
    the button at once start one scan). A chunked job (core.chunks): its notes, frozen in ScanShard rows when it
    starts, are read in shards on the default queue (scans.py).
    """

    class Kind(models.TextChoices):
        DUPLICATES = "duplicates", _("Near duplicates among synthetic notes")
        MEMORISATION = "memorisation", _("Memorisation of real notes")

    kind = models.CharField(max_length=16, choices=Kind.choices)
    flagged = models.PositiveIntegerField(default=0)
    # Memorisation: the newest real note when the scan froze its notes; one imported since stops the scan.
    real_notes_newest = models.PositiveBigIntegerField(null=True, blank=True)
    # Near duplicates: every shard has read its notes and the pairs across all of them are found; the shards now
    # write the flags (the scan's second round).
    pairs_found = models.BooleanField(default=False)

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

    # A chunked job (core.chunks): shards of its notes on the default queue.
    def chunk_queue(self) -> str:
        return "default"

    def chunk_requirements(self) -> None:
        return None  # no model: any worker of the queue

    def chunk_execute(self, chunk) -> bool:
        from .scans import scan_shard_execute

        return scan_shard_execute(self, chunk)

    def chunks_finish(self) -> None:
        from .scans import scan_shards_finish

        scan_shards_finish(self)


class ScanShard(models.Model):
    """One shard of a scan (scans.py): the notes at ranks [first, end) of the order frozen when the scan starts, run by
    one chunk (core.chunks), and what the scan found for them; each part is written once, under the row's lock, so a
    shard run twice, or by two workers, skips what is done.

    notes: [note id, version] at each rank, as frozen. written: how many of them (from the first) have their flags on
    their curation (memorisation: checked and written; near duplicates: the second round); flagged: how many flags it
    wrote. Near duplicates' first round, its signatures (signed once stored): bands, a row of LSH band digests a note;
    shingles, every note's word-shingle hashes end to end; shingle_ends, where each note's end (none for a note
    without words or edited since the scan froze it), uint64 each; then found, {rank: [original note id, Jaccard]}
    of its near duplicates, from pairing. The signatures go when the scan ends; the rows, when the next scan of the
    kind starts."""

    scan = models.ForeignKey(ScanJob, on_delete=models.CASCADE, related_name="shards")
    first = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    notes = models.JSONField(default=list)
    written = models.PositiveIntegerField(default=0)
    flagged = models.PositiveIntegerField(default=0)
    signed = models.BooleanField(default=False)
    bands = models.BinaryField(null=True, blank=True)
    shingles = models.BinaryField(null=True, blank=True)
    shingle_ends = models.BinaryField(null=True, blank=True)
    found = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["scan", "first"]
        constraints = [models.UniqueConstraint(fields=["scan", "first"], name="scan_shard_once_per_first")]

    def __str__(self) -> str:
        return f"scan {self.scan_id} shard [{self.first}, {self.end})"
