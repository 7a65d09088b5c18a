"""curation 0002-0003 and generation's note_curation_moved: the curation state of every synthetic note moves off
generation.Note into NoteCuration (and back), and ScanJob becomes a background job with one active scan a kind."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, transaction
from django.db.migrations.executor import MigrationExecutor

from tests.scratch_database import SCRATCH, state_apps

CURATION_BEFORE, CURATION_AFTER = ("curation", "0001_initial"), ("curation", "0003_scanjob_background_job")


def _at(hour: int) -> datetime:
    return datetime(2026, 11, 30, hour, tzinfo=UTC)




def _targets(database) -> tuple[list, list]:
    """(before, after): generation just before and at the migration that removes the moved columns."""
    graph = MigrationExecutor(database).loader.graph
    moved = next(key for key in graph.nodes if key[0] == "generation" and key[1].endswith("_note_curation_moved"))
    before = next(parent for parent in graph.node_map[moved].parents if parent.key[0] == "generation").key
    return [before, CURATION_BEFORE], [moved, CURATION_AFTER]


def _fill(apps) -> dict:
    notes = apps.get_model("generation", "Note").objects.using(SCRATCH)
    real = notes.create(origin="real", text="Кашель три дня.", icd_code="J06", icd_category="J06",
                        source_dataset="RuMedTop3", content_hash="r" * 64)
    edited = notes.create(origin="synthetic", text="Второй текст.", icd_code="J06", icd_category="J06",
                          source_dataset="gen", content_hash="e" * 64, version=2, review_state="approved",
                          memorised=True, memorisation_real_note=real, memorisation_ngram=14, memorisation_score=0.7,
                          memorisation_checked_version=2, flag_override=True)
    kept = notes.create(origin="synthetic", text="Боли в горле.", icd_code="J02", icd_category="J02",
                        source_dataset="gen", content_hash="k" * 64, review_state="needs_edit",
                        review_reason="too short", near_duplicate_of=edited, duplicate_jaccard=0.85)
    notes.filter(pk__in=[edited.pk, kept.pk]).update(created_at=_at(8))
    version = apps.get_model("generation", "NoteVersion").objects.using(SCRATCH).create(
        note=edited, version=1, text="Первый текст.")
    apps.get_model("generation", "NoteVersion").objects.using(SCRATCH).filter(pk=version.pk).update(
        replaced_at=_at(11))  # edited after the duplicates scan below: that scan read its first text
    scans = apps.get_model("curation", "ScanJob").objects.using(SCRATCH)
    done = scans.create(kind="duplicates", status="done", total=2, processed=2, flagged=1, finished_at=_at(10))
    older = scans.create(kind="memorisation", status="running", total=2, processed=1)
    newer = scans.create(kind="memorisation", status="queued")
    scans.filter(pk=done.pk).update(created_at=_at(9))
    return {"real": real.pk, "edited": edited.pk, "kept": kept.pk, "done": done.pk, "older": older.pk,
            "newer": newer.pk}


@pytest.mark.django_db
def test_curation_moves_to_its_rows_and_back(scratch_database):
    before, after = _targets(scratch_database)
    ids = _fill(state_apps(scratch_database, before))

    apps = state_apps(scratch_database, after)
    rows = {row.note_id: row for row in apps.get_model("curation", "NoteCuration").objects.using(SCRATCH).all()}
    assert set(rows) == {ids["edited"], ids["kept"]}  # every synthetic note, no real one
    edited, kept = rows[ids["edited"]], rows[ids["kept"]]
    assert (edited.state, edited.memorised, edited.memorisation_real_note_id, edited.memorisation_ngram) == (
        "approved", True, ids["real"], 14)
    assert (edited.memorisation_score, edited.memorisation_checked_version, edited.flag_override) == (0.7, 2, True)
    assert (kept.state, kept.reason, kept.near_duplicate_of_id, kept.duplicate_jaccard) == (
        "needs_edit", "too short", ids["edited"], 0.85)
    # the finished duplicates scan read the kept note's text, not the edited note's current one
    assert (kept.duplicates_checked_version, edited.duplicates_checked_version) == (1, None)
    scans = {scan.pk: scan for scan in apps.get_model("curation", "ScanJob").objects.using(SCRATCH).all()}
    done = scans[ids["done"]]
    assert (done.status, done.progress_done, done.progress_total, done.flagged) == ("done", 2, 2, 1)
    assert done.updated_at == done.finished_at == _at(10)
    assert (scans[ids["older"]].status, scans[ids["older"]].progress_done) == ("failed", 1)
    assert "Superseded" in scans[ids["older"]].error and scans[ids["newer"]].status == "queued"
    with pytest.raises(IntegrityError), transaction.atomic(using=SCRATCH):
        apps.get_model("curation", "ScanJob").objects.using(SCRATCH).create(kind="memorisation")

    apps = state_apps(scratch_database, before)
    notes = {note.pk: note for note in apps.get_model("generation", "Note").objects.using(SCRATCH).all()}
    assert (notes[ids["edited"]].review_state, notes[ids["edited"]].memorisation_checked_version) == ("approved", 2)
    assert notes[ids["edited"]].flag_override and notes[ids["edited"]].memorisation_real_note_id == ids["real"]
    assert (notes[ids["kept"]].review_reason, notes[ids["kept"]].near_duplicate_of_id) == ("too short",
                                                                                          ids["edited"])
    assert apps.get_model("curation", "ScanJob").objects.using(SCRATCH).get(pk=ids["done"]).processed == 2
