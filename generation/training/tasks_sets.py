"""Celery task of instruction sets (default queue). Workers register it through generation.training.tasks, which
imports it (Celery discovers only the `tasks` module of each app)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="training.run_instruction_set_build", acks_late=True, reject_on_worker_lost=True)
def run_instruction_set_build(build_id: int) -> None:
    from .instruction_sets import instruction_set_build_run

    instruction_set_build_run(build_id)
