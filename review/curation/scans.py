"""Background scans of the synthetic notes (Celery task run_scan): near duplicates among them (MinHash LSH) and
memorisation of real notes.

A scan reads each note's text with its version and computes outside any transaction; it then writes its results in
short transactions of WRITE_BATCH notes: lock the batch's notes, keep those whose version is still the one read (a
note edited meanwhile keeps the checks its edit voided, for the next scan), and upsert their curation rows with the
flags and the version checked. So a curator's action waits for one batch at most, the progress is committed as the
scan goes, and a rerun or a redelivered task rewrites the same flags without double-counting.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max, OuterRef, Subquery
from django.db.models.functions import Coalesce

from generation.memorisation import memorisation_index_load
from generation.models import Note, NoteVersion
from medsyn_site.core.audit import audit_write
from medsyn_site.core.errors import StateConflict
from medsyn_site.core.jobs import job_send_on_commit
from medsyn_site.core.models import AuditEvent, JobStatus
from medsyn_site.core.progress import Progress, ProgressRecorder

from .dedup import near_duplicates
from .models import ACTIVE_SCAN_STATUSES, NoteCuration, ScanJob

WRITE_BATCH = 1000
READ_CHUNK = 2000
DUPLICATES_FIELDS = ["near_duplicate_of", "duplicate_jaccard", "duplicates_checked_version"]
MEMORISATION_FIELDS = ["memorisation_real_note", "memorisation_ngram", "memorisation_score", "memorised",
                       "memorisation_checked_version"]


class ScanOutdated(Exception):
    """What the scan compares against changed while it ran: the checks it would record are not the ones it made."""


@transaction.atomic
def do_start_scan(*, actor: AbstractBaseUser | None, kind: str, queue: bool = True) -> ScanJob:
    """A new scan of this kind (or the one already queued or running), queued to a worker unless queue=False
    (the scan_notes command runs it in its own process)."""
    if kind not in ScanJob.Kind.values:
        raise ValidationError(f"Unknown scan {kind!r}; expected one of {', '.join(ScanJob.Kind.values)}.")
    active = ScanJob.objects.filter(kind=kind, status__in=ACTIVE_SCAN_STATUSES)
    if (running := active.first()) is not None:
        if running.stalled and queue:  # its worker or its message was lost: send it again (a scan reruns cleanly)
            job_send_on_commit(running)
        return running  # one scan of a kind at a time: the button twice is the same scan
    try:
        with transaction.atomic():
            scan = ScanJob.objects.create(kind=kind, created_by=actor)
    except IntegrityError:  # scan_one_active_per_kind: another request started one since the read above
        if (running := active.first()) is None:
            raise StateConflict(f"A {kind} scan started and finished meanwhile; start another if needed.") from None
        return running
    audit_write(actor=actor, action=AuditEvent.START_SCAN, obj=scan, to_state=scan.status, extra={"kind": kind})
    if queue:
        job_send_on_commit(scan)
    return scan


def _curations_write(rows: list[NoteCuration], *, checked_version: str, fields: list[str]) -> list[NoteCuration]:
    """Upsert `fields` of the rows whose note still has the text the scan read (its version equals the row's
    `checked_version`); returns the rows written. Call it in a transaction: the notes stay locked until its end,
    as every writer of a note's curation locks the note first (no_key: a release referencing them need not wait)."""
    versions = dict(Note.objects.select_for_update(no_key=True).filter(pk__in=[row.note_id for row in rows])
                    .order_by("id").values_list("id", "version"))
    kept = [row for row in rows if versions.get(row.note_id) == getattr(row, checked_version)]
    NoteCuration.objects.bulk_create(kept, update_conflicts=True, unique_fields=["note"], update_fields=fields)
    return kept


def _text_written_at() -> Coalesce:
    """When a note's current text was written: its creation, or the edit that replaced its previous text."""
    last_edit = NoteVersion.objects.filter(note=OuterRef("pk")).order_by("-version").values("replaced_at")[:1]
    return Coalesce(Subquery(last_edit), F("created_at"))


