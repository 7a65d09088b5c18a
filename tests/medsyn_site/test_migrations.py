"""A database from before the review split (one `review` app, curation state on generation.Note, jobs with their own
status fields) migrates to the current schema with every row kept.

The old schema is built in a scratch database by migrating only up to the migrations that were the newest before
the split, filled through the historical models of that state, then migrated to the latest state; the rows are then
read through today's models.
"""

from __future__ import annotations

import pytest
from django.db.migrations.executor import MigrationExecutor

from tests.scratch_database import SCRATCH

# The newest migration of each project app before issue 10.
BEFORE_SPLIT = {"medsyn_site": "0001_initial", "graph": "0001_initial", "generation": "0006_note_curation",
                "review": "0002_curation_releases"}




def _old_targets(executor: MigrationExecutor) -> list[tuple[str, str]]:
    leaves = [node for node in executor.loader.graph.leaf_nodes() if node[0] not in BEFORE_SPLIT
              and node[0] not in {"core", "assessment", "curation", "releases", "training", "utility"}]
    return leaves + list(BEFORE_SPLIT.items())


def _fill_old_schema(apps) -> dict:
    """One of everything the split moves, through the historical models of the old schema."""
    user = apps.get_model("auth", "User").objects.using(SCRATCH).create(username="curator-before-split")
    Note = apps.get_model("generation", "Note")
    notes = Note.objects.using(SCRATCH)
    real = notes.create(origin="real", text="Жалобы на кашель и насморк три дня.", icd_code="J06",
                        icd_category="J06", source_dataset="RuMedTop3", content_hash="r" * 64)
    synthetic = notes.create(origin="synthetic", text="Пациент жалуется на кашель, насморк и слабость.",
                             icd_code="J06", icd_category="J06", source_dataset="MedSyn Studio", content_hash="s" * 64,
                             metadata={"prompt_variant": "symptoms"}, review_state="approved", version=2,
                             memorised=True, memorisation_real_note=real, memorisation_ngram=14,
                             memorisation_score=0.7, memorisation_checked_version=2, flag_override=True)
    pending = notes.create(origin="synthetic", text="Боли в горле при глотании.", icd_code="J02",
                           icd_category="J02", source_dataset="MedSyn Studio", content_hash="p" * 64,
                           review_state="needs_edit", review_reason="too short", near_duplicate_of=synthetic,
                           duplicate_jaccard=0.85)
    apps.get_model("review", "NoteVersion").objects.using(SCRATCH).create(
        note=synthetic, version=1, text="Первый текст.", edited_by=user, edit_reason="typo")
    apps.get_model("review", "AuditRecord").objects.using(SCRATCH).create(
        actor=user, action="approve_note", object_type="Note", object_id=str(synthetic.pk),
        from_state="pending_review", to_state="approved")
    study = apps.get_model("review", "Study").objects.using(SCRATCH).create(
        name="before split", questions={"likert": []}, created_by=user, state="closed")
    item = apps.get_model("review", "StudyItem").objects.using(SCRATCH).create(
        study=study, note=synthetic, token="tok-before-split", display_text="…", diagnosis_code="J06",
        is_synthetic=True, length_band="short", rank=5)
    assignment = apps.get_model("review", "Assignment").objects.using(SCRATCH).create(
        study=study, item=item, physician=user, status="done")
    apps.get_model("review", "Rating").objects.using(SCRATCH).create(
        assignment=assignment, judged_synthetic=True, confidence=4, likert={"realism": 3})
    apps.get_model("review", "ScanJob").objects.using(SCRATCH).create(
        kind="memorisation", status="done", total=40, processed=40, flagged=1)
    release = apps.get_model("review", "Release").objects.using(SCRATCH).create(
        name="before-split", version=1, content_sha256="", export_status="done", export_progress=100,
        export_folder="before-split-v1", export_files=[{"path": "README.md", "bytes": 1, "sha256": "0" * 64}])
    apps.get_model("review", "ReleaseNote").objects.using(SCRATCH).create(
        release=release, idx=0, note=synthetic, note_version=2, origin="synthetic", icd_code="J06",
        text=synthetic.text, fields={"prior": "symptoms"})
    apps.get_model("review", "Release").objects.using(SCRATCH).filter(pk=release.pk).update(note_count=1,
                                                                                         content_sha256="c" * 64)
    apps.get_model("generation", "NoteImportJob").objects.using(SCRATCH).create(
        kind="rumedtop3", original_name="train.jsonl", status="done", progress=100, created=5, skipped=1)
    apps.get_model("graph", "ImportJob").objects.using(SCRATCH).create(
        original_name="names.csv", kind="icd10_ru", status="unchanged", progress=100)
    return {"user": user.pk, "real": real.pk, "synthetic": synthetic.pk, "pending": pending.pk, "study": study.pk,
            "release": release.pk}


