"""Background scans of the synthetic notes (Celery task run_scan): near duplicates among them (MinHash LSH) and
memorisation of real notes. Each scan rewrites its flags for every note it reads, so a rerun or a redelivered task
gives the same result and never double-counts."""

from __future__ import annotations

from collections.abc import Iterator

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from generation.models import Note
from medsyn_site.core.audit import audit_write
from medsyn_site.core.models import AuditEvent
from medsyn_site.core.progress import Progress

from .dedup import MemorisationIndex, near_duplicates
from .models import ScanJob

WRITE_BATCH = 1000


@transaction.atomic
def do_start_scan(*, actor: AbstractBaseUser | None, kind: str, queue: bool = True) -> ScanJob:
    """A new scan of this kind (or the one already waiting or running), queued to a worker unless queue=False
    (the scan_notes command runs it in its own process)."""
    if kind not in ScanJob.Kind.values:
        raise ValidationError(f"unknown scan {kind!r}; expected one of {', '.join(ScanJob.Kind.values)}")
    running = ScanJob.objects.select_for_update().filter(kind=kind, status__in=[ScanJob.Status.QUEUED,
                                                                                  ScanJob.Status.RUNNING]).first()
    if running is not None:
        return running  # one scan of a kind at a time: the button twice is the same scan
    scan = ScanJob.objects.create(kind=kind, created_by=actor)
    audit_write(actor=actor, action=AuditEvent.START_SCAN, obj=scan, to_state=scan.status, extra={"kind": kind})
    if queue:
        transaction.on_commit(lambda: _queue(scan))
    return scan


def _queue(scan: ScanJob) -> None:
    from .tasks import run_scan

    run_scan.delay(scan.pk)


def _synthetic_texts() -> Iterator[tuple[int, str, int]]:
    rows = Note.objects.filter(origin=Note.Origin.SYNTHETIC).order_by("id").values_list("id", "text", "version")
    yield from rows.iterator(chunk_size=2000)


class _Progress:
    """Writes processed/total to the scan row at most once per percent (and tells `also`, e.g. a command's bar)."""

    def __init__(self, scan: ScanJob, also: Progress | None = None) -> None:
        self.scan_id = scan.pk
        self.last = -1
        self.also = also

    def __call__(self, done: int, total: int) -> None:
        if self.also is not None:
            self.also(done, total)
        percent = int(100 * done / total) if total else 100
        if percent != self.last:
            self.last = percent
            ScanJob.objects.filter(pk=self.scan_id).update(processed=done, total=total)


def duplicates_scan(scan: ScanJob, progress: _Progress) -> int:
    """Flag every synthetic note that is a near duplicate of an earlier one; clear the flag of the others."""
    total = Note.objects.filter(origin=Note.Origin.SYNTHETIC).count()
    note_ids: list[int] = []

    def texts() -> Iterator[tuple[int, str]]:
        for note_id, text, _version in _synthetic_texts():
            note_ids.append(note_id)
            yield note_id, text

    found = near_duplicates(texts(), progress=progress, total=total)
    notes = []
    for note_id in note_ids:
        original, jaccard = found.get(note_id, (None, None))
        notes.append(Note(pk=note_id, near_duplicate_of_id=original, duplicate_jaccard=jaccard))
    with transaction.atomic():
        Note.objects.bulk_update(notes, ["near_duplicate_of", "duplicate_jaccard"], batch_size=WRITE_BATCH)
    return len(found)


def memorisation_scan(scan: ScanJob, progress: _Progress) -> int:
    """Check every synthetic note against all real notes; flag the ones that copy a real note."""
    index = MemorisationIndex(Note.objects.filter(origin=Note.Origin.REAL).values_list("id", "text")
                              .iterator(chunk_size=2000))
    thresholds = index.thresholds
    total = Note.objects.filter(origin=Note.Origin.SYNTHETIC).count()
    flagged = 0
    batch: list[Note] = []
    with transaction.atomic():
        for done, (note_id, text, version) in enumerate(_synthetic_texts(), start=1):
            result = index.check(text)
            memorised = result.flagged(thresholds)
            flagged += memorised
            batch.append(Note(pk=note_id, memorisation_real_note_id=result.real_note_id,
                              memorisation_ngram=result.longest_ngram, memorisation_score=round(result.near_copy, 4),
                              memorised=memorised, memorisation_checked_version=version))
            if len(batch) == WRITE_BATCH:
                _memorisation_write(batch)
                batch = []
            progress(done, total)
        _memorisation_write(batch)
    progress(total, total)
    return flagged


def _memorisation_write(notes: list[Note]) -> None:
    Note.objects.bulk_update(notes, ["memorisation_real_note", "memorisation_ngram", "memorisation_score",
                                     "memorised", "memorisation_checked_version"], batch_size=WRITE_BATCH)


SCANS = {ScanJob.Kind.DUPLICATES: duplicates_scan, ScanJob.Kind.MEMORISATION: memorisation_scan}


def scan_run(scan_id: int, progress: Progress | None = None) -> None:
    scan = ScanJob.objects.filter(pk=scan_id).first()
    if scan is None or scan.finished:
        return
    ScanJob.objects.filter(pk=scan.pk).update(status=ScanJob.Status.RUNNING, processed=0)
    try:
        flagged = SCANS[scan.kind](scan, _Progress(scan, also=progress))
    except Exception as error:
        ScanJob.objects.filter(pk=scan.pk).update(status=ScanJob.Status.FAILED, finished_at=timezone.now(),
                                                  error=f"{type(error).__name__}: {error}")
        raise
    ScanJob.objects.filter(pk=scan.pk).update(status=ScanJob.Status.DONE, flagged=flagged, finished_at=timezone.now())