def duplicates_scan(progress: Progress) -> tuple[int, int]:
    """Flag every synthetic note that is a near duplicate of a note whose text is older; clear the others' flags.
    Returns (notes scanned, notes flagged).

    Notes go to near_duplicates in the order their current text was written, each under its rank, so the original
    of a group (its lowest rank) is the oldest text and an edit that makes a note a near duplicate flags the edited
    note. One query reads them all: texts, versions and order from one snapshot.
    """
    synthetic = Note.objects.filter(origin=Note.Origin.SYNTHETIC)
    read: list[tuple[int, int]] = []  # (note id, version read), by rank

    def texts() -> Iterator[tuple[int, str]]:
        rows = (synthetic.annotate(written=_text_written_at()).order_by("written", "id")
                .values_list("id", "text", "version"))
        for rank, (note_id, text, version) in enumerate(rows.iterator(chunk_size=READ_CHUNK)):
            read.append((note_id, version))
            yield rank, text

    found = near_duplicates(texts(), progress=progress, total=synthetic.count())
    flagged = 0
    for start in range(0, len(read), WRITE_BATCH):
        rows = []
        for rank in range(start, min(start + WRITE_BATCH, len(read))):
            note_id, version = read[rank]
            original, jaccard = found.get(rank, (None, None))
            rows.append(NoteCuration(note_id=note_id, duplicates_checked_version=version, duplicate_jaccard=jaccard,
                                     near_duplicate_of_id=read[original][0] if original is not None else None))
        with transaction.atomic():
            flagged += sum(row.flagged for row in _curations_write(
                rows, checked_version="duplicates_checked_version", fields=DUPLICATES_FIELDS))
    return len(read), flagged


def _memorisation_checks_lock(*, shared: bool) -> None:
    """Memorisation checks are written (shared) or voided (exclusive) in turns, until the transaction ends: a
    scan's batch never writes a check after an import voided the checks against the real notes of before."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(hashtext(%s))", ["curation:memorisation-checks"])


def _latest_real_note() -> int | None:
    return Note.objects.filter(origin=Note.Origin.REAL).aggregate(latest=Max("id"))["latest"]


def memorisation_scan(progress: Progress) -> tuple[int, int]:
    """Check every synthetic note against all real notes; flag the ones that copy a real note. Returns (notes
    scanned, notes flagged).

    Raises ScanOutdated when real notes are imported while it runs (the index lacks them); the batches written
    before were voided by that import.
    """
    indexed_upto = _latest_real_note()  # before the index: a real note imported meanwhile stops the scan
    index = memorisation_index_load()
    ids = list(Note.objects.filter(origin=Note.Origin.SYNTHETIC).order_by("id").values_list("id", flat=True))
    flagged = 0
    for start in range(0, len(ids), WRITE_BATCH):
        rows = []
        for note_id, text, version in Note.objects.filter(pk__in=ids[start:start + WRITE_BATCH]).values_list(
                "id", "text", "version"):
            result = index.check(text)
            rows.append(NoteCuration(note_id=note_id, memorisation_real_note_id=result.real_note_id,
                                     memorisation_ngram=result.longest_ngram,
                                     memorisation_score=round(result.near_copy, 4),
                                     memorised=result.flagged(index.thresholds), memorisation_checked_version=version))
        with transaction.atomic():
            _memorisation_checks_lock(shared=True)
            if _latest_real_note() != indexed_upto:
                raise ScanOutdated("Real notes were imported while the memorisation scan ran; run it again.")
            flagged += sum(row.flagged for row in _curations_write(
                rows, checked_version="memorisation_checked_version", fields=MEMORISATION_FIELDS))
        progress(min(start + WRITE_BATCH, len(ids)), len(ids))
    return len(ids), flagged


SCANS = {ScanJob.Kind.DUPLICATES: duplicates_scan, ScanJob.Kind.MEMORISATION: memorisation_scan}


def scan_run(scan_id: int, progress: Progress | None = None) -> None:
    """Run a queued scan, its progress in notes (also passed to `progress`, a command's bar); a finished scan is
    left alone, a redelivered running one runs again from the start."""
    scan = ScanJob.objects.filter(pk=scan_id).first()
    if scan is None or not scan.mark_running():
        return
    try:
        with ProgressRecorder(scan, also=progress) as recorder:
            scanned, flagged = SCANS[scan.kind](recorder)
    except ScanOutdated as error:
        scan.mark_finished(JobStatus.FAILED, error=str(error))
        return
    except Exception as error:
        scan.mark_finished(JobStatus.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    scan.mark_finished(JobStatus.DONE, flagged=flagged, progress_done=scanned, progress_total=scanned)


@transaction.atomic
def do_void_memorisation_checks(*, actor: AbstractBaseUser | None, real_note: Note, count: int) -> int:
    """Mark every synthetic note unchecked for memorisation: real notes were imported (real_note the first of
    them, count how many) that the checks made so far did not compare against. Returns the checks voided."""
    _memorisation_checks_lock(shared=False)
    voided = NoteCuration.objects.filter(memorisation_checked_version__isnull=False).update(
        memorisation_checked_version=None)
    audit_write(actor=actor, action=AuditEvent.VOID_MEMORISATION_CHECKS, obj=real_note,
                extra={"real_notes_imported": count, "checks_voided": voided})
    return voided


def real_notes_imported_receiver(sender: type[Note], *, instance: Note, count: int,
                                 actor: AbstractBaseUser | None = None, **kwargs: object) -> None:
    """generation.signals.real_notes_imported (connected in CurationConfig.ready)."""
    do_void_memorisation_checks(actor=actor, real_note=instance, count=count)
