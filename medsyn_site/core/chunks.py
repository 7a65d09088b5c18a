"""Jobs in chunks: one job shared by every worker of its queue, on any number of hosts.

A chunked job is a BackgroundJob whose model also defines (see ChunkedJob):
- chunk_queue(): the Celery queue of its chunks;
- chunk_requirements(): what a worker needs to run them (core.workers.Requirements), or None;
- chunk_execute(chunk): run the chunk's units still to do, each written once under its own row lock (so a chunk run
  twice, or by two workers at once, writes nothing twice); True when the chunk is complete, False when it stopped
  early (the job was cancelled or ended meanwhile) with units left to do;
- chunks_finish(): end the job once every chunk is done (called once, under the job's row lock).

The job's own task (the coordinator) marks it running, prepares its units, then calls chunks_dispatch: the chunk
rows (JobChunk, units [first, end) of `size`) are made once, and each chunk that still has a unit to do is sent as
one task, core.run_chunk, on the job's queue. The coordinator then returns; the job stays running, with no worker of
its own, until the chunk that completes it last calls chunks_finish. Outside a worker (a management command, the
demo, a test) the chunks run one after another in the same process, reserved for it ("inline <hostname>:<pid>"): the
sweep leaves them while that process runs and sends them to the workers once it is gone.

A chunk is taken under its row lock by one worker at a time (chunk_run), which records its identity on it
("<hostname> <boot id>", core.jobs). What can go wrong, and what happens:
- the same message delivered twice: the second delivery finds the chunk done, or running on a live worker, and stops;
- a worker killed mid-chunk: the sweep (chunks_stalled_requeue, run by Celery beat and by every worker's heartbeat)
  sees the chunk's worker boot is gone and sends the chunk again; its done units are not redone;
- a message lost before any worker took it (the worker that had it reserved died): the sweep sends again a chunk
  still queued JOB_CHUNK_LOST_AFTER_SECONDS after it was sent when its queue holds no message;
- a worker that cannot run the chunk (a CPU worker, too little memory) leaves it queued and sends it back.
"""

from __future__ import annotations

import bisect
import logging
import os
import socket
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from django.apps import apps
from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from .errors import BrokerUnavailable
from .models import BackgroundJob, ChunkStatus, JobChunk, JobStatus
from .workers import Requirements, capabilities_local, requirements_unmet

if TYPE_CHECKING:
    import redis

logger = logging.getLogger("medsyn.jobs")

REFUSED_RESEND_SECONDS = 2.0  # a worker that cannot run a chunk waits this long before it sends the chunk back


class ChunkedJob(Protocol):
    """What a BackgroundJob model defines to run in chunks (see the module's docstring)."""

    pk: Any
    status: str

    def chunk_queue(self) -> str: ...

    def chunk_requirements(self) -> Requirements | None: ...

    def chunk_execute(self, chunk: JobChunk) -> bool: ...

    def chunks_finish(self) -> None: ...


INLINE = "inline"  # the worker of a chunk a process without a worker runs itself: "inline <hostname>:<pid>"


def inline_identity() -> str:
    """This process as the runner of the chunks it runs itself (a management command, the demo, a test)."""
    return f"{INLINE} {socket.gethostname()}:{os.getpid()}"


def _inline_alive(identity: str, *, elsewhere: bool = True) -> bool:
    """Whether the process "inline <hostname>:<pid>" still runs: known on its own host; elsewhere `elsewhere` (the
    sweep of a worker on another host cannot tell, and must not take the process's chunks; a Resume must)."""
    host, _colon, pid = identity.partition(" ")[2].rpartition(":")
    if host != socket.gethostname():
        return elsewhere
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def job_label(job: BackgroundJob | type[BackgroundJob]) -> str:
    return job._meta.label_lower


def chunk_ranges(end: int, size: int) -> list[tuple[int, int]]:
    """[first, end) ranges of at most size units covering 0 .. end - 1."""
    size = max(1, size)
    return [(first, min(first + size, end)) for first in range(0, end, size)]


def chunk_size_default(size: int) -> int:
    """settings.JOB_CHUNK_SIZE when it is set, else the job kind's own default."""
    return settings.JOB_CHUNK_SIZE or size


def job_chunks(job: BackgroundJob) -> models.QuerySet[JobChunk]:
    return JobChunk.objects.filter(job_model=job_label(job), job_id=job.pk)


def chunks_by_host(job: BackgroundJob) -> list[dict[str, Any]]:
    """Who ran the job's chunks: per Celery hostname (or, for a process that ran them itself, its machine's name with
    inline True), the chunks done and running and the units they hold."""
    hosts: dict[str, dict[str, Any]] = {}
    rows = job_chunks(job).exclude(worker="").values_list("worker", "status", "first", "end")
    for worker, status, first, end in rows:
        inline = worker.startswith(f"{INLINE} ")
        name = worker.partition(" ")[2].rpartition(":")[0] if inline else worker.partition(" ")[0]
        host = hosts.setdefault(name, {"done": 0, "running": 0, "units": 0, "inline": inline})
        host[status] = host.get(status, 0) + 1
        host["units"] += end - first
    return [{"host": name, **counts} for name, counts in sorted(hosts.items())]


