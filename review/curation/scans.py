"""Background scans of the synthetic notes (ScanJob): near duplicates among them (MinHash LSH) and memorisation of real
notes, each a chunked job (core.chunks) whose shards of notes are shared by every worker of the default queue.

The scan's own task (scan_run) freezes the notes it reads, once, into its shards (ScanShard rows of SHARD_NOTES ranks:
the order in which their texts were written for near duplicates, of their ids for memorisation), so that a shard sent
again reads the same notes; then it sends the shards, one chunk each.
- Memorisation: a shard checks each of its notes against every real note (an index its worker process keeps,
  generation.memorisation) and writes the flags. Real notes imported meanwhile stop the scan (ScanOutdated).
- Near duplicates: a note's flag depends on every other note (a group's original is its oldest text), so the scan
  goes twice over its shards. In the first round each shard stores its notes' signatures (LSH band digests and
  word-shingle hashes: the costly part, tokenising and MinHash). When the last shard is done, chunks_finish pairs
  all the signatures at once (notes sharing a band, verified on their shingles, as dedup.near_duplicates does: a pair
  across two shards is found like one within a shard) and sends the shards again, to write the flags.
A shard reads each note's text with its version and computes outside any transaction; it then writes the flags in
short transactions of WRITE_BATCH notes: lock the shard's row (a batch another run of the shard wrote meanwhile is
skipped, so a shard run twice, or by two workers, writes nothing twice) and the batch's notes, keep those whose version
is still the one read (a note edited meanwhile keeps the checks its edit voided, for the next scan), upsert their
curation rows with the flags and the version checked, and count the progress. So a curator's action waits for one
batch at most, and the progress is committed as the scan goes. Outside a worker (the scan_notes command, tests) the
shards run in this process, one after another.
"""
from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from generation.memorisation import MemorisationIndex, memorisation_index_cached
from generation.models import Note, NoteVersion
from medsyn_site.core.audit import audit_write
from medsyn_site.core.chunks import chunk_ranges, chunk_size_default, chunks_dispatch
from medsyn_site.core.errors import StateConflict
from medsyn_site.core.jobs import job_send_on_commit, worker_identity
from medsyn_site.core.models import AuditEvent, JobChunk, JobPhase, JobStatus
from medsyn_site.core.progress import Progress, ProgressRecorder

from .dedup import DuplicateThresholds, duplicates_from_signatures, lsh_band_count, note_signature
from .models import ACTIVE_SCAN_STATUSES, NoteCuration, ScanJob, ScanShard

WRITE_BATCH = 1000
READ_CHUNK = 2000
SHARD_NOTES = 1000  # notes per shard unless settings.JOB_CHUNK_SIZE says otherwise: about 7 s of signatures
DUPLICATES_FIELDS = ["near_duplicate_of", "duplicate_jaccard", "duplicates_checked_version"]
MEMORISATION_FIELDS = ["memorisation_real_note", "memorisation_ngram", "memorisation_score", "memorised",
                       "memorisation_checked_version"]

# The progress bar of the command that runs a scan in its own process (scan_run's `progress`), for its shards.
_command_progress: ContextVar[Progress | None] = ContextVar("scan_command_progress", default=None)


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
        if running.stalled and queue:  # its worker or its message was lost: send it again (its shards to do)
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


def _memorisation_checks_lock(*, shared: bool) -> None:
    """Memorisation checks are written (shared) or voided (exclusive) in turns, until the transaction ends: a
    scan's batch never writes a check after an import voided the checks against the real notes of before."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(hashtext(%s))", ["curation:memorisation-checks"])


def _latest_real_note() -> int | None:
    return Note.objects.filter(origin=Note.Origin.REAL).aggregate(latest=Max("id"))["latest"]


# --- Near-duplicate signatures as a shard stores them (dedup.note_signature) ----------------------------------------

def _signatures_pack(signatures: list[tuple[np.ndarray, np.ndarray] | None]) -> dict[str, bytes]:
    """A shard's signatures as ScanShard stores them (bands, shingles end to end, shingle_ends)."""
    bands = np.zeros((len(signatures), lsh_band_count(DuplicateThresholds())), dtype=np.uint64)
    shingles, ends, at = [], [], 0
    for position, signature in enumerate(signatures):
        if signature is not None:
            bands[position] = signature[0]
            shingles.append(signature[1])
            at += signature[1].size
        ends.append(at)
    return {"bands": bands.tobytes(), "shingle_ends": np.array(ends, dtype=np.uint64).tobytes(),
            "shingles": np.concatenate(shingles).tobytes() if shingles else b""}


