"""Jobs in chunks (core.chunks) with a generation job as the chunked job, in this process (no worker): the chunk
rows, idempotent runs, the sweep of a dead worker's chunk and of a lost message against the suite's real Redis, the
capability check, and one model load per process for all the chunks of a job."""

from __future__ import annotations

import socket
import subprocess

import pytest
from django.utils import timezone

from generation.backends import local_backend
from generation.jobs import PlanRequest, chunk_size_for, do_create_job, job_execute, job_waiting_reason, queue_for
from generation.models import ModelConfig, Note
from generation.services import TEMPLATE_BASELINE_NAME, embedded_model_configs_ensure, prompt_templates_ensure
from medsyn_site.core import chunks as core_chunks
from medsyn_site.core import jobs as core_jobs
from medsyn_site.core.chunks import chunk_ranges, chunk_run, chunks_stalled_requeue, worker_alive
from medsyn_site.core.models import ChunkStatus, JobChunk, JobStatus
from medsyn_site.core.workers import Requirements, requirements_unmet, workers_able
from medsyn_site.health import heartbeat_store_url, redis_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def baseline(db) -> ModelConfig:
    prompt_templates_ensure()
    config = next(config for config in embedded_model_configs_ensure() if config.name == TEMPLATE_BASELINE_NAME)
    config.chunk_size = 3
    config.save()
    return config


def chunks_of(job):
    return JobChunk.objects.filter(job_model="generation.generationjob", job_id=job.pk).order_by("index")


def test_chunk_ranges_cover_every_unit_once():
    assert chunk_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_ranges(3, 5) == [(0, 3)] and chunk_ranges(0, 5) == []
    assert chunk_ranges(4, 0) == [(0, 1), (1, 2), (2, 3), (3, 4)]  # a size below 1 counts as 1


def test_chunk_size_by_backend_and_setting(settings):
    local = ModelConfig(backend="local", batch_size=6, concurrency=3)
    api = ModelConfig(backend="openai", batch_size=6, concurrency=3)
    assert chunk_size_for(local) == 6 and chunk_size_for(api) == 12  # one batch; four windows in flight
    settings.JOB_CHUNK_SIZE = 5
    assert chunk_size_for(local) == chunk_size_for(api) == 5
    api.chunk_size = 2
    assert chunk_size_for(api) == 2


def test_a_job_runs_in_chunks_and_each_item_ends_once(tiny_graph, real_notes, baseline):
    job = do_create_job(request=PlanRequest(categories=["J06", "I10"], budget=8, allocation="uniform", seed=3),
                        model_config=baseline, actor=None, enqueue=False)
    job_execute(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.progress_done == job.planned == 8 and job.worker == ""
    assert [(chunk.first, chunk.end, chunk.status) for chunk in chunks_of(job)] == [
        (0, 3, "done"), (3, 6, "done"), (6, 8, "done")]
    assert all(chunk.attempts == 1 for chunk in chunks_of(job))
    notes = Note.objects.filter(metadata__job_id=job.pk)
    assert notes.count() == job.ok and job.ok + job.skipped == 8
    # a duplicate delivery of a chunk, or of the whole job, changes nothing
    chunk_run("generation.generationjob", job.pk, 1)
    job_execute(job.pk)
    assert Note.objects.filter(metadata__job_id=job.pk).count() == job.ok
    assert all(chunk.attempts == 1 for chunk in chunks_of(job))


def test_a_resumed_job_sends_only_the_chunks_with_items_to_run(tiny_graph, real_notes, baseline):
    job = do_create_job(request=PlanRequest(categories=["J06", "I10"], budget=8, allocation="uniform", seed=4),
                        model_config=baseline, actor=None, enqueue=False)
    job_execute(job.pk)
    job.refresh_from_db()
    ok = job.ok
    item = job.items.filter(status="done", index__gte=3, index__lt=6).first()
    Note.objects.filter(pk=item.note_id).delete()
    job.items.filter(pk=item.pk).update(status="pending", note=None)  # as if it had never run
    job.__class__.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED, ok=ok - 1,
                                                   progress_done=job.progress_done - 1)
    job_execute(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.ok == ok
    assert [chunk.attempts for chunk in chunks_of(job)] == [1, 2, 1]  # only the chunk of that item ran again


def test_a_cancelled_job_leaves_its_chunks_queued_and_nothing_runs(tiny_graph, real_notes, baseline):
    job = do_create_job(request=PlanRequest(categories=["J06"], budget=6, allocation="uniform", seed=5),
                        model_config=baseline, actor=None, enqueue=False)
    job.mark_running()
    core_chunks.chunks_dispatch(job, end=6, size=3, pending=[])  # chunks made, none to send: the job is finished
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    job.__class__.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED)
    JobChunk.objects.filter(job_id=job.pk).update(status=ChunkStatus.QUEUED)
    chunk_run("generation.generationjob", job.pk, 0)
    assert set(chunks_of(job).values_list("status", flat=True)) == {"queued"}  # not taken: the job is not running


