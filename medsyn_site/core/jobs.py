"""Sending background jobs to the workers, and picking up the jobs of a worker that died.

- `broker_require()` answers in about a second whether the broker takes messages; `job_send_on_commit(job)` checks
  it inside the caller's transaction (a broker that is down rolls the whole action back: BrokerUnavailable, a 503,
  and no "queued" row left behind) and publishes the job's task once the transaction commits. If the broker goes
  away between the two, the job is marked failed with the reason, so nothing stays "queued" for ever.
- Every worker process has a boot id (`WORKER_BOOT`); a job records "<hostname> <boot id>" of the worker that runs
  it (BackgroundJob.mark_running), and each worker's heartbeat thread writes its boot id under its hostname.
  The sweep (`stalled_work_requeue()`: Celery beat's task core.sweep, and every worker's heartbeat, one at a time)
  sends again each running job whose worker is gone (no heartbeat, or a heartbeat from a newer boot of the same
  worker name: it was killed and restarted), and each chunk of a chunked job whose worker is gone or whose message
  was lost (core.chunks). Tasks are idempotent, so a job picked up twice ends once (mark_finished writes only while
  running).
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .audit import audit_write
from .errors import BrokerUnavailable, StateConflict
from .models import AuditEvent, BackgroundJob, JobStatus

if TYPE_CHECKING:
    import redis
    from celery import Task

logger = logging.getLogger("medsyn.jobs")

BROKER_TIMEOUT_SECONDS = 1.5
# One id per worker process start: a restarted worker keeps its name but not its boot id. Prefork children inherit it.
WORKER_BOOT = uuid.uuid4().hex
REQUEUED = "requeued"  # BackgroundJob.worker of a job sent again by the sweep, until a worker takes it
SWEEP_LOCK_KEY = "medsyn:job-sweep"
WORKER_BOOT_PREFIX = "medsyn:worker-boot"


def broker_unavailable_message() -> str:
    return _("The task queue (broker) is unavailable, so nothing was started. Try again when it is back.")


def broker_require() -> None:
    """Raise BrokerUnavailable unless the broker accepts a connection within BROKER_TIMEOUT_SECONDS."""
    try:
        with _broker_connection() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                         timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as error:  # kombu raises OperationalError, socket errors, redis errors ... by transport
        raise BrokerUnavailable(broker_unavailable_message()) from error


def _broker_connection():
    """A new connection to settings.CELERY_BROKER_URL through Celery's own options (SSL, transport options)."""
    from celery import current_app

    return current_app.connection_for_write(settings.CELERY_BROKER_URL, connect_timeout=BROKER_TIMEOUT_SECONDS)


def task_send(task: Task, *, args: list[Any], queue: str) -> None:
    """Publish one task now, failing fast (no publish retries) with BrokerUnavailable."""
    try:
        with _broker_connection() as connection:
            task.apply_async(args=args, queue=queue, retry=False, connection=connection)
    except Exception as error:
        raise BrokerUnavailable(broker_unavailable_message()) from error


def task_send_on_commit(task: Task, *, args: list[Any], queue: str) -> None:
    """For a task with no job row: check the broker now (inside the transaction), publish after the commit."""
    broker_require()
    transaction.on_commit(lambda: task_send(task, args=args, queue=queue))


def job_send_on_commit(job: BackgroundJob) -> None:
    """Check the broker now, inside the caller's transaction (down: BrokerUnavailable rolls the action back), and
    send the job's task once the job is committed. A broker lost in between fails the job with the reason."""
    broker_require()
    transaction.on_commit(lambda: _job_send(job))


def _job_send(job: BackgroundJob) -> None:
    try:
        job.task_send()
    except BrokerUnavailable as error:
        type(job).objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.FAILED, error=str(error), finished_at=timezone.now(), updated_at=timezone.now())
        raise


# --- Workers that died ----------------------------------------------------------------------------------------------

def job_cancel(job: BackgroundJob, *, actor, event: AuditEvent, already_finished: str,
               extra: Callable[[Any], dict] | None = None, fields: dict[str, Any] | None = None) -> Any:
    """Cancel a queued or running job of any kind, under its row lock (call inside a transaction): its worker sees
    the status at its next check and stops. already_finished: the StateConflict message (with %(id)s and
    %(status)s) when it has finished; extra(job): what the audit record keeps; fields: other columns to set."""
    job = type(job).objects.select_for_update().get(pk=job.pk)
    if job.finished:
        raise StateConflict(already_finished % {"id": job.pk, "status": job.get_status_display()})
    previous = job.status
    job.status, job.finished_at = JobStatus.CANCELLED, timezone.now()
    for name, value in (fields or {}).items():
        setattr(job, name, value)
    job.save(update_fields=["status", "finished_at", "updated_at", *(fields or {})])
    audit_write(actor=actor, action=event, obj=job, from_state=previous, to_state=job.status,
                extra=extra(job) if extra is not None else {})
    return job


