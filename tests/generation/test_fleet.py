"""A fleet on one machine: worker "hosts" as separate processes, each with its own var dir, environment and Celery
hostname, consuming one generation job from one broker (core.chunks). The job's chunks are spread over the hosts,
every item ends once, and the chunks of a host killed with SIGKILL are finished by the others with no manual
Resume; a host short of memory never runs a model that needs more (core.workers).

The hosts use a broker database of their own, the suite's own workers are paused meanwhile (their sweep cannot see
the fleet's heartbeats and would take its running chunks for a dead worker's: conftest.WorkerPool.paused), and they
share the suite's PostgreSQL test database. They are not in network namespaces: a namespace would cut them off from
the services on 127.0.0.1 unless a bridge with routes were set up, which needs more privileges than CI grants; each
host reaches the services by URL, as a host on another machine does (docs/deploy.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from conftest import _worker_env
from generation.jobs import PlanRequest, do_create_job, job_waiting_reason
from generation.models import GenerationJob, ModelConfig, Note
from generation.services import prompt_templates_ensure
from medsyn_site.core.models import JobChunk
from medsyn_site.health import check_worker_queue
from medsyn_site.stack import BASE_DIR, celery_worker_command, process_group_stop

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FLEET_BROKER_DB = 7


class Fleet:
    """Worker hosts against the suite's database and a broker database of their own."""

    def __init__(self, database_name: str, broker_url: str, root: Path) -> None:
        self.database_name, self.broker_url, self.root = database_name, broker_url, root
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, queues: list[str], *, pool: str = "threads", concurrency: int = 2,
              **environment: str) -> None:
        var = self.root / name
        var.mkdir(parents=True, exist_ok=True)
        env = {**_worker_env(self.database_name), "CELERY_BROKER_URL": self.broker_url, "MEDSYN_VAR_DIR": str(var),
               "MEDSYN_JOB_CHUNK_LOST_AFTER_SECONDS": "4", **environment}
        log = open(var / "worker.log", "ab")  # noqa: SIM115 - held by the child
        self.procs[name] = subprocess.Popen(
            celery_worker_command(queues, name, pool=pool, concurrency=concurrency, host="fleet"), env=env,
            cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, name: str, queue: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"host {name} exited; see {self.root / name / 'worker.log'}")
            status = check_worker_queue(queue)
            if status.ok and f"{name}@fleet" in status.detail:
                return
            time.sleep(0.2)
        raise RuntimeError(f"host {name} not ready after {timeout} s")

    def kill(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs.pop(name).wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                process_group_stop(proc.pid, timeout=15)
        self.procs.clear()


@pytest.fixture
def fleet(settings, django_db_blocker, tmp_path, celery_workers):
    from django.db import connection

    parts = urlsplit(os.environ["CELERY_BROKER_URL"])
    broker_url = urlunsplit(parts._replace(path=f"/{FLEET_BROKER_DB}"))
    settings.CELERY_BROKER_URL = broker_url  # this process publishes to the fleet's broker and reads its heartbeats
    from medsyn_site.health import redis_client

    redis_client(broker_url).flushdb()
    fleet = Fleet(connection.settings_dict["NAME"], broker_url, tmp_path)
    try:
        with celery_workers.paused():  # the suite's own workers take no part (conftest.WorkerPool.paused)
            yield fleet
    finally:
        fleet.stop_all()


@pytest.fixture
def latency_server(openai_server):
    openai_server.latency_s, openai_server.numbered = 0.3, True
    return openai_server


def api_config(server, **fields) -> ModelConfig:
    return ModelConfig.objects.create(name="fleet-api", backend=ModelConfig.Backend.OPENAI, api_model="fake",
                                      base_url=server.url, concurrency=2, max_retries=1, timeout_seconds=10, **fields)


def job_wait(job, *, timeout: float = 120, until=None):
    """The job (any BackgroundJob) once it has finished, or once until(job) holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if (until or (lambda j: j.finished))(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job.pk} still {job.status} after {timeout} s "
                         f"({job.progress_done}/{job.progress_total})")


def chunks_of(job: GenerationJob):
    return JobChunk.objects.filter(job_model="generation.generationjob", job_id=job.pk)


def hosts_of(chunks) -> set[str]:
    return {worker.split("@")[0] for worker in chunks.values_list("worker", flat=True) if worker}


def assert_every_item_once(job: GenerationJob) -> None:
    assert job.status == "done" and job.progress_done == job.planned, (job.status, job.error, job.progress_done)
    assert not job.items.filter(status="pending").exists()
    notes = Note.objects.filter(metadata__job_id=job.pk)
    indexes = list(notes.values_list("metadata__item_index", flat=True))
    assert len(indexes) == len(set(indexes)) == job.ok == job.items.filter(status="done").count()
    assert job.ok + job.failed + job.skipped == job.planned
    assert set(chunks_of(job).values_list("status", flat=True)) == {"done"}


def test_two_hosts_share_one_job_and_every_item_ends_once(fleet, latency_server, tiny_graph, real_notes):
    prompt_templates_ensure()
    for name in ("host-a", "host-b"):
        fleet.start(name, ["api"])
    for name in ("host-a", "host-b"):
        fleet.wait_ready(name, "api")
    job = do_create_job(request=PlanRequest(categories=["J06", "I10"], budget=40, allocation="uniform", seed=5),
                        model_config=api_config(latency_server), actor=None)
    job = job_wait(job)
    assert_every_item_once(job)
    assert job.ok >= 36 and len(latency_server.requests) == job.ok + job.failed  # no request made twice
    chunks = chunks_of(job)
    assert chunks.count() == 5  # chunks of four windows of requests in flight (concurrency 2)
    assert hosts_of(chunks) == {"host-a", "host-b"}  # both hosts took part


def test_a_host_killed_mid_job_leaves_its_chunks_to_the_other(fleet, latency_server, tiny_graph, real_notes):
    prompt_templates_ensure()
    for name in ("host-a", "host-b"):
        fleet.start(name, ["api"])
    for name in ("host-a", "host-b"):
        fleet.wait_ready(name, "api")
    job = do_create_job(request=PlanRequest(categories=["J06", "I10"], budget=60, allocation="uniform", seed=6),
                        model_config=api_config(latency_server), actor=None)
    chunks = chunks_of(job)
    job_wait(job, until=lambda j: chunks.filter(status="running", worker__startswith="host-a@").exists()
             and j.progress_done >= 6)
    fleet.kill("host-a")
    killed = set(chunks.filter(worker__startswith="host-a@").exclude(status="done").values_list("index", flat=True))
    assert killed, "host-a held no chunk when it was killed"
    job = job_wait(job)
    assert_every_item_once(job)
    # host-a's running chunk was sent again by the sweep (its boot's heartbeat is gone), and the chunks it had
    # reserved but not begun by the lost-message rule; host-b ran them all
    assert set(chunks.filter(index__in=killed).values_list("worker", flat=True)) <= {
        worker for worker in chunks.values_list("worker", flat=True) if worker.startswith("host-b@")}
    assert chunks.filter(index__in=killed, attempts__gte=1).count() == len(killed)


def test_a_host_short_of_memory_never_runs_a_model_that_needs_more(fleet, tiny_graph, real_notes,
                                                                  tiny_model_config):
    prompt_templates_ensure()
    ModelConfig.objects.filter(pk=tiny_model_config.pk).update(min_memory_gb=6, batch_size=2, max_new_tokens=16)
    tiny_model_config.refresh_from_db()
    fleet.start("small", ["gpu"], pool="solo", concurrency=1, MEDSYN_WORKER_MEMORY_GB="2")
    fleet.wait_ready("small", "gpu")
    job = do_create_job(request=PlanRequest(categories=["J06"], budget=4, allocation="uniform", seed=7),
                        model_config=tiny_model_config, actor=None)
    job = job_wait(job, until=lambda j: j.items.exists())
    time.sleep(5)  # the small host has had the chunks and sent them back
    job.refresh_from_db()
    assert job.status == "running" and job.progress_done == 0
    assert not chunks_of(job).filter(status="running").exists() and not hosts_of(chunks_of(job))
    reason = job_waiting_reason(job)
    assert reason and "6 GB" in reason
    fleet.start("big", ["gpu"], pool="solo", concurrency=1, MEDSYN_WORKER_MEMORY_GB="16")
    fleet.wait_ready("big", "gpu")
    job = job_wait(job)
    assert_every_item_once(job)
    assert hosts_of(chunks_of(job)) == {"big"}
    assert job_waiting_reason(job) is None
