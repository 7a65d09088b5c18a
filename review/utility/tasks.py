"""Celery task of utility evaluations (default queue: scikit-learn on the CPU, no model to load). It prepares the run
and shares out its fits in chunks (core.run_chunk tasks on the same queue): review.utility.jobs."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="utility.run_utility_evaluation", acks_late=True, reject_on_worker_lost=True)
def run_utility_evaluation(evaluation_id: int) -> None:
    from .jobs import utility_evaluation_run

    utility_evaluation_run(evaluation_id)