def worker_identity() -> str:
    """'<celery hostname> <boot id>' inside a Celery task, '' elsewhere (a management command runs its own job)."""
    from celery import current_task

    request = getattr(current_task, "request", None)
    hostname = getattr(request, "hostname", None) if current_task else None
    return f"{hostname} {WORKER_BOOT}" if hostname else ""


def worker_boot_key(hostname: str) -> str:
    return f"{WORKER_BOOT_PREFIX}:{hostname}"


def worker_boot_write(client: redis.Redis, hostname: str) -> None:
    client.set(worker_boot_key(hostname), WORKER_BOOT, ex=settings.WORKER_HEARTBEAT_TTL_SECONDS)


def job_models() -> list[type[BackgroundJob]]:
    return [model for model in apps.get_models() if issubclass(model, BackgroundJob)]


def heartbeat_client() -> redis.Redis | None:
    """A client of the Redis that holds the workers' heartbeats (None when neither broker nor results are Redis)."""
    from medsyn_site.health import heartbeat_store_url, redis_client

    store = heartbeat_store_url()
    return redis_client(store) if store is not None else None


def worker_boot_read(client: redis.Redis, hostname: str, cache: dict[str, str | None] | None = None) -> str | None:
    """The boot id the worker named hostname last wrote (None: no live heartbeat), read once per cache."""
    if cache is not None and hostname in cache:
        return cache[hostname]
    value = client.get(worker_boot_key(hostname))
    boot = value.decode() if isinstance(value, bytes) else value
    if cache is not None:
        cache[hostname] = boot
    return boot


def stalled_work_requeue(client: redis.Redis) -> dict[str, list]:
    """The sweep: send again the jobs (jobs_orphaned_requeue) and the chunks (core.chunks.chunks_stalled_requeue) of
    workers that died, and chunks whose message was lost. One sweep at a time over the whole deployment (a short
    Redis lock): Celery beat runs it every JOB_SWEEP_SECONDS (the task core.sweep), and every worker's heartbeat
    thread tries too, so a deployment whose beat is down still recovers. Returns what each part sent."""
    from .chunks import chunks_stalled_requeue

    if not client.set(SWEEP_LOCK_KEY, socket.gethostname(), nx=True, ex=settings.WORKER_HEARTBEAT_SECONDS):
        return {"jobs": [], "chunks": []}
    return {"jobs": jobs_orphaned_requeue(client), "chunks": chunks_stalled_requeue(client)}


def jobs_orphaned_requeue(client: redis.Redis) -> list[tuple[str, int]]:
    """Send again every running job whose worker is gone; returns (model label, pk) of each job sent. A job whose
    send fails stays as it was and is tried again at the next sweep. (A chunked job has no worker of its own once
    its chunks are dispatched: the sweep of chunks follows them.)"""
    sent: list[tuple[str, int]] = []
    boots: dict[str, str | None] = {}
    for model in job_models():
        running = model.objects.filter(status=JobStatus.RUNNING).exclude(worker__in=["", REQUEUED])
        for job in running.only("pk", "worker", "status"):
            hostname, _space, boot = job.worker.partition(" ")
            if worker_boot_read(client, hostname, boots) == boot:
                continue  # its worker is alive
            job = model.objects.get(pk=job.pk)
            try:
                job.task_send()
            except BrokerUnavailable:
                logger.warning("could not requeue a job of a dead worker",
                               extra={"job": f"{model._meta.label}#{job.pk}"})
                continue
            # A worker may have taken it already (then it runs under a new identity and this matches nothing).
            model.objects.filter(pk=job.pk, status=JobStatus.RUNNING, worker=job.worker).update(
                status=JobStatus.QUEUED, worker=REQUEUED, updated_at=timezone.now())
            logger.warning("requeued a job whose worker died",
                           extra={"job": f"{model._meta.label}#{job.pk}", "worker": hostname})
            sent.append((model._meta.label, job.pk))
    return sent
