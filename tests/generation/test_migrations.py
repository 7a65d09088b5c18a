"""generation 0009: generated notes kept before prompt_inputs get them, their job's thresholds, and lose the example
(and the symptoms) their prompt never contained. generation 0011: jobs take the shared background-job shape."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from generation.models import GenerationJob, ModelConfig, Note
from generation.selectors import prompt_template_current
from generation.services import note_content_hash, prompt_templates_ensure
from tests.scratch_database import SCRATCH, state_apps

pytestmark = pytest.mark.django_db
migration = importlib.import_module("generation.migrations.0009_note_prompt_inputs")


def _legacy_note(job: GenerationJob, n: int, **metadata) -> Note:
    text = f"Синтетическая заметка {n}: кашель и насморк."
    template = job.prompt_template
    return Note.objects.create(
        origin="synthetic", text=text, icd_code="J06", icd_category="J06", source_dataset="MedSyn Studio",
        content_hash=note_content_hash(origin="synthetic", icd_code="J06", text=text),
        metadata={"job_id": job.pk, "prompt_variant": template.variant, "symptoms": ["кашель", "насморк"],
                  "prompt_template": {"id": template.pk, "name": template.name, "version": template.version},
                  "example_note_id": 7, "example_text": "Пример реальной заметки.", **metadata})


def test_legacy_notes_record_their_prompt_inputs_and_thresholds():
    prompt_templates_ensure()
    config = ModelConfig.objects.create(name="legacy", backend="openai", api_model="m")
    jobs = {variant: GenerationJob.objects.create(
        model_config=config, prompt_template=prompt_template_current(variant=variant, language="ru"),
        parameters={"checks": {"words_max": 50}} if variant == "symptoms" else {})
        for variant in ("symptoms_example", "symptoms", "code")}
    with_example = _legacy_note(jobs["symptoms_example"], 1)
    symptoms = _legacy_note(jobs["symptoms"], 2)
    code = _legacy_note(jobs["code"], 3)
    imported = Note.objects.create(origin="synthetic", text="Импорт.", icd_code="J06", icd_category="J06",
                                   source_dataset="MedSyn", content_hash="i" * 64, metadata={"prior": "symptoms"})

    migration.prompt_inputs_record(apps, None)

    meta = Note.objects.get(pk=with_example.pk).metadata
    assert (meta["prompt_inputs"], meta["example_note_id"], meta["check_thresholds"]) == (
        ["symptoms", "example"], 7, {})
    meta = Note.objects.get(pk=symptoms.pk).metadata
    assert (meta["prompt_inputs"], meta["example_note_id"], meta["example_text"]) == (["symptoms"], None, "")
    assert meta["symptoms"] == ["кашель", "насморк"] and meta["check_thresholds"] == {"words_max": 50}
    meta = Note.objects.get(pk=code.pk).metadata
    assert (meta["prompt_inputs"], meta["symptoms"], meta["example_text"]) == (["code"], [], "")
    assert Note.objects.get(pk=imported.pk).metadata == {"prior": "symptoms"}


BEFORE_JOB_SHAPE = [("generation", "0010_note_curation_moved")]
AFTER_JOB_SHAPE = [("generation", "0011_jobs_background_job")]




def test_jobs_take_the_background_job_shape_with_every_row_kept_and_go_back(scratch_database):
    """generation 0011: generation jobs count their items as progress, note imports their rows (and back)."""
    state = state_apps(scratch_database, BEFORE_JOB_SHAPE)
    user = state.get_model("auth", "User").objects.using(SCRATCH).create(username="researcher-before-job-shape")
    config = state.get_model("generation", "ModelConfig").objects.using(SCRATCH).create(name="m", backend="openai",
                                                                                       api_model="m")
    template = state.get_model("generation", "PromptTemplate").objects.using(SCRATCH).create(
        name="t", variant="symptoms", language="ru", system_text="s", user_text="{symptoms}")
    generation_jobs = state.get_model("generation", "GenerationJob").objects.using(SCRATCH)
    running = generation_jobs.create(model_config=config, prompt_template=template, created_by=user,
                                     status="running", planned=10, ok=3, failed=1, skipped=2).pk
    cancelled = generation_jobs.create(model_config=config, prompt_template=template, status="cancelled",
                                       planned=4, ok=1).pk
    imports = state.get_model("generation", "NoteImportJob").objects.using(SCRATCH)
    old = {status: imports.create(kind=kind, split=split, upload=f"note_imports/{status}", original_name=status,
                                  status=status, progress=progress, created=created, skipped=skipped,
                                  errors=errors, created_by=user).pk
           for status, kind, split, progress, created, skipped, errors in [
               ("done", "rumedtop3", "dev", 100, 7, 3, []),
               ("failed", "medsyn_csv", "", 0, 0, 0, [{"line": 2, "message": "empty response"}]),
               ("running", "rumedtop3", "train", 40, 0, 0, [])]}

    state = state_apps(scratch_database, AFTER_JOB_SHAPE)
    jobs = {job.pk: job for job in state.get_model("generation", "GenerationJob").objects.using(SCRATCH).all()}
    assert (jobs[running].status, jobs[running].progress_done, jobs[running].progress_total) == ("running", 6, 10)
    assert (jobs[running].created_by_id, jobs[cancelled].progress_done, jobs[cancelled].progress_total) == (
        user.pk, 1, 4)
    after = {job.pk: job for job in state.get_model("generation", "NoteImportJob").objects.using(SCRATCH).all()}
    done, failed, running_import = (after[old[status]] for status in ("done", "failed", "running"))
    assert (done.status, done.progress_done, done.progress_total, done.source_dataset, done.created) == (
        "done", 10, 10, "RuMedTop3", 7)
    assert (failed.status, failed.source_dataset, failed.errors) == (
        "failed", "MedSyn", [{"line": 2, "message": "empty response"}])
    assert (running_import.progress_done, running_import.progress_total, running_import.split) == (40, 100, "train")
    assert all(job.updated_at == job.created_at and job.created_by_id == user.pk for job in after.values())
    after_model = state.get_model("generation", "NoteImportJob").objects.using(SCRATCH)
    after_model.filter(pk=old["running"]).update(status="cancelled", progress_done=1, progress_total=4)

    state = state_apps(scratch_database, BEFORE_JOB_SHAPE)
    back = {job.pk: job for job in state.get_model("generation", "NoteImportJob").objects.using(SCRATCH).all()}
    assert {status: (back[pk].status, back[pk].progress) for status, pk in old.items()} == {
        "done": ("done", 100), "failed": ("failed", 0), "running": ("failed", 25)}
    assert state.get_model("generation", "GenerationJob").objects.using(SCRATCH).get(pk=running).status == "running"
