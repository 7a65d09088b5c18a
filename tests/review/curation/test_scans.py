"""The background scans: what they flag, that they write in short transactions with their progress visible, that
one scan of a kind runs at a time, and that a note edited (or real notes imported) under a scan gets no stale check."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from generation.memorisation import MemorisationIndex
from generation.models import Note
from generation.services import NoteRow, notes_import
from medsyn_site.core.models import AuditRecord
from review.curation import scans
from review.curation.models import NoteCuration, ScanJob
from review.curation.scans import do_start_scan, scan_run
from review.curation.selectors import HELD_BACK, curation_notes, notes_releasable, release_blockers
from review.curation.services import do_edit_note, do_transition_note
from review.releases.services import release_preview
from tests.generation.complaint_notes import BACK, COUGH, replace
from tests.review.conftest import synthetic_make

NOT_DUPLICATE_CHECKED, MEMORISED, NEAR_DUPLICATE = (list(HELD_BACK)[i] for i in (1, 2, 3))


def _scan(kind: str) -> ScanJob:
    scan = do_start_scan(actor=None, kind=kind, queue=False)
    scan_run(scan.pk)
    scan.refresh_from_db()
    return scan


def _curation(note: Note) -> NoteCuration:
    return NoteCuration.objects.get(note=note)


def _approve(curator, *notes: Note) -> None:
    for note in notes:
        do_transition_note(actor=curator, note=note, action="submit")
        do_transition_note(actor=curator, note=note, action="approve")


def test_memorisation_scan_flags_a_copied_real_note_and_checks_every_note(curation_pool):
    real = curation_pool["real"][1]
    copy = synthetic_make("Мужчина 58 лет. " + real.text + " Направлен к кардиологу.", "I20.8")
    scan = _scan("memorisation")
    assert (scan.status, scan.flagged, scan.progress_done, scan.progress_total, scan.percent) == ("done", 1, 7, 7, 100)
    flagged = _curation(copy)
    assert flagged.memorised and flagged.memorisation_real_note_id == real.pk and flagged.memorisation_ngram >= 14
    assert flagged.state == "generated"  # a scan writes flags, never the review state
    assert set(NoteCuration.objects.values_list("memorisation_checked_version", flat=True)) == {1}
    assert set(NoteCuration.objects.values_list("duplicates_checked_version", flat=True)) == {None}
    assert AuditRecord.objects.filter(action="start_scan", object_id=str(scan.pk)).count() == 1
    scan_run(scan.pk)  # a redelivered, finished scan does nothing
    assert ScanJob.objects.get(pk=scan.pk).finished_at == scan.finished_at


def test_duplicates_scan_flags_the_note_whose_text_is_newer(curation_pool, make_user):
    curator = make_user("curator")
    edited = synthetic_make(BACK, "J06.9")  # the lower id: its text becomes the newer one below
    original = synthetic_make(COUGH, "J06.9")
    do_transition_note(actor=curator, note=edited, action="submit")
    do_edit_note(actor=curator, note=edited, text=replace(COUGH, "три дня", "четыре дня"), reason="")
    scan = _scan("duplicates")
    assert scan.flagged == 1
    assert _curation(edited).near_duplicate_of_id == original.pk and _curation(edited).duplicate_jaccard >= 0.8
    assert _curation(original).near_duplicate_of_id is None
    assert _curation(edited).duplicates_checked_version == 2 and _curation(original).duplicates_checked_version == 1


def test_a_note_edited_into_a_near_duplicate_is_held_back_until_the_duplicates_scan_flags_it(curation_pool,
                                                                                             make_user):
    curator = make_user("curator")
    edited = synthetic_make(BACK, "J06.9")
    approved = synthetic_make(COUGH, "J06.9")
    _approve(curator, approved)
    _scan("memorisation")
    _scan("duplicates")
    assert release_blockers(approved) == [] and release_preview(filters={"code": "J06"}).synthetic == 1

    do_transition_note(actor=curator, note=edited, action="submit")
    edited = do_edit_note(actor=curator, note=edited, text=replace(COUGH, "три дня", "четыре дня"), reason="")
    do_transition_note(actor=curator, note=edited, action="approve")
    _scan("memorisation")  # checked for memorisation at its new text, not yet for near duplicates
    assert release_blockers(Note.objects.get(pk=edited.pk)) == [NOT_DUPLICATE_CHECKED]
    preview = release_preview(filters={"code": "J06"})
    assert (preview.synthetic, preview.held_back) == (1, {NOT_DUPLICATE_CHECKED: 1})

    _scan("duplicates")
    assert _curation(edited).near_duplicate_of_id == approved.pk
    assert release_blockers(Note.objects.get(pk=edited.pk)) == [NEAR_DUPLICATE]
    assert release_blockers(Note.objects.get(pk=approved.pk)) == []
    assert list(notes_releasable(curation_notes(filters={"code": "J06"})).values_list("pk", flat=True)) == [
        approved.pk]


def test_a_note_edited_after_the_memorisation_scan_read_it_keeps_no_stale_flag(curation_pool, make_user,
                                                                               monkeypatch):
    curator = make_user("curator")
    real = curation_pool["real"][1]
    copy = synthetic_make("Мужчина 58 лет. " + real.text + " Направлен к кардиологу.", "I20.8")
    do_transition_note(actor=curator, note=copy, action="submit")
    rewritten = "Мужчина 58 лет жалуется на боли в груди при быстрой ходьбе, направлен к кардиологу."
    check = MemorisationIndex.check

    def check_then_edit(index: MemorisationIndex, text: str):
        result = check(index, text)
        if text == copy.text:  # read and checked: a curator rewrites the note before the scan writes its batch
            do_edit_note(actor=curator, note=copy, text=rewritten, reason="Убрать копию")
        return result

    monkeypatch.setattr(MemorisationIndex, "check", check_then_edit)
    scan = _scan("memorisation")
    flags = _curation(copy)
    assert scan.flagged == 0 and not flags.memorised and flags.memorisation_real_note_id is None
    assert flags.memorisation_checked_version is None  # unchecked until the next scan reads version 2
    assert NoteCuration.objects.filter(memorisation_checked_version=1).count() == 6  # the other notes
    monkeypatch.undo()
    _scan("memorisation")
    assert _curation(copy).memorisation_checked_version == 2 and not _curation(copy).memorised


def test_a_note_edited_after_the_duplicates_scan_read_it_keeps_no_stale_flag(curation_pool, make_user,
                                                                             monkeypatch):
    curator = make_user("curator")
    original = synthetic_make(COUGH, "J06.9")
    copy = synthetic_make(replace(COUGH, "три дня", "четыре дня"), "J06.9")
    do_transition_note(actor=curator, note=copy, action="submit")
    pair = scans.duplicates_from_signatures

    def read_then_edit(*args, **options):  # every note read and paired: the note is edited before its flag is written
        found = pair(*args, **options)
        do_edit_note(actor=curator, note=copy, text=BACK, reason="Другой текст")
        return found

    monkeypatch.setattr(scans, "duplicates_from_signatures", read_then_edit)
    scan = _scan("duplicates")
    assert scan.flagged == 0
    assert _curation(copy).near_duplicate_of_id is None and _curation(copy).duplicates_checked_version is None
    assert _curation(original).duplicates_checked_version == 1


def test_real_notes_imported_during_a_memorisation_scan_stop_it(curation_pool, monkeypatch):
    monkeypatch.setattr(scans, "WRITE_BATCH", 2)
    check = MemorisationIndex.check
    calls = []

    def check_while_importing(index: MemorisationIndex, text: str):
        calls.append(text)
        if len(calls) == 3:  # the first batch is written; real notes arrive before the second is
            notes_import(rows=[NoteRow(line=1, text=BACK, icd_code="M54.5", metadata={})], source="new.jsonl",
                         origin="real", source_dataset="RuMedTop3")
        return check(index, text)

    monkeypatch.setattr(MemorisationIndex, "check", check_while_importing)
    scan = _scan("memorisation")
    assert scan.status == "failed" and "run it again" in scan.error
    assert not NoteCuration.objects.filter(memorisation_checked_version__isnull=False).exists()


@pytest.mark.django_db(transaction=True)
def test_a_memorisation_scan_commits_each_batch_with_its_progress(curation_pool, make_user, monkeypatch):
    monkeypatch.setattr(scans, "WRITE_BATCH", 2)
    curator = make_user("curator")
    first = curation_pool["synthetic"][0]
    scan = do_start_scan(actor=curator, kind="memorisation", queue=False)
    seen = []

    def from_another_connection() -> tuple:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '10s'")  # a blocked action fails the test instead of hanging
            progress = ScanJob.objects.values_list("status", "progress_done", "progress_total").get(pk=scan.pk)
            checked = _curation(first).memorisation_checked_version
            do_transition_note(actor=curator, note=first, action="submit")
            return progress, checked
        finally:
            connection.close()

    def progress(done: int, total: int) -> None:
        if done == 4:  # told once the second batch has committed its flags with its progress
            with ThreadPoolExecutor(1) as other:
                seen.append(other.submit(from_another_connection).result())

    scan_run(scan.pk, progress=progress)
    assert seen == [(("running", 4, 6), 1)]
    scan.refresh_from_db()
    assert (scan.status, scan.progress_done) == ("done", 6)
    assert (_curation(first).state, _curation(first).memorisation_checked_version) == ("pending_review", 1)


def _waits_for_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return bool(row) and row[0] == "Lock"


@pytest.mark.django_db(transaction=True)
def test_two_curators_starting_a_scan_at_once_start_one(make_user):
    curators = make_user("curator"), make_user("curator")
    first_created, first_may_commit, second_pid = threading.Event(), threading.Event(), []

    def first() -> ScanJob:
        try:
            with transaction.atomic():
                scan = do_start_scan(actor=curators[0], kind="duplicates", queue=False)
                first_created.set()
                first_may_commit.wait()
            return scan
        finally:
            connection.close()

    def second() -> ScanJob:
        try:
            connection.ensure_connection()
            second_pid.append(connection.connection.info.backend_pid)
            return do_start_scan(actor=curators[1], kind="duplicates", queue=False)
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        started_first = pool.submit(first)
        assert first_created.wait(30)
        started_second = pool.submit(second)
        deadline = time.monotonic() + 30
        # the second start either waits on the first one's uncommitted scan, or (without the constraint) is done
        while not started_second.done() and not (second_pid and _waits_for_a_lock(second_pid[0])):
            assert time.monotonic() < deadline, "the second start neither finished nor waited"
            time.sleep(0.01)
        first_may_commit.set()
        scans_started = started_first.result(), started_second.result()
    assert scans_started[0].pk == scans_started[1].pk and ScanJob.objects.count() == 1
    assert AuditRecord.objects.filter(action="start_scan").count() == 1


def test_a_scan_of_a_kind_at_a_time_and_unknown_kinds(db):
    running = do_start_scan(actor=None, kind="duplicates", queue=False)
    assert do_start_scan(actor=None, kind="duplicates", queue=False) == running
    assert do_start_scan(actor=None, kind="memorisation", queue=False) != running
    with pytest.raises(ValidationError, match="Unknown scan 'everything'"):
        do_start_scan(actor=None, kind="everything")
    scan_run(running.pk)
    assert do_start_scan(actor=None, kind="duplicates", queue=False) != running  # the last one finished


def test_a_stalled_scan_is_sent_again_instead_of_blocking_its_kind(db, monkeypatch, django_capture_on_commit_callbacks):
    """A scan whose worker or message was lost stays queued; starting a scan of its kind sends it again."""
    from datetime import timedelta

    from django.utils import timezone

    sent = []
    monkeypatch.setattr(ScanJob, "task_send", lambda scan: sent.append(scan.pk))  # the broker is checked for real
    with django_capture_on_commit_callbacks(execute=True):
        lost = do_start_scan(actor=None, kind="duplicates")
    with django_capture_on_commit_callbacks(execute=True):
        assert do_start_scan(actor=None, kind="duplicates") == lost
    assert sent == [lost.pk]  # alive: the button twice is the same scan, sent once
    ScanJob.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - ScanJob.STALLED_AFTER - timedelta(1))
    with django_capture_on_commit_callbacks(execute=True):
        assert do_start_scan(actor=None, kind="duplicates") == lost
    assert sent == [lost.pk, lost.pk]
    scan_run(lost.pk)
    assert ScanJob.objects.get(pk=lost.pk).status == "done"
