"""Generation jobs on real Celery workers: the tiny local model on "gpu", a faulty API server on "api",
and a gpu worker killed with SIGKILL mid-job, restarted, and the job redelivered."""

from __future__ import annotations

import signal
import time

import pytest

from generation.jobs import PlanRequest, do_create_job
from generation.models import GenerationJob, ModelConfig, Note
from generation.services import prompt_templates_ensure
from medsyn_site.core.models import JobChunk

# serialized_rollback: the flush after a transactional test must give back the seeded prompt templates.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def job_wait(job: GenerationJob, *, timeout: float = 90, until=None) -> GenerationJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if (until or (lambda j: j.finished))(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job.pk} still {job.status} after {timeout} s ({job.progress_done}/{job.planned})")


def test_local_model_job_on_the_gpu_worker(celery_workers, tiny_graph, real_notes, tiny_model_config):
    prompt_templates_ensure()
    job = do_create_job(request=PlanRequest(categories=["J06", "I10"], budget=5, allocation="uniform", seed=3),
                        model_config=tiny_model_config, actor=None)
    job = job_wait(job)
    assert job.status == "done" and job.progress_done == 5 and job.ok >= 4
    assert job.prompt_tokens > 0 and job.completion_tokens > 0 and job.started_at and job.finished_at
    notes = Note.objects.filter(metadata__job_id=job.pk)
    assert notes.count() == job.ok
    for note in notes:
        meta = note.metadata
        item = note.generation_item
        assert meta["generation_model"] == "tiny-local" and meta["prompt_variant"] == "symptoms_example"
        assert meta["model_config"]["backend"] == "local" and meta["model_config"]["path"] == str(
            tiny_model_config.model_path)
        assert meta["prompt_template"]["id"] == job.prompt_template_id
        assert meta["prompt"] == {"system": item.prompt_system, "user": item.prompt_user}
        assert meta["symptoms"] == item.symptoms and meta["example_note_id"] == item.example_note_id
        assert meta["graph_version"] == job.graph_version and meta["seed"] == 3
        assert meta["tokens"]["completion"] > 0 and meta["latency_s"] > 0
        assert set(meta["checks"]) >= {"scores", "reasons", "passed"}
        assert note.icd_category == item.category and note.origin == "synthetic"


def test_api_model_job_with_injected_faults(celery_workers, tiny_graph, real_notes, openai_server):
    prompt_templates_ensure()
    config = ModelConfig.objects.create(
        name="fake-openai", backend=ModelConfig.Backend.OPENAI, api_model="gpt-fake", base_url=openai_server.url,
        batch_size=2, concurrency=1, max_retries=2, timeout_seconds=0.5, backoff_initial_seconds=0.01,
        backoff_max_seconds=0.05, chunk_size=4,  # one chunk: the faults are scripted in arrival order
        price_per_1k_tokens="1.0")
    # Items run in index order, one request at a time: 0 gets 429 then 500 then succeeds; 1 times out once;
    # 2 gets a malformed body (not retried: the item fails); 3 succeeds at once.
    openai_server.script(("status", 429), ("status", 500), ("ok",), ("sleep", 1.5), ("ok",), ("malformed",))
    job = do_create_job(request=PlanRequest(categories=["J06"], budget=4, allocation="uniform", seed=1),
                        model_config=config, actor=None)
    job = job_wait(job)
    items = {item.index: item for item in job.items.all()}
    assert (job.status, job.ok, job.failed) == ("done", 3, 1), [(i.status, i.attempts, i.error) for i in items.values()]
    assert items[0].attempts == 3 and items[0].status == "done"
    assert items[1].attempts == 2 and items[1].status == "done"
    assert items[2].status == "failed" and "malformed" in items[2].error
    assert items[3].attempts == 1 and items[3].status == "done"
    assert len(openai_server.requests) == 7
    assert job.prompt_tokens == 33 and job.completion_tokens == 21 and float(job.cost) == pytest.approx(0.054)
    assert Note.objects.filter(metadata__job_id=job.pk).count() == 3

    openai_server.persistent_status = 500
    broken = do_create_job(request=PlanRequest(categories=["J06"], budget=2, allocation="uniform", seed=2),
                           model_config=config, actor=None)
    broken = job_wait(broken)
    assert (broken.status, broken.ok, broken.failed) == ("failed", 0, 2)
    assert all("gave up after 3 attempt(s): HTTP 500" in item.error for item in broken.items.all())


def test_gpu_worker_killed_mid_job_ends_with_exactly_the_planned_notes(celery_workers, tiny_graph, real_notes,
                                                                      tiny_model_config):
    prompt_templates_ensure()
    ModelConfig.objects.filter(pk=tiny_model_config.pk).update(batch_size=1, max_new_tokens=48)
    job = do_create_job(request=PlanRequest(categories=["J06", "I10"], budget=40, allocation="uniform", seed=11),
                        model_config=tiny_model_config, actor=None)
    chunks = JobChunk.objects.filter(job_model="generation.generationjob", job_id=job.pk)
    # killed while a chunk runs: the sweep's path (a dead worker's running chunk), not only the queue's
    job = job_wait(job, until=lambda j: j.progress_done >= 3 and chunks.filter(status="running").exists())
    celery_workers.kill("gpu", signal.SIGKILL)
    job.refresh_from_db()
    at_kill = job.progress_done
    killed_workers = set(chunks.exclude(status="queued").values_list("worker", flat=True))
    assert job.status == "running" and at_kill < job.planned, "the job finished before the kill; make it longer"
    assert killed_workers and all(worker.startswith("gpu@") for worker in killed_workers)
    # The killed worker's message stays unacknowledged in Redis for the visibility timeout (an hour); what brings
    # its chunk back at once is the sweep of the restarted worker (core.jobs, core.chunks): the chunk names a boot
    # of "gpu@..." that is no longer alive, so it is sent again, with no manual Resume. The chunks still queued
    # are taken by the restarted worker from the queue.
    celery_workers.start("gpu")
    celery_workers.wait_ready("gpu")
    job = job_wait(job, timeout=300)
    assert job.status == "done" and job.progress_done == job.planned == 40
    assert set(chunks.values_list("status", flat=True)) == {"done"}
    restarted = set(chunks.values_list("worker", flat=True)) - killed_workers
    assert restarted and all(worker.startswith("gpu@") for worker in restarted)  # finished by the restarted worker
    assert job.items.filter(status="pending").count() == 0
    notes = Note.objects.filter(metadata__job_id=job.pk)
    assert notes.count() == job.ok == job.items.filter(status="done").count()
    assert sorted(notes.values_list("metadata__item_index", flat=True)) == sorted(
        job.items.filter(status="done").values_list("index", flat=True))
    assert job.ok >= 36  # a random tiny model may end a rare completion at once (an "empty completion" failure)