# --- The scan's own task: freeze its notes, send its shards ---------------------------------------------------------

def scan_run(scan_id: int, progress: Progress | None = None) -> None:
    """The scan's own task: freeze its notes the first time (scan_notes_freeze), then send its shards with notes still
    to do (core.chunks). Outside a worker they run here, one after another, `progress` (a command's bar) told of each
    batch, and so does a near-duplicate scan's second round. A finished scan is left alone."""
    scan = ScanJob.objects.filter(pk=scan_id).first()
    if scan is None or not scan.mark_running():
        return
    with ProgressRecorder(scan, min_interval=0) as recorder:
        recorder.phase_set(JobPhase.RUNNING)  # this run's activity: a previous run's samples are dropped
    token = _command_progress.set(progress)
    try:
        scan_notes_freeze(scan)
        _shards_dispatch(scan)
        if not worker_identity():
            scan.refresh_from_db()
            if scan.status == JobStatus.RUNNING and scan.pairs_found:  # the flags to write: the second round, here
                _shards_dispatch(scan)
    except Exception as error:
        _scan_fail(scan.pk, f"{type(error).__name__}: {error}")
        raise
    finally:
        _command_progress.reset(token)


def scan_notes_freeze(scan: ScanJob) -> None:
    """The notes the scan reads, made once into its shards (ScanShard rows of chunk_size_default(SHARD_NOTES) ranks
    each: a scan sent again keeps them, its shards read the same notes). Near duplicates: ranked in the order their
    current text was written, so the original of a group (its lowest rank) is the oldest text and an edit that makes a
    note a near duplicate flags the edited note. Memorisation: by id, with the newest real note now (one imported
    since stops the scan). The shards of the kind's earlier scans go."""
    with transaction.atomic():
        scan = ScanJob.objects.select_for_update().get(pk=scan.pk)
        if ScanShard.objects.filter(scan=scan).exists():
            return
        ScanShard.objects.filter(scan__kind=scan.kind).delete()
        notes = Note.objects.filter(origin=Note.Origin.SYNTHETIC)
        if scan.kind == ScanJob.Kind.DUPLICATES:
            notes = notes.annotate(written=_text_written_at()).order_by("written", "id")
        else:
            notes = notes.order_by("id")
        order = [list(row) for row in notes.values_list("id", "version").iterator(chunk_size=READ_CHUNK)]
        ScanShard.objects.bulk_create(
            [ScanShard(scan=scan, first=first, end=end, notes=order[first:end])
             for first, end in chunk_ranges(len(order), chunk_size_default(SHARD_NOTES))], batch_size=100)
        fields = {"progress_total": len(order), "updated_at": timezone.now()}
        if scan.kind == ScanJob.Kind.MEMORISATION:
            fields["real_notes_newest"] = _latest_real_note()
        ScanJob.objects.filter(pk=scan.pk).update(**fields)


def _shards_dispatch(scan: ScanJob) -> None:
    """Send the scan's shards with notes still to do (core.chunks: one chunk a shard, its ranks the units), or (a
    near-duplicate scan's second round) with flags still to write."""
    shards = list(ScanShard.objects.filter(scan=scan).values_list("first", "end", "signed", "written"))
    if scan.pairs_found or scan.kind == ScanJob.Kind.MEMORISATION:
        pending = [first for first, end, _signed, written in shards if written < end - first]
    else:
        pending = [first for first, _end, signed, _written in shards if not signed]
    size = shards[0][1] - shards[0][0] if shards else 1  # the shards' size, whatever the settings say now
    chunks_dispatch(scan, end=shards[-1][1] if shards else 0, size=size, pending=pending)


def _scan_fail(scan_id: int, error: str) -> None:
    scan = ScanJob.objects.filter(pk=scan_id).first()
    if scan is not None:
        scan.mark_finished(JobStatus.FAILED, error=error)


# --- A shard -------------------------------------------------------------------------------------------------------

