"""Celery tasks of releases (queue "default"): the export."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="review.run_release_export", acks_late=True, reject_on_worker_lost=True)
def run_release_export(release_id: int) -> None:
    """Idempotent: a redelivery writes the folder again aside and swaps it in; a finished export is left alone."""
    from .services import release_export_run

    release_export_run(release_id)
