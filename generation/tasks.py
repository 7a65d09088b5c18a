"""Celery tasks of the generation app: run_generation_job goes to "gpu" (local models) or "api" (API models)."""

from __future__ import annotations

from celery import shared_task

from .jobs import job_execute


@shared_task(name="generation.run_generation_job", acks_late=True, reject_on_worker_lost=True)
def run_generation_job(job_id: int) -> None:
    """Idempotent: a redelivery (worker killed mid-job) only runs the items still pending."""
    job_execute(job_id)