def scan_shard_execute(scan: ScanJob, chunk: JobChunk) -> bool:
    """Run one shard of a scan (core.chunks): memorisation, check its notes and write their flags; near duplicates,
    store its notes' signatures, or in the second round write the flags pairing found. True when nothing is left;
    False when the scan stopped meanwhile (it failed, or real notes were imported: then it fails here). Any other
    error fails the scan and is raised (the task records the traceback)."""
    scan = ScanJob.objects.get(pk=scan.pk)
    shard = ScanShard.objects.get(scan=scan, first=chunk.first)
    with ProgressRecorder(scan, shared=True) as recorder:
        try:
            if scan.kind == ScanJob.Kind.MEMORISATION:
                index = memorisation_index_cached()  # kept by the process: its next shards read the corpus no more
                return _flags_write(scan, shard, recorder, lambda start, notes: _memorisation_checks(index, notes))
            if scan.pairs_found:
                return _flags_write(scan, shard, recorder, lambda start, notes: _duplicate_flags(shard, start, notes))
            return _signatures_store(scan, shard, recorder)
        except ScanOutdated as error:
            _scan_fail(scan.pk, str(error))
            return False
        except Exception as error:
            _scan_fail(scan.pk, f"{type(error).__name__}: {error}")
            raise


def _scan_running(scan: ScanJob) -> bool:
    return ScanJob.objects.filter(pk=scan.pk, status=JobStatus.RUNNING).exists()


def _progress_tell(scan: ScanJob, recorder: ProgressRecorder) -> None:
    """The scan's progress, as its shards have committed it, to its activity (rate, ETA) and to the command's bar."""
    done, total = ScanJob.objects.values_list("progress_done", "progress_total").get(pk=scan.pk)
    recorder.in_flight(done, total)
    if (also := _command_progress.get()) is not None:
        also(done, total)


def _flags_write(scan: ScanJob, shard: ScanShard, recorder: ProgressRecorder,
                 flags: Callable[[int, list[list[int]]], tuple[list[NoteCuration], str, list[str]]]) -> bool:
    """Write the flags of the shard's notes not written yet, WRITE_BATCH notes at a time: flags(start, notes) computes
    those of the notes from the shard's start-th on (outside any transaction) as curation rows, with the name of their
    checked version and the fields to write; each batch is written under the shard's row lock only if no other run of
    the shard wrote it meanwhile. A memorisation batch also counts its notes in the scan's progress (a near-duplicate
    scan counted them as it read them)."""
    memorisation = scan.kind == ScanJob.Kind.MEMORISATION
    while True:
        if not _scan_running(scan):
            return False
        shard.refresh_from_db(fields=["written"])
        start = shard.written
        if start >= len(shard.notes):
            return True
        batch = shard.notes[start:start + WRITE_BATCH]
        rows, checked_version, fields = flags(start, batch)
        with transaction.atomic():
            if memorisation:
                _memorisation_checks_lock(shared=True)
                if _latest_real_note() != scan.real_notes_newest:
                    raise ScanOutdated("Real notes were imported while the memorisation scan ran; run it again.")
            locked = ScanShard.objects.select_for_update().only("written", "flagged").get(pk=shard.pk)
            if locked.written != start:
                continue  # another run of the shard wrote this batch meanwhile
            kept = _curations_write(rows, checked_version=checked_version, fields=fields)
            ScanShard.objects.filter(pk=shard.pk).update(written=start + len(batch),
                                                         flagged=F("flagged") + sum(row.flagged for row in kept))
            progress = {"progress_done": F("progress_done") + len(batch)} if memorisation else {}
            ScanJob.objects.filter(pk=scan.pk).update(**progress, updated_at=timezone.now())
        _progress_tell(scan, recorder)


def _memorisation_checks(index: MemorisationIndex, notes: list[list[int]]) -> tuple[list[NoteCuration], str, list[str]]:
    """Check the notes (at their current text) against every real note."""
    rows = []
    for note_id, text, version in Note.objects.filter(pk__in=[note_id for note_id, _version in notes]).values_list(
            "id", "text", "version"):
        result = index.check(text)
        rows.append(NoteCuration(note_id=note_id, memorisation_real_note_id=result.real_note_id,
                                 memorisation_ngram=result.longest_ngram, memorisation_score=round(result.near_copy, 4),
                                 memorised=result.flagged(index.thresholds), memorisation_checked_version=version))
    return rows, "memorisation_checked_version", MEMORISATION_FIELDS


