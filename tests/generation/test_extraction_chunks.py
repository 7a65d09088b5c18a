"""Symptom extraction in chunks (core.chunks), like a generation job: the notes chosen once are the units, each chunk
reads its notes not read yet on its model's queue, each note's proposals are committed once; in this process (no
worker) and on two worker hosts sharing one extraction."""

from __future__ import annotations

import pytest

from generation.backends.base import GenerationResult
from generation.enrichment import (
    do_start_symptom_extraction,
    extraction_chunk_execute,
    note_read_record,
    symptom_extraction_execute,
)
from generation.models import ModelConfig, Note, SymptomExtractionJob, SymptomProposal
from medsyn_site.core.chunks import chunk_run
from medsyn_site.core.models import JobChunk, JobStatus
from medsyn_site.core.workers import Requirements
from tests.generation import test_fleet
from tests.generation.factories import NoteFactory
from tests.generation.test_enrichment import cancel_after_the_first_note

LABEL = "generation.symptomextractionjob"


def chunks_of(job: SymptomExtractionJob):
    return JobChunk.objects.filter(job_model=LABEL, job_id=job.pk).order_by("index")


@pytest.fixture
def api_config(db, openai_server):
    """Two notes a chunk, one at a time: the model answers for the notes of a chunk one by one."""
    return ModelConfig.objects.create(name="fake-api", backend=ModelConfig.Backend.OPENAI, base_url=openai_server.url,
                                      api_model="gpt-test", max_retries=1, batch_size=2, concurrency=1, chunk_size=2)


def start(config: ModelConfig) -> SymptomExtractionJob:
    """An extraction of the five real notes (two of I10, then three of J06), run here when its task is called."""
    return do_start_symptom_extraction(actor=None, model_config=config, categories=["I10", "J06"],
                                       notes_per_category=3, enqueue=False)


def test_an_extraction_runs_in_chunks_and_reads_each_note_once(api_config, openai_server, real_notes):
    openai_server.replies.extend(["давление", "головная боль", "кашель", "насморк\nкашель", "кашель"])
    job = start(api_config)
    symptom_extraction_execute(job.pk)
    job.refresh_from_db()
    assert (job.status, job.progress_done, job.progress_total, job.failed) == ("done", 5, 5, 0)
    assert [(c.first, c.end, c.status, c.attempts) for c in chunks_of(job)] == [
        (0, 2, "done", 1), (2, 4, "done", 1), (4, 5, "done", 1)]
    assert sorted(job.notes_read) == sorted(job.note_ids) and len(openai_server.requests) == 5
    assert dict(SymptomProposal.objects.values_list("symptom_key", "category")) == {
        "давление": "I10", "головная боль": "I10", "кашель": "J06", "насморк": "J06"}
    assert SymptomProposal.objects.get(symptom_key="кашель").support == 3 and job.proposals_new == 4

    # A chunk run again (a redelivery, or the extraction's task sent again) asks nothing and writes nothing.
    SymptomExtractionJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    assert extraction_chunk_execute(job, chunks_of(job)[1]) is True
    chunk_run(LABEL, job.pk, 1)
    symptom_extraction_execute(job.pk)
    job.refresh_from_db()
    assert job.status == "done" and len(openai_server.requests) == 5 and job.progress_done == 5
    assert [c.attempts for c in chunks_of(job)] == [1, 1, 1] and job.proposals_new == 4
    # ...and a note's answer recorded twice counts once
    note = Note.objects.get(pk=job.note_ids[2])
    assert note_read_record(job, note, GenerationResult(key=str(note.pk), text="кашель")) is None
    assert SymptomProposal.objects.get(symptom_key="кашель").support == 3


