"""Celery tasks of fine-tuning (gpu queue)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="training.run_finetune_job", acks_late=True, reject_on_worker_lost=True)
def run_finetune_job(job_id: int) -> None:
    from .finetune import finetune_job_run

    finetune_job_run(job_id)

from .tasks_sets import run_instruction_set_build  # noqa: E402, F401 - registered with the workers
