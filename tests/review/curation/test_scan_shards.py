"""Scans in shards (core.chunks): the notes a scan reads are frozen once, read in shards that share the default
queue's workers, and each shard's findings are written once. Near duplicates pair every note with every other after
the last shard has read its notes, so a pair across two shards, or a chain across three, is found as one within a
shard; a worker test runs one scan's shards on two worker hosts."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from generation import memorisation
from generation.models import Note
from medsyn_site.core.chunks import chunk_ranges, chunk_run
from medsyn_site.core.models import JobChunk, JobStatus
from review.curation import scans
from review.curation.dedup import duplicates_from_signatures, near_duplicates, note_signature
from review.curation.models import NoteCuration, ScanJob, ScanShard
from review.curation.scans import (
    do_start_scan,
    scan_notes_freeze,
    scan_run,
    scan_shard_execute,
)
from tests.generation import test_fleet
from tests.generation.complaint_notes import BACK, BLADDER, COUGH, KNEES, PRESSURE, STOMACH, replace
from tests.review.conftest import synthetic_make

LABEL = "curation.scanjob"
# A chain: STOMACH ~ ONE_CHANGE ~ TWO_CHANGES (Jaccard 0.88 each), while STOMACH and TWO_CHANGES are 0.77 apart.
ONE_CHANGE = replace(STOMACH, "изжогу", "тошноту")
TWO_CHANGES = replace(ONE_CHANGE, "похудела", "поправилась")
COUGH_AGAIN = replace(COUGH, "три дня", "четыре дня")


def chunks_of(scan: ScanJob):
    return JobChunk.objects.filter(job_model=LABEL, job_id=scan.pk).order_by("index")


def curation(note: Note) -> NoteCuration:
    return NoteCuration.objects.get(note=note)


def scan_inline(kind: str) -> ScanJob:
    scan = do_start_scan(actor=None, kind=kind, queue=False)
    scan_run(scan.pk)
    scan.refresh_from_db()
    return scan


def chain_notes() -> dict[str, Note]:
    """Eight notes in the order their texts were written (the scan's ranks): with shards of two, the chain's notes
    are at ranks 0, 2 and 4 (three shards), the cough and its copy at ranks 1 and 7 (the first and the last)."""
    texts = {"stomach": STOMACH, "cough": COUGH, "one_change": ONE_CHANGE, "back": BACK, "two_changes": TWO_CHANGES,
             "pressure": PRESSURE, "knees": KNEES, "cough_again": COUGH_AGAIN}
    return {name: synthetic_make(text, "K29.7") for name, text in texts.items()}


def test_pairing_signatures_finds_what_near_duplicates_finds():
    texts = [STOMACH, COUGH, ONE_CHANGE, "20, 30.", BACK, TWO_CHANGES, PRESSURE, COUGH_AGAIN, BLADDER, KNEES,
             replace(KNEES, "правом", "левом"), BACK]
    signatures = {rank: note_signature(text) for rank, text in enumerate(texts)}
    assert signatures[3] is None  # no words: skipped, as near_duplicates skips it
    signed = {rank: signature for rank, signature in signatures.items() if signature is not None}
    asked = []

    def shingles_of(rank: int) -> np.ndarray:
        asked.append(rank)
        return signed[rank][1]

    found = duplicates_from_signatures(list(signed), np.stack([bands for bands, _shingles in signed.values()]),
                                       shingles_of)
    assert found == near_duplicates(enumerate(texts))
    assert {rank: original for rank, (original, _jaccard) in found.items()} == {2: 0, 5: 0, 7: 1, 10: 9, 11: 4}
    assert 0.7 < found[5][1] < 0.8  # the chain's end is 0.77 from its original, joined through the middle note
    assert {3, 6, 8}.isdisjoint(asked)  # only the notes of a candidate pair are asked for their shingles


def test_a_near_duplicate_pair_across_shards_and_a_chain_across_three_are_found(db, settings):
    settings.JOB_CHUNK_SIZE = 2
    notes = chain_notes()
    scan = scan_inline("duplicates")
    assert (scan.status, scan.flagged, scan.progress_done, scan.progress_total) == ("done", 3, 8, 8)
    # four shards, each taken twice: to read its notes, then (every pair found) to write their flags
    assert [(c.first, c.end, c.status, c.attempts) for c in chunks_of(scan)] == [
        (0, 2, "done", 2), (2, 4, "done", 2), (4, 6, "done", 2), (6, 8, "done", 2)]
    originals = {name: curation(note).near_duplicate_of_id for name, note in notes.items()}
    assert originals == {"stomach": None, "cough": None, "one_change": notes["stomach"].pk, "back": None,
                         "two_changes": notes["stomach"].pk, "pressure": None, "knees": None,
                         "cough_again": notes["cough"].pk}
    assert 0.7 < curation(notes["two_changes"]).duplicate_jaccard < 0.8  # joined through the note between them
    assert set(NoteCuration.objects.values_list("duplicates_checked_version", flat=True)) == {1}
    shards = ScanShard.objects.filter(scan=scan)
    assert [(shard.first, shard.end, shard.written, shard.flagged) for shard in shards] == [
        (0, 2, 2, 0), (2, 4, 2, 1), (4, 6, 2, 1), (6, 8, 2, 1)]
    assert [shard.notes for shard in shards] == [[[note.pk, 1] for note in notes.values()][first:first + 2]
                                                 for first in (0, 2, 4, 6)]
    assert shards[2].found == {"4": [notes["stomach"].pk, curation(notes["two_changes"]).duplicate_jaccard]}
    assert not shards.filter(bands__isnull=False).exists()  # the signatures go once the scan is done


def test_a_shard_run_twice_writes_nothing_twice(db, settings):
    settings.JOB_CHUNK_SIZE = 2
    notes = chain_notes()
    scan = do_start_scan(actor=None, kind="duplicates", queue=False)
    scan.mark_running()
    scan_notes_freeze(scan)
    late = synthetic_make(replace(BACK, "неделю", "месяц"), "M54.5")  # after the scan froze its notes
    scan_notes_freeze(scan)
    shards = ScanShard.objects.filter(scan=scan)
    assert [(shard.first, shard.end) for shard in shards] == chunk_ranges(8, 2)  # made once
    JobChunk.objects.bulk_create([JobChunk(job_model=LABEL, job_id=scan.pk, index=index, first=first, end=stop)
                                  for index, (first, stop) in enumerate(chunk_ranges(8, 2))])
    first = chunks_of(scan)[0]
    assert scan_shard_execute(scan, first) is True
    stored = shards.values_list("bands", "shingles", "shingle_ends").get(first=0)
    with CaptureQueriesContext(connection) as queries:
        assert scan_shard_execute(scan, first) is True  # a second delivery: its notes are read
    assert not [query for query in queries if query["sql"].startswith(("INSERT", "UPDATE", "DELETE"))]
    assert ScanJob.objects.get(pk=scan.pk).progress_done == 2
    assert shards.values_list("bands", "shingles", "shingle_ends").get(first=0) == stored

    chunk_run(LABEL, scan.pk, 0)  # the chunk's own task finds nothing left to read
    scan_run(scan.pk)  # the scan sent again: the other shards, then the flags
    scan.refresh_from_db()
    assert (scan.status, scan.flagged, scan.progress_done) == ("done", 3, 8)
    assert curation(notes["cough_again"]).near_duplicate_of_id == notes["cough"].pk
    assert not NoteCuration.objects.filter(note=late).exists()  # not among the notes this scan froze

    ScanJob.objects.filter(pk=scan.pk).update(status=JobStatus.RUNNING)  # a late delivery of a shard
    with CaptureQueriesContext(connection) as queries:
        assert scan_shard_execute(scan, chunks_of(scan)[3]) is True
    assert not [query for query in queries if query["sql"].startswith(("INSERT", "UPDATE", "DELETE"))]
    ScanJob.objects.filter(pk=scan.pk).update(status=JobStatus.DONE)

    again = scan_inline("duplicates")  # the next scan reads the late note; the rows of the last scan go
    assert again.progress_total == 9 and set(ScanShard.objects.values_list("scan_id", flat=True)) == {again.pk}
    assert curation(late).near_duplicate_of_id == notes["back"].pk and curation(late).duplicates_checked_version == 1


def test_memorisation_in_shards_reads_the_real_notes_once_per_process(curation_pool, settings, monkeypatch):
    settings.JOB_CHUNK_SIZE = 3
    real = curation_pool["real"][1]
    copy = synthetic_make("Мужчина 58 лет. " + real.text + " Направлен к кардиологу.", "I20.8")
    memorisation._cached.clear()
    loads = []
    load = memorisation.memorisation_index_load
    monkeypatch.setattr(memorisation, "memorisation_index_load", lambda: loads.append(1) or load())
    scan = scan_inline("memorisation")
    assert (scan.status, scan.flagged, scan.progress_done, scan.progress_total) == ("done", 1, 7, 7)
    assert [(c.first, c.end, c.attempts) for c in chunks_of(scan)] == [(0, 3, 1), (3, 6, 1), (6, 7, 1)]
    assert len(loads) == 1  # three shards, one index
    assert curation(copy).memorised and curation(copy).memorisation_real_note_id == real.pk
    assert NoteCuration.objects.filter(memorisation_checked_version=1).count() == 7
    assert [shard.flagged for shard in ScanShard.objects.filter(scan=scan)] == [0, 0, 1]  # the copy: the last note


def test_a_scan_of_no_note_is_done_at_once(db):
    for kind in ScanJob.Kind.values:
        scan = scan_inline(kind)
        assert (scan.status, scan.flagged, scan.progress_done) == ("done", 0, 0) and not chunks_of(scan).exists()


def test_shards_follow_the_chunk_size_setting(curation_pool, settings):
    assert scans.SHARD_NOTES == 1000
    settings.JOB_CHUNK_SIZE = 0  # each kind's own default: one shard of the six notes
    assert chunks_of(scan_inline("memorisation")).count() == 1
    settings.JOB_CHUNK_SIZE = 4
    assert [(c.first, c.end) for c in chunks_of(scan_inline("duplicates"))] == [(0, 4), (4, 6)]


# --- On worker hosts --------------------------------------------------------------------------------------------------

fleet = test_fleet.fleet  # the fixture: worker hosts, each its own process, with a broker database of their own


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_two_worker_hosts_share_one_scan_and_write_each_finding_once(fleet):
    notes = chain_notes()
    # copies that differ by punctuation only (words are compared: near duplicates), and one note of its own
    notes |= {f"{name}_copy": synthetic_make(replace(notes[name].text, ",", ";"), "Z00.0")
              for name in ("knees", "pressure", "back")}
    notes["bladder"] = synthetic_make(BLADDER, "N30.0")
    for name in ("host-a", "host-b"):  # one shard at a time each: the other host takes the next
        fleet.start(name, ["default"], concurrency=1, MEDSYN_JOB_CHUNK_SIZE="2")
    for name in ("host-a", "host-b"):
        fleet.wait_ready(name, "default")
    scan = test_fleet.job_wait(do_start_scan(actor=None, kind="duplicates"))  # sent to the fleet broker on commit
    assert (scan.status, scan.error, scan.progress_done, scan.progress_total) == ("done", "", 12, 12)
    chunks = chunks_of(scan)
    # six shards, each run exactly twice (reading, then writing the flags), shared by both hosts
    assert chunks.count() == 6 and set(chunks.values_list("status", "attempts")) == {("done", 2)}
    assert {worker.split("@")[0] for worker in chunks.values_list("worker", flat=True)} == {"host-a", "host-b"}
    flagged = dict(NoteCuration.objects.filter(near_duplicate_of__isnull=False)
                   .values_list("note_id", "near_duplicate_of_id"))
    assert flagged == {notes["one_change"].pk: notes["stomach"].pk, notes["two_changes"].pk: notes["stomach"].pk,
                       notes["cough_again"].pk: notes["cough"].pk, notes["knees_copy"].pk: notes["knees"].pk,
                       notes["pressure_copy"].pk: notes["pressure"].pk, notes["back_copy"].pk: notes["back"].pk}
    shards = ScanShard.objects.filter(scan=scan)
    assert scan.flagged == sum(shard.flagged for shard in shards) == 6
    assert [shard.written for shard in shards] == [2] * 6
    assert NoteCuration.objects.filter(duplicates_checked_version=1).count() == 12

    scan = test_fleet.job_wait(do_start_scan(actor=None, kind="memorisation"))
    assert (scan.status, scan.progress_done, scan.flagged) == ("done", 12, 0)
    assert set(chunks_of(scan).values_list("status", "attempts")) == {("done", 1)}
    assert NoteCuration.objects.filter(memorisation_checked_version=1).count() == 12