def test_the_notes_chosen_first_stay_the_units_of_the_chunks(api_config, openai_server, real_notes):
    job = start(api_config)
    symptom_extraction_execute(job.pk)  # runs every chunk here; the note ids are chosen once, in the job
    job.refresh_from_db()
    chosen = list(job.note_ids)
    NoteFactory(text="Новая заметка о кашле и насморке у пациента.", icd_code="J06")  # imported after the start
    SymptomExtractionJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    symptom_extraction_execute(job.pk)  # sent again
    job.refresh_from_db()
    assert job.note_ids == chosen and [(c.first, c.end) for c in chunks_of(job)] == [(0, 2), (2, 4), (4, 5)]
    assert job.progress_total == 5 and len(openai_server.requests) == 5


def test_a_cancel_leaves_the_other_chunks_unread(api_config, openai_server, real_notes, monkeypatch):
    cancel_after_the_first_note(monkeypatch)
    job = start(api_config)
    symptom_extraction_execute(job.pk)
    job.refresh_from_db()
    assert (job.status, job.progress_done) == ("cancelled", 1) and len(openai_server.requests) == 1
    assert [c.status for c in chunks_of(job)] == ["queued", "queued", "queued"]  # nothing was taken after it


def test_the_chunks_of_an_extraction_follow_its_model(db, settings, tiny_model_config, openai_server):
    api = ModelConfig.objects.create(name="api", backend=ModelConfig.Backend.OPENAI, base_url=openai_server.url,
                                     api_model="gpt-test", concurrency=3, batch_size=2)
    ModelConfig.objects.filter(pk=tiny_model_config.pk).update(device=ModelConfig.Device.CUDA, min_memory_gb=16)
    tiny_model_config.refresh_from_db()
    local_job, api_job = (SymptomExtractionJob(model_config=config) for config in (tiny_model_config, api))
    assert (local_job.chunk_queue(), api_job.chunk_queue()) == ("gpu.cuda", "api")
    assert local_job.chunk_requirements() == Requirements(device="cuda", memory_gb=16)
    assert api_job.chunk_requirements() is None
    NoteFactory.create_batch(13, icd_code="J06")
    for chunk_size, ranges in ((0, [(0, 12), (12, 13)]),  # four windows of three requests in flight
                               (5, [(0, 5), (5, 10), (10, 13)])):  # settings.JOB_CHUNK_SIZE
        settings.JOB_CHUNK_SIZE = chunk_size
        job = do_start_symptom_extraction(actor=None, model_config=api, categories=["J06"], notes_per_category=13,
                                          enqueue=False)
        symptom_extraction_execute(job.pk)
        assert [(c.first, c.end, c.status) for c in chunks_of(job)] == [(*bounds, "done") for bounds in ranges]


fleet = test_fleet.fleet  # the fixtures: worker hosts, each its own process, with a broker database of their own,
latency_server = test_fleet.latency_server  # and an OpenAI-compatible server that takes 0.3 s an answer


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_two_worker_hosts_share_one_extraction(fleet, latency_server, real_notes):
    config = ModelConfig.objects.create(name="fleet-api", backend=ModelConfig.Backend.OPENAI, api_model="fake",
                                        base_url=latency_server.url, concurrency=1, batch_size=1, chunk_size=1,
                                        max_retries=1, timeout_seconds=10)
    for name in ("host-a", "host-b"):
        fleet.start(name, ["api"], concurrency=1)
    for name in ("host-a", "host-b"):
        fleet.wait_ready(name, "api")
    job = do_start_symptom_extraction(actor=None, model_config=config, categories=["I10", "J06"],
                                      notes_per_category=3)  # sent to the fleet's broker once committed
    job = test_fleet.job_wait(job)
    assert (job.status, job.error, job.progress_done, job.failed) == ("done", "", 5, 0)
    assert sorted(job.notes_read) == sorted(job.note_ids) and len(latency_server.requests) == 5  # none asked twice
    chunks = chunks_of(job)
    assert set(chunks.values_list("status", "attempts")) == {("done", 1)}
    assert test_fleet.hosts_of(chunks) == {"host-a", "host-b"}