@pytest.mark.django_db
def test_a_database_from_before_the_split_migrates_with_every_row(scratch_database):
    executor = MigrationExecutor(scratch_database)
    old = _old_targets(executor)
    executor.migrate(old)
    ids = _fill_old_schema(executor.loader.project_state(old).apps)

    executor = MigrationExecutor(scratch_database)
    executor.migrate(executor.loader.graph.leaf_nodes())
    after = MigrationExecutor(scratch_database)
    assert not after.migration_plan(after.loader.graph.leaf_nodes())

    from generation.models import Note, NoteImportJob, NoteVersion
    from graph.models import ImportJob
    from medsyn_site.core.models import AuditRecord, JobStatus
    from review.assessment.models import Rating, Study
    from review.curation.models import ScanJob
    from review.releases.models import Release, ReleaseNote

    synthetic = Note.objects.using(SCRATCH).get(pk=ids["synthetic"])
    assert synthetic.version == 2
    assert NoteVersion.objects.using(SCRATCH).get(note=synthetic).text == "Первый текст."
    audit = AuditRecord.objects.using(SCRATCH).get(object_id=str(synthetic.pk))
    assert (audit.action, audit.actor_id) == ("approve_note", ids["user"])
    study = Study.objects.using(SCRATCH).get(pk=ids["study"])
    assert study.state == "closed" and study.items.get().token == "tok-before-split"
    rating = Rating.objects.using(SCRATCH).get(assignment__study=study)
    assert rating.judged_synthetic and rating.likert == {"realism": 3}
    release = Release.objects.using(SCRATCH).get(pk=ids["release"])
    assert release.content_sha256 == "c" * 64 and release.note_count == 1
    assert ReleaseNote.objects.using(SCRATCH).get(release=release).text == synthetic.text
    scan = ScanJob.objects.using(SCRATCH).get()
    assert scan.status == JobStatus.DONE and scan.flagged == 1
    assert NoteImportJob.objects.using(SCRATCH).get().status == JobStatus.DONE
    assert ImportJob.objects.using(SCRATCH).get().status == JobStatus.DONE
    _assert_curation_kept(ids)


def _assert_curation_kept(ids: dict) -> None:
    """The curation state, flags and override of every synthetic note survive the move off generation.Note."""
    from generation.models import Note

    synthetic = Note.objects.using(SCRATCH).get(pk=ids["synthetic"])
    pending = Note.objects.using(SCRATCH).get(pk=ids["pending"])
    curation = synthetic.curation
    assert curation.state == "approved" and curation.flag_override
    assert curation.memorised and curation.memorisation_real_note_id == ids["real"]
    assert curation.memorisation_ngram == 14 and curation.memorisation_checked_version == 2
    assert (pending.curation.state, pending.curation.reason) == ("needs_edit", "too short")
    assert pending.curation.near_duplicate_of_id == ids["synthetic"] and pending.curation.duplicate_jaccard == 0.85