@pytest.fixture
def redis_store():
    client = redis_client(heartbeat_store_url())
    yield client
    client.delete(core_jobs.worker_boot_key("ghost@test"), core_jobs.SWEEP_LOCK_KEY)


def test_the_sweep_sends_again_a_dead_workers_chunk_and_a_lost_message(tiny_graph, real_notes, baseline,
                                                                        redis_store, settings, monkeypatch):
    job = do_create_job(request=PlanRequest(categories=["J06"], budget=6, allocation="uniform", seed=6),
                        model_config=baseline, actor=None, enqueue=False)
    job.mark_running()
    rows = [JobChunk(job_model="generation.generationjob", job_id=job.pk, index=index, first=first, end=end)
            for index, (first, end) in enumerate(chunk_ranges(6, 3))]
    JobChunk.objects.bulk_create(rows)
    long_ago = timezone.now() - timezone.timedelta(hours=1)
    # chunk 0 runs on a worker whose heartbeat names another boot (it was killed and restarted); chunk 1 was sent an
    # hour ago and never taken (its message lost with the worker that had reserved it)
    core_jobs.worker_boot_write(redis_store, "ghost@test")
    chunks_of(job).filter(index=0).update(status=ChunkStatus.RUNNING, worker="ghost@test old-boot")
    chunks_of(job).filter(index=1).update(sent_at=long_ago)
    assert not worker_alive("ghost@test old-boot") and worker_alive(f"ghost@test {core_jobs.WORKER_BOOT}")
    assert not worker_alive("")
    published = []
    monkeypatch.setattr(core_chunks, "chunk_send", lambda job, index: published.append(index))
    monkeypatch.setattr(core_chunks, "queue_length", lambda client, queue: 0)  # the queue is empty
    assert sorted(index for _label, _job, index in chunks_stalled_requeue(redis_store)) == [0, 1]
    assert sorted(published) == [0, 1]
    assert set(chunks_of(job).filter(index__in=[0, 1]).values_list("status", "worker")) == {("queued", "")}
    # sent just now: not again at the next sweep; and a queue that still holds messages is waited for
    assert chunks_stalled_requeue(redis_store) == []
    chunks_of(job).update(sent_at=long_ago)
    monkeypatch.setattr(core_chunks, "queue_length", lambda client, queue: 5)
    assert chunks_stalled_requeue(redis_store) == []


def test_the_sweep_leaves_the_chunks_a_live_process_runs_itself_and_sends_a_dead_ones(
        tiny_graph, real_notes, baseline, redis_store, monkeypatch):
    """A management command (or the demo, or a test) runs its job's chunks itself: they are reserved for it
    ("inline <host>:<pid>"), and a worker's sweep must not send them to the workers while it runs; once it is gone,
    they are sent. Seen in the suite: a sweep re-ran a chunk a test was about to run in-process."""
    job = do_create_job(request=PlanRequest(categories=["J06"], budget=6, allocation="uniform", seed=7),
                        model_config=baseline, actor=None, enqueue=False)
    job.mark_running()
    JobChunk.objects.bulk_create([JobChunk(job_model="generation.generationjob", job_id=job.pk, index=index,
                                           first=first, end=end)
                                  for index, (first, end) in enumerate(chunk_ranges(6, 3))])
    long_ago = timezone.now() - timezone.timedelta(hours=1)
    me = core_chunks.inline_identity()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs on this host
    dead = f"{core_chunks.INLINE} {socket.gethostname()}:{gone.pid}"
    elsewhere = f"{core_chunks.INLINE} another-host:{gone.pid}"
    chunks_of(job).filter(index=0).update(status=ChunkStatus.QUEUED, worker=me, sent_at=long_ago)
    chunks_of(job).filter(index=1).update(status=ChunkStatus.RUNNING, worker=dead, sent_at=long_ago)
    assert worker_alive(me) and not worker_alive(dead) and worker_alive(elsewhere)
    published = []
    monkeypatch.setattr(core_chunks, "chunk_send", lambda job, index: published.append(index))
    monkeypatch.setattr(core_chunks, "queue_length", lambda client, queue: 0)  # the queue is empty
    assert [index for _label, _job, index in chunks_stalled_requeue(redis_store)] == [1] == published
    assert list(chunks_of(job).values_list("status", "worker")) == [("queued", me), ("queued", "")]
    # run in this process, a chunk is taken by it, whatever the sweep does meanwhile
    chunk_run("generation.generationjob", job.pk, 0)
    assert chunks_of(job).get(index=0).status == ChunkStatus.DONE and chunks_of(job).get(index=0).attempts == 1
    # a command on another host running a chunk: no sweep takes it, but a Resume does (the command may be dead)
    chunks_of(job).filter(index=1).update(status=ChunkStatus.RUNNING, worker=elsewhere, attempts=1)
    published.clear()
    assert chunks_stalled_requeue(redis_store) == [] and published == []
    core_chunks.chunks_dispatch(job, end=6, size=3, pending=range(3, 6))
    job.refresh_from_db()
    assert chunks_of(job).get(index=1).status == ChunkStatus.DONE and chunks_of(job).get(index=1).attempts == 2
    assert job.status == JobStatus.DONE  # its last chunk done: the job too