def _duplicate_flags(shard: ScanShard, start: int, notes: list[list[int]]) -> tuple[list[NoteCuration], str,
                                                                                   list[str]]:
    """The near-duplicate flags pairing found for the shard's notes from the start-th on, each for the version whose
    text was read."""
    rows = []
    for rank, (note_id, version) in enumerate(notes, start=shard.first + start):
        original, jaccard = shard.found.get(str(rank), (None, None))
        rows.append(NoteCuration(note_id=note_id, duplicates_checked_version=version, duplicate_jaccard=jaccard,
                                 near_duplicate_of_id=original))
    return rows, "duplicates_checked_version", DUPLICATES_FIELDS


def _signatures_store(scan: ScanJob, shard: ScanShard, recorder: ProgressRecorder) -> bool:
    """Store the signatures of the shard's notes, once, and count them read. A note edited since the scan froze it gets
    none: its rank is not its text's (its check stays voided by the edit, for the next scan)."""
    if shard.signed:
        return True
    texts = {note_id: (text, version) for note_id, text, version in Note.objects.filter(
        pk__in=[note_id for note_id, _version in shard.notes]).values_list("id", "text", "version")}
    signatures = []
    for position, (note_id, version) in enumerate(shard.notes):
        if position % WRITE_BATCH == 0 and not _scan_running(scan):
            return False
        text, current = texts.get(note_id, ("", None))
        signatures.append(note_signature(text) if current == version else None)
    with transaction.atomic():
        if ScanShard.objects.select_for_update().filter(pk=shard.pk, signed=True).exists():
            return True  # another run of the shard stored them meanwhile
        ScanShard.objects.filter(pk=shard.pk).update(signed=True, **_signatures_pack(signatures))
        ScanJob.objects.filter(pk=scan.pk).update(progress_done=F("progress_done") + len(shard.notes),
                                                  updated_at=timezone.now())
    _progress_tell(scan, recorder)
    return True


# --- The end of a round --------------------------------------------------------------------------------------------

def scan_shards_finish(scan: ScanJob) -> None:
    """Every shard is done (core.chunks, under the scan's row lock). A near-duplicate scan whose flags are still to
    write pairs its notes (once: pairs_found) and sends its shards again to write them, from this worker once this
    commits (scan_run does it outside a worker; the scan names this worker until then, so that the sweep sends the
    scan again if it dies first). Else the scan is done: its notes read and flagged, its signatures dropped."""
    shards = ScanShard.objects.filter(scan=scan)
    if scan.kind == ScanJob.Kind.DUPLICATES:
        if not scan.pairs_found:
            _pairs_find(scan)
            ScanJob.objects.filter(pk=scan.pk).update(pairs_found=True, worker=worker_identity(),
                                                      updated_at=timezone.now())
            scan.pairs_found = True
        if any(written < end - first for first, end, written in shards.values_list("first", "end", "written")):
            if worker_identity():
                transaction.on_commit(lambda: _shards_dispatch(scan))
            return
        shards.update(bands=None, shingles=None, shingle_ends=None)
    scan.mark_finished(JobStatus.DONE, flagged=sum(shards.values_list("flagged", flat=True)),
                       progress_done=scan.progress_total)


def _pairs_find(scan: ScanJob) -> None:
    """Pair every signature the shards stored with every other (duplicates_from_signatures) and record, on each
    shard, its near duplicates with their original and their Jaccard."""
    shards = list(ScanShard.objects.filter(scan=scan, signed=True))
    ranks, bands, shingles, note_of = [], [], {}, {}
    for shard in shards:
        rows = np.frombuffer(bytes(shard.bands), dtype=np.uint64).reshape(len(shard.notes), -1)
        hashes = np.frombuffer(bytes(shard.shingles), dtype=np.uint64)
        ends = np.frombuffer(bytes(shard.shingle_ends), dtype=np.uint64).tolist()
        for position, (start, end) in enumerate(zip([0, *ends[:-1]], ends, strict=True)):
            rank = shard.first + position
            note_of[rank] = shard.notes[position][0]
            if end > start:  # a note with a signature
                ranks.append(rank)
                bands.append(rows[position])
                shingles[rank] = hashes[start:end]
    band_rows = np.stack(bands) if bands else np.zeros((0, lsh_band_count(DuplicateThresholds())), dtype=np.uint64)
    found = duplicates_from_signatures(ranks, band_rows, shingles.__getitem__)
    for shard in shards:
        shard.found = {str(rank): [note_of[original], jaccard] for rank, (original, jaccard) in found.items()
                       if shard.first <= rank < shard.end}
    ScanShard.objects.bulk_update(shards, ["found"])


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