def chunks_dispatch(job: BackgroundJob, *, end: int, size: int, pending: Iterable[int]) -> int:
    """Make the job's chunks over the units 0 .. end - 1 (once: a job dispatched again keeps its chunks) and send
    each chunk holding a unit of `pending` (the indexes of the units still to do) that no live worker runs; a chunk
    with no unit left to do is done. The job
    keeps running with no worker of its own (the sweep follows its chunks, not it). Returns the chunks sent; with
    none to send, the job is finished at once (chunks_finish_if_done)."""
    from .jobs import worker_identity

    label = job_label(job)
    with transaction.atomic():
        if not job_chunks(job).exists():
            JobChunk.objects.bulk_create(
                [JobChunk(job_model=label, job_id=job.pk, index=index, first=first, end=stop)
                 for index, (first, stop) in enumerate(chunk_ranges(end, size))], ignore_conflicts=True)
        chunks = list(job_chunks(job).select_for_update().order_by("index"))
        firsts = [chunk.first for chunk in chunks]
        wanted = set()
        for unit in pending:
            position = bisect.bisect_right(firsts, unit) - 1
            if position >= 0 and unit < chunks[position].end:
                wanted.add(position)
        # A Resume (or a coordinator sent again) takes back a chunk that a command on another host was running: that
        # command may have died, and nothing else would ever send the chunk again; its units are not done twice.
        to_send = [chunks[position] for position in sorted(wanted)
                   if not (chunks[position].status == ChunkStatus.RUNNING
                           and worker_alive(chunks[position].worker, inline_elsewhere=False))]
        now = timezone.now()
        # Chunks this process runs itself are reserved for it (the sweep leaves them while it lives).
        runner = "" if worker_identity() else inline_identity()
        JobChunk.objects.filter(pk__in=[chunk.pk for chunk in to_send]).update(
            status=ChunkStatus.QUEUED, worker=runner, sent_at=now, finished_at=None, updated_at=now)
        idle = [chunk.pk for position, chunk in enumerate(chunks)
                if position not in wanted and chunk.status != ChunkStatus.DONE]
        JobChunk.objects.filter(pk__in=idle).update(status=ChunkStatus.DONE, finished_at=now, updated_at=now)
        type(job).objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(worker="", updated_at=now)
    if not wanted:
        chunks_finish_if_done(type(job), job.pk)
        return 0
    if not worker_identity():  # no worker: run them here, in order
        for chunk in to_send:
            chunk_run(label, job.pk, chunk.index)
        return len(to_send)
    for chunk in to_send:
        try:
            chunk_send(job, chunk.index)
        except BrokerUnavailable:  # the sweep sends it once the broker is back (a queued chunk with no message)
            logger.warning("could not send a chunk", extra={"job": f"{label}#{job.pk}", "chunk": chunk.index})
    return len(to_send)


def chunk_send(job: BackgroundJob, index: int) -> None:
    """Publish one chunk's task on its job's queue now (BrokerUnavailable when the broker is down)."""
    from .jobs import task_send
    from .tasks import run_chunk

    task_send(run_chunk, args=[job_label(job), job.pk, index], queue=job.chunk_queue())


def chunk_run(label: str, job_id: int, index: int) -> None:
    """Run one chunk (the task core.run_chunk): take it under its row lock unless it is done, or running on a live
    worker (a duplicate delivery), or its job is no longer running, or this worker cannot run it; run its units
    (the job's chunk_execute); mark it done, or queued again when it stopped early; finish the job when it was the
    last. An error gives the chunk back (queued) and is raised: the job's chunk_execute has recorded it on the job."""
    from .jobs import worker_identity

    model = apps.get_model(label)
    worker = worker_identity()
    identity = worker or inline_identity()
    with transaction.atomic():
        chunk = JobChunk.objects.select_for_update().filter(job_model=label, job_id=job_id, index=index).first()
        if chunk is None or chunk.status == ChunkStatus.DONE:
            return
        if chunk.status == ChunkStatus.RUNNING and chunk.worker != identity and worker_alive(chunk.worker):
            return  # another delivery of it runs on a live worker
        job = model.objects.filter(pk=job_id).first()
        if job is None or job.status != JobStatus.RUNNING:
            return  # cancelled or finished: the chunk waits for a resume
        requirements = job.chunk_requirements()
        reason = requirements_unmet(requirements, capabilities_local()) if worker and requirements else None
        if reason is None:
            chunk.status, chunk.worker, chunk.attempts = ChunkStatus.RUNNING, identity, chunk.attempts + 1
            chunk.started_at = timezone.now()
            chunk.save(update_fields=["status", "worker", "attempts", "started_at", "updated_at"])
    if reason is not None:
        logger.warning("a chunk this worker cannot run, sent back", extra={"job": f"{label}#{job_id}",
                                                                           "chunk": index, "reason": reason})
        time.sleep(REFUSED_RESEND_SECONDS)
        chunk_send(job, index)
        return
    mine = JobChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.RUNNING, worker=identity)
    try:
        complete = job.chunk_execute(chunk)
    except BaseException:
        mine.update(status=ChunkStatus.QUEUED, worker="", updated_at=timezone.now())
        raise
    now = timezone.now()
    if complete:
        mine.update(status=ChunkStatus.DONE, finished_at=now, updated_at=now)
    else:
        mine.update(status=ChunkStatus.QUEUED, worker="", updated_at=now)
    chunks_finish_if_done(model, job_id)