def test_queue_length_reads_the_broker(settings):
    client = redis_client(settings.CELERY_BROKER_URL)
    client.delete("medsyn-test-queue")
    assert core_chunks.queue_length(client, "medsyn-test-queue") == 0
    client.rpush("medsyn-test-queue", "a", "b")
    try:
        assert core_chunks.queue_length(client, "medsyn-test-queue") == 2
    finally:
        client.delete("medsyn-test-queue")


def test_requirements_and_the_queue_of_a_model():
    cpu_worker = {"hostname": "a@x", "queues": ["gpu"], "device": "cpu", "memory_gb": 24}
    cuda_worker = {"hostname": "b@x", "queues": ["gpu", "gpu.cuda"], "device": "cuda", "memory_gb": 16}
    seven_b = Requirements(device="cuda", memory_gb=15)
    assert "CUDA" in requirements_unmet(seven_b, cpu_worker)
    assert requirements_unmet(seven_b, cuda_worker) is None
    assert "40 GB" in requirements_unmet(Requirements(memory_gb=40), cuda_worker)
    assert workers_able(seven_b, "gpu.cuda", [cpu_worker, cuda_worker]) == [cuda_worker]
    assert queue_for(ModelConfig(backend="local", device="cuda")) == "gpu.cuda"
    assert queue_for(ModelConfig(backend="local", device="auto")) == "gpu"


def test_the_job_page_says_when_no_worker_can_run_it(tiny_graph, real_notes, tiny_model_config):
    prompt_templates_ensure()
    ModelConfig.objects.filter(pk=tiny_model_config.pk).update(min_memory_gb=64)
    tiny_model_config.refresh_from_db()
    job = do_create_job(request=PlanRequest(categories=["J06"], budget=2, allocation="uniform", seed=1),
                        model_config=tiny_model_config, actor=None, enqueue=False)
    assert "gpu" in job_waiting_reason(job, workers=[])
    small = {"hostname": "a@x", "queues": ["gpu"], "device": "cpu", "memory_gb": 8}
    assert "64 GB" in job_waiting_reason(job, workers=[small])
    assert job_waiting_reason(job, workers=[{**small, "memory_gb": 128}]) is None


def test_a_local_model_is_loaded_once_for_all_the_chunks_of_a_job(tiny_graph, real_notes, tiny_model_config,
                                                                  monkeypatch):
    prompt_templates_ensure()
    ModelConfig.objects.filter(pk=tiny_model_config.pk).update(batch_size=2, max_new_tokens=8)
    tiny_model_config.refresh_from_db()
    loads = []
    real_load = local_backend.model_load
    monkeypatch.setattr(local_backend, "model_load", lambda key: loads.append(key) or real_load(key))
    monkeypatch.setattr(local_backend, "_loaded", {})  # a fresh process cache
    job = do_create_job(request=PlanRequest(categories=["J06"], budget=6, allocation="uniform", seed=2),
                        model_config=tiny_model_config, actor=None, enqueue=False)
    job_execute(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and chunks_of(job).count() == 3
    assert len(loads) == 1  # the per-process cache, keyed by the model's configuration and adapter
