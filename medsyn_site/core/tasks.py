"""Celery tasks of the core: one chunk of a chunked job (core.chunks), and the sweep of stalled work (core.jobs)."""

from __future__ import annotations

from celery import shared_task

from .chunks import chunk_run
from .jobs import heartbeat_client, stalled_work_requeue


@shared_task(name="core.run_chunk", acks_late=True, reject_on_worker_lost=True)
def run_chunk(job_model: str, job_id: int, index: int) -> None:
    """Idempotent: a chunk done, or running on a live worker, is not run again; its done units are never redone."""
    chunk_run(job_model, job_id, index)


@shared_task(name="core.sweep", ignore_result=True)
def sweep() -> dict:
    """Celery beat's: send again the work of dead workers and lost chunk messages (nothing without a Redis)."""
    client = heartbeat_client()
    return stalled_work_requeue(client) if client is not None else {}