def chunks_finish_if_done(model: type[BackgroundJob], job_id: int) -> bool:
    """Finish a running job whose chunks are all done (its chunks_finish, once: under the job's row lock)."""
    with transaction.atomic():
        job = model.objects.select_for_update().filter(pk=job_id, status=JobStatus.RUNNING).first()
        if job is None or job_chunks(job).exclude(status=ChunkStatus.DONE).exists():
            return False
        job.chunks_finish()
        return True


# --- The sweep ------------------------------------------------------------------------------------------------------

def worker_alive(identity: str, client: redis.Redis | None = None, boots: dict[str, str | None] | None = None, *,
                 inline_elsewhere: bool = True) -> bool:
    """Whether the worker "<hostname> <boot id>" still runs: its hostname's heartbeat names the same boot. An empty
    identity (no worker) never is; without a heartbeat store to ask (no Redis, or Redis down) every worker counts as
    alive, so that no work is taken from a worker that may be running it. A process running chunks itself ("inline
    <hostname>:<pid>") is looked up on its own host; on another, inline_elsewhere is the answer."""
    from .jobs import heartbeat_client, worker_boot_read

    if not identity:
        return False
    if identity.startswith(f"{INLINE} "):
        return _inline_alive(identity, elsewhere=inline_elsewhere)
    hostname, _space, boot = identity.partition(" ")
    try:
        client = client or heartbeat_client()
        if client is None:
            return True
        return worker_boot_read(client, hostname, boots) == boot
    except Exception:
        return True


def queue_length(client: redis.Redis, queue: str) -> int | None:
    """Messages waiting in a Redis-broker queue (kombu's list, its priority lists included); None when the broker
    is not Redis (RabbitMQ redelivers a lost consumer's messages itself)."""
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        return None
    from celery import current_app

    with current_app.connection_for_write(settings.CELERY_BROKER_URL) as connection:
        broker = connection.default_channel.client
        names = [queue, *(f"{queue}\x06\x16{priority}" for priority in range(1, 10))]
        return sum(broker.llen(name) for name in names)


def chunks_stalled_requeue(client: redis.Redis) -> list[tuple[str, int, int]]:
    """Send again the chunks of running jobs whose worker died, and those queued for JOB_CHUNK_LOST_AFTER_SECONDS
    since they were sent while their queue is empty (the message was lost); returns (job label, job id, index) of
    each chunk sent. Called by core.jobs.stalled_work_requeue under its sweep lock."""
    sent = []
    boots: dict[str, str | None] = {}
    lost_before = timezone.now() - timezone.timedelta(seconds=settings.JOB_CHUNK_LOST_AFTER_SECONDS)
    empty_queues: dict[str, bool] = {}
    open_chunks = JobChunk.objects.exclude(status=ChunkStatus.DONE).values_list("job_model", "job_id").distinct()
    for label, job_id in open_chunks:
        model = apps.get_model(label)
        job = model.objects.filter(pk=job_id, status=JobStatus.RUNNING).first()
        if job is None:
            continue
        for chunk in JobChunk.objects.filter(job_model=label, job_id=job_id).exclude(status=ChunkStatus.DONE):
            if chunk.status == ChunkStatus.RUNNING or chunk.worker.startswith(f"{INLINE} "):
                if worker_alive(chunk.worker, client, boots):
                    continue  # running on a live worker, or reserved by a live process that runs it itself
            else:
                if chunk.sent_at is not None and chunk.sent_at > lost_before:
                    continue
                queue = job.chunk_queue()
                if queue not in empty_queues:
                    length = queue_length(client, queue)
                    empty_queues[queue] = length is not None and length == 0
                if not empty_queues[queue]:
                    continue  # still waiting its turn (or a broker that redelivers by itself)
            if _chunk_resend(job, chunk):
                sent.append((label, job_id, chunk.index))
    return sent


def _chunk_resend(job: BackgroundJob, chunk: JobChunk) -> bool:
    try:
        chunk_send(job, chunk.index)
    except BrokerUnavailable:
        return False
    now = timezone.now()
    JobChunk.objects.filter(pk=chunk.pk, status=chunk.status, worker=chunk.worker).update(
        status=ChunkStatus.QUEUED, worker="", sent_at=now, updated_at=now)
    logger.warning("sent a chunk again", extra={"job": f"{chunk.job_model}#{chunk.job_id}", "chunk": chunk.index,
                                               "worker": chunk.worker or "none (message lost)"})
    return True
