"""Celery tasks of the generation app: run_generation_job goes to "gpu" (local models) or "api" (API models)."""

from __future__ import annotations

from celery import shared_task

from .jobs import job_execute


@shared_task(name="generation.run_generation_job", acks_late=True, reject_on_worker_lost=True)
def run_generation_job(job_id: int) -> None:
    """Idempotent: a redelivery (worker killed mid-job) only runs the items still pending."""
    job_execute(job_id)


@shared_task(name="generation.run_symptom_extraction", acks_late=True)
def run_symptom_extraction(model_config_id: int, categories: list[str], notes_per_category: int = 20) -> dict:
    from .enrichment import enrichment_run
    from .models import ModelConfig

    return enrichment_run(model_config=ModelConfig.objects.get(pk=model_config_id), categories=categories,
                          notes_per_category=notes_per_category)
